// The tensor handle, argument conversion and data transfer between JavaScript typed arrays and tensors.
#include "common.h"

#include <deque>
#include <cstring>

namespace dedos {

namespace {
struct Slot {
  at::Tensor tensor;  // undefined while the slot holds a packed weight
  PackedPtr packed;   // a prepacked linear weight (packed.h), instead of `tensor`
  uint32_t gen = 1;
  int64_t reported = 0;
};
// A deque keeps references to existing slots valid while new ones are added during an op. One table per
// JavaScript thread (the main thread, each worker): a worker that owns a model (the Segmenter's) and the
// main thread never share handles, and neither needs a lock.
thread_local std::deque<Slot> slots_;
thread_local std::vector<uint32_t> free_;
thread_local int64_t live_ = 0;
thread_local int64_t reported_ = 0;
constexpr double kSlotSpan = 16777216.0;  // 2^24 slots; the generation occupies the bits above
// Storage below this size is not reported to V8: each report is a V8 call and small tensors never drive
// memory pressure.
constexpr int64_t kReportMin = 64 * 1024;
}  // namespace

int64_t LiveHandles() { return live_; }
int64_t ReportedBytes() { return reported_; }

double StoreTensor(Napi::Env env, at::Tensor t) {
  uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
  } else {
    if (slots_.size() >= static_cast<size_t>(kSlotSpan)) throw std::runtime_error("more than 16M live tensors");
    idx = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[idx];
  s.tensor = std::move(t);
  live_++;
  // Only storage this handle is the sole owner of is reported, so views do not count their base again.
  if (s.tensor.defined() && s.tensor.has_storage() && s.tensor.device().is_cpu() && s.tensor.storage().use_count() == 1) {
    int64_t nbytes = static_cast<int64_t>(s.tensor.storage().nbytes());
    if (nbytes >= kReportMin) {
      s.reported = nbytes;
      reported_ += nbytes;
      Napi::MemoryManagement::AdjustExternalMemory(env, nbytes);
    }
  }
  return static_cast<double>(s.gen) * kSlotSpan + idx;
}

static Slot* Find(double id) {
  if (!(id >= kSlotSpan && id < 9007199254740992.0)) return nullptr;
  auto u = static_cast<uint64_t>(id);
  size_t idx = u & 0xFFFFFF;
  if (idx >= slots_.size()) return nullptr;
  Slot& s = slots_[idx];
  if (s.gen != (u >> 24) || (!s.tensor.defined() && s.packed == nullptr)) return nullptr;
  return &s;
}

// The plain tensor of a slot, unpacking a packed weight for good.
static at::Tensor& Plain(Slot& s) {
  if (s.packed != nullptr) {
    s.tensor = UnpackWeight(*s.packed);
    s.packed.reset();
  }
  return s.tensor;
}

at::Tensor& LookupTensor(Napi::Env env, const Napi::Value& v, const std::string& what) {
  double id;
  // One N-API call: a non-number fails here instead of needing a separate type check first.
  if (napi_get_value_double(env, v, &id) != napi_ok) throw Napi::TypeError::New(env, what + " must be a tensor");
  Slot* s = Find(id);
  if (s == nullptr) throw Napi::Error::New(env, what + " is a tensor that was already disposed");
  return Plain(*s);
}

bool FreeTensor(Napi::Env env, double id) {
  Slot* s = Find(id);
  if (s == nullptr) return false;
  s->tensor.reset();
  s->packed.reset();
  if (s->reported > 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -s->reported);
    reported_ -= s->reported;
    s->reported = 0;
  }
  s->gen = s->gen + 1 < (1u << 28) ? s->gen + 1 : 1;
  live_--;
  free_.push_back(static_cast<uint32_t>(static_cast<uint64_t>(id) & 0xFFFFFF));
  return true;
}

// ---- arguments ----
static std::string where(size_t i) { return "argument " + std::to_string(i); }

static Slot& ArgSlot(const Napi::CallbackInfo& info, size_t i) {
  // The hot path: no message string is built unless the lookup fails.
  double id;
  if (napi_get_value_double(info.Env(), info[i], &id) == napi_ok)
    if (Slot* s = Find(id)) return *s;
  LookupTensor(info.Env(), info[i], where(i));  // throws the right error
  throw std::logic_error("unreachable");
}

at::Tensor& ArgTensor(const Napi::CallbackInfo& info, size_t i) { return Plain(ArgSlot(info, i)); }

WeightArg ArgWeight(const Napi::CallbackInfo& info, size_t i) {
  Slot& s = ArgSlot(info, i);
  return {s.packed, s.packed != nullptr ? nullptr : &s.tensor};
}

TensorMeta ArgMeta(const Napi::CallbackInfo& info, size_t i) {
  Slot& s = ArgSlot(info, i);
  if (s.packed != nullptr) return {at::kFloat, at::Device(at::kCPU), PackedSizes(*s.packed), false, true};
  const at::Tensor& t = s.tensor;
  return {t.scalar_type(), t.device(), t.sizes().vec(), t.requires_grad(), t.is_contiguous()};
}

size_t PackHandle(const Napi::CallbackInfo& info, size_t i) {
  Slot& s = ArgSlot(info, i);
  if (s.packed != nullptr) return 0;
  at::Tensor& t = s.tensor;
  // Only a sole owner frees the plain bytes: packing a tensor that other handles or views share would add a copy.
  if (!t.has_storage() || t.use_count() != 1 || t.storage().use_count() != 1 || !t.is_contiguous() ||
      t.storage_offset() != 0 || t.storage().nbytes() != t.nbytes())
    return 0;
  PackedPtr p = PackWeight(t);
  if (p == nullptr) return 0;
  const size_t freed = t.nbytes();
  s.packed = std::move(p);
  t.reset();
  return freed;
}

Napi::Value RetPacked(Napi::Env env, PackedPtr p) {
  const double id = StoreTensor(env, at::Tensor());
  slots_[static_cast<uint64_t>(id) & 0xFFFFFF].packed = std::move(p);
  return Napi::Number::New(env, id);
}

c10::optional<at::Tensor> ArgOptTensor(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgTensor(info, i);
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNumber()) return v.As<Napi::Number>().Int64Value();
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  throw Napi::TypeError::New(info.Env(), where(i) + " must be an integer");
}

c10::optional<int64_t> ArgOptInt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgInt(info, i);
}

double ArgDouble(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), where(i) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

c10::optional<double> ArgOptDouble(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgDouble(info, i);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i) return false;
  bool b;
  if (napi_get_value_bool(info.Env(), info[i], &b) == napi_ok) return b;
  return info[i].ToBoolean().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), where(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> ArgInts(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNumber()) return {v.As<Napi::Number>().Int64Value()};
  if (!v.IsArray()) throw Napi::TypeError::New(info.Env(), where(i) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw Napi::TypeError::New(info.Env(), where(i) + " must be an array of integers");
    out[k] = e.As<Napi::Number>().Int64Value();
  }
  return out;
}

c10::optional<std::vector<int64_t>> ArgOptInts(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgInts(info, i);
}

std::vector<double> ArgDoubles(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNumber()) return {v.As<Napi::Number>().DoubleValue()};
  if (!v.IsArray()) throw Napi::TypeError::New(info.Env(), where(i) + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) out[k] = a.Get(k).As<Napi::Number>().DoubleValue();
  return out;
}

std::vector<at::Tensor> ArgTensors(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), where(i) + " must be an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++)
    out.push_back(LookupTensor(info.Env(), a.Get(k), where(i) + "[" + std::to_string(k) + "]"));
  return out;
}

at::Scalar ArgScalar(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) {
    bool lossless;
    return at::Scalar(static_cast<int64_t>(v.As<Napi::BigInt>().Int64Value(&lossless)));
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), where(i) + " must be a number or a tensor");
  double d = v.As<Napi::Number>().DoubleValue();
  // Integral JS numbers act like Python ints (an int tensor plus 1 stays int); others like Python floats.
  if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

at::ScalarType ArgDType(const Napi::CallbackInfo& info, size_t i) {
  int64_t code = ArgInt(info, i);
  if (code < 0 || code > static_cast<int64_t>(at::ScalarType::BFloat16))
    throw Napi::TypeError::New(info.Env(), where(i) + " is not a dtype code");
  return static_cast<at::ScalarType>(code);
}

c10::optional<at::ScalarType> ArgOptDType(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgDType(info, i);
}

at::Device ArgDevice(const Napi::CallbackInfo& info, size_t i) {
  std::string s = ArgString(info, i);
  at::Device d(s);
  if (d.is_cuda() && !at::hasCUDA()) {
    throw Napi::Error::New(info.Env(), "device '" + s +
                                           "' requested but this libtorch build has no CUDA support or no GPU is visible "
                                           "(set LIBTORCH to a CUDA libtorch and rebuild, or use device 'cpu')");
  }
  return d;
}

c10::optional<at::Generator> ArgOptGenerator(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), where(i) + " must be a generator");
  return *info[i].As<Napi::External<at::Generator>>().Data();
}

Napi::Value Ret(Napi::Env env, const at::Tensor& t) { return Napi::Number::New(env, StoreTensor(env, t)); }

Napi::Value Ret(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t k = 0; k < ts.size(); k++) a.Set(static_cast<uint32_t>(k), Ret(env, ts[k]));
  return a;
}

Napi::Value Ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Ret(env, std::get<0>(ts)));
  a.Set(1u, Ret(env, std::get<1>(ts)));
  return a;
}

void Def(Napi::Env env, Napi::Object exports, const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

void ThrowOpError(Napi::Env env, const char* op, const char* what) {
  std::string msg = std::string(op) + ": " + what;
  // c10 messages can carry a trailing newline and a long "Exception raised from" note; keep the first part.
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg = msg.substr(0, pos);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  throw Napi::Error::New(env, msg);
}

// ---- data in and out ----
static Napi::Array Shape(Napi::Env env, const std::vector<int64_t>& sizes) {
  Napi::Array shp = Napi::Array::New(env, sizes.size());
  for (size_t k = 0; k < sizes.size(); k++) shp.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(sizes[k])));
  return shp;
}

static size_t ElemSize(at::ScalarType st) { return c10::elementSize(st); }

void InitTensorData(Napi::Env env, Napi::Object exports) {
  // fromBuffer(typedArrayOrArrayBuffer, dtypeCode, shape) → tensor (copies the bytes).
  DEDOS_OP("fromBuffer", {
    at::ScalarType st = dedos::ArgDType(info, 1);
    std::vector<int64_t> shape = dedos::ArgInts(info, 2);
    const uint8_t* src;
    size_t nbytes;
    if (info[0].IsTypedArray()) {
      Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
      src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      nbytes = ta.ByteLength();
    } else if (info[0].IsArrayBuffer()) {
      Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
      src = static_cast<const uint8_t*>(ab.Data());
      nbytes = ab.ByteLength();
    } else {
      throw Napi::TypeError::New(env, "fromBuffer: argument 0 must be a typed array or ArrayBuffer");
    }
    int64_t numel = 1;
    for (auto d : shape) numel *= d;
    size_t want = static_cast<size_t>(numel) * ElemSize(st);
    if (want != nbytes) {
      throw Napi::RangeError::New(env, "fromBuffer: shape " + c10::str(at::IntArrayRef(shape)) + " of " +
                                           std::string(c10::toString(st)) + " needs " + std::to_string(want) +
                                           " bytes but the array holds " + std::to_string(nbytes));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(st));
    if (nbytes > 0) std::memcpy(t.data_ptr(), src, nbytes);
    return dedos::Ret(env, t);
  });
  // toBuffer(t) → ArrayBuffer holding a contiguous CPU copy of t's elements.
  DEDOS_OP("toBuffer", {
    at::Tensor t = dedos::ArgTensor(info, 0).detach();
    if (!t.device().is_cpu()) t = t.cpu();
    t = t.contiguous();
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, nbytes);
    if (nbytes > 0) std::memcpy(ab.Data(), t.data_ptr(), nbytes);
    return ab;
  });
  // takeBuffer(t) → ArrayBuffer; consumes the handle. When the handle holds the only reference to a contiguous
  // CPU storage, the ArrayBuffer adopts that memory (no copy): nothing else can write to it any more.
  DEDOS_OP("takeBuffer", {
    double id = dedos::ArgDouble(info, 0);
    at::Tensor t = dedos::LookupTensor(env, info[0], "argument 0");
    dedos::FreeTensor(env, id);
    bool adopt = t.device().is_cpu() && t.is_contiguous() && t.has_storage() && t.use_count() == 1 &&
                 t.storage().use_count() == 1 &&
                 t.storage_offset() == 0 && !t.requires_grad() && t.numel() > 0;
    if (!adopt) {
      if (!t.device().is_cpu()) t = t.cpu();
      t = t.detach().contiguous();
      size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, nbytes);
      if (nbytes > 0) std::memcpy(ab.Data(), t.data_ptr(), nbytes);
      return ab;
    }
    size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    auto* keep = new at::Tensor(std::move(t));
    return Napi::ArrayBuffer::New(env, keep->data_ptr(), nbytes, [](Napi::Env, void*, at::Tensor* k) { delete k; }, keep);
  });
  DEDOS_OP("item", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    if (t.numel() != 1) throw Napi::Error::New(env, "item: tensor has " + std::to_string(t.numel()) + " elements, not 1");
    at::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
    return Napi::Number::New(env, s.toDouble());
  });
  // Metadata reads (info, shape, dtype, device, isContiguous) leave a packed weight packed.
  DEDOS_OP("info", {
    // [dtypeCode, deviceString, shape, requiresGrad]
    const dedos::TensorMeta t = dedos::ArgMeta(info, 0);
    Napi::Array a = Napi::Array::New(env, 4);
    a.Set(0u, Napi::Number::New(env, static_cast<int>(t.dtype)));
    a.Set(1u, Napi::String::New(env, t.device.str()));
    a.Set(2u, Shape(env, t.sizes));
    a.Set(3u, Napi::Boolean::New(env, t.requiresGrad));
    return a;
  });
  DEDOS_OP("shape", { return Shape(env, dedos::ArgMeta(info, 0).sizes); });
  DEDOS_OP("strides", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    Napi::Array s = Napi::Array::New(env, t.dim());
    for (int64_t k = 0; k < t.dim(); k++) s.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(t.stride(k))));
    return s;
  });
  DEDOS_OP("dtype", { return Napi::Number::New(env, static_cast<int>(dedos::ArgMeta(info, 0).dtype)); });
  DEDOS_OP("device", { return Napi::String::New(env, dedos::ArgMeta(info, 0).device.str()); });
  DEDOS_OP("isContiguous", { return Napi::Boolean::New(env, dedos::ArgMeta(info, 0).contiguous); });
  DEDOS_OP("storageNbytes", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    return Napi::Number::New(env, t.has_storage() ? static_cast<double>(t.storage().nbytes()) : 0.0);
  });
  DEDOS_OP("free", { return Napi::Boolean::New(env, dedos::FreeTensor(env, dedos::ArgDouble(info, 0))); });
  DEDOS_OP("liveHandles", { return Napi::Number::New(env, static_cast<double>(dedos::LiveHandles())); });
  DEDOS_OP("reportedBytes", { return Napi::Number::New(env, static_cast<double>(dedos::ReportedBytes())); });
}

}  // namespace dedos
