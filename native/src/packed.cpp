// Linear layers on prepacked weights, with their epilogue fused: y = act(x·Wᵀ + b) (+ residual) as one oneDNN
// matmul at inference.
//
// Why: sgemm re-packs W on every call and leaves the bias, the activation (GELU, QuickGELU, SiLU) and the residual
// add as separate passes over the output. The matmul primitive reads W in the blocked layout it prefers — W is
// reordered once, by prepackWeight, and the packed form replaces the plain tensor in the weight's handle (one copy
// per weight: a frozen model's memory does not grow) — and applies bias, activation and residual while the output
// tile is still in cache.
// Everything else (a plain weight, a gradient needed, other dtypes or devices, autocast, no oneDNN headers at build
// time, DEDOS_PREPACK=0) computes the same function from the unfused ops: LinearAny, the activation, the add.
#include "packed.h"

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <tuple>
#include <unordered_map>

#include "common.h"
#include "sgemm.h"

#ifdef DEDOS_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace dedos {

Act ParseAct(const std::string& s) {
  if (s == "none") return Act::kNone;
  if (s == "gelu") return Act::kGelu;
  if (s == "geluTanh") return Act::kGeluTanh;
  if (s == "quickGelu") return Act::kQuickGelu;
  if (s == "silu") return Act::kSilu;
  throw std::invalid_argument("unknown activation \"" + s + "\" (none, gelu, geluTanh, quickGelu, silu)");
}

namespace {

// The unfused definition (and the path whenever the fused one does not apply).
at::Tensor Activate(const at::Tensor& y, Act act) {
  switch (act) {
    case Act::kGelu: return at::gelu(y, "none");
    case Act::kGeluTanh: return at::gelu(y, "tanh");
    case Act::kQuickGelu: return y * at::sigmoid(y * 1.702);  // as the quickGelu op
    case Act::kSilu: return at::silu(y);
    default: return y;
  }
}

at::Tensor Unfused(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, Act act,
                   const c10::optional<at::Tensor>& residual) {
  at::Tensor y = Activate(LinearAny(x, w, b), act);
  return residual.has_value() ? y + *residual : y;
}

// DEDOS_PREPACK=0 turns packing off (A/B measurements): prepackWeight then leaves weights plain.
bool gPrepack = [] {
  const char* e = std::getenv("DEDOS_PREPACK");
  return !(e != nullptr && e[0] == '0');
}();

std::atomic<int64_t> gPackedBytes{0};  // bytes of every live packed buffer

}  // namespace

#ifdef DEDOS_DNNL
using dnnl::memory;

namespace {
dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// A packed buffer; row slices of a weight share it.
struct Buffer {
  at::Tensor bytes;  // uint8
  explicit Buffer(at::Tensor b) : bytes(std::move(b)) { gPackedBytes += static_cast<int64_t>(bytes.nbytes()); }
  ~Buffer() { gPackedBytes -= static_cast<int64_t>(bytes.nbytes()); }
};
}  // namespace

struct PackedWeight {
  std::shared_ptr<Buffer> buffer;
  int64_t offset;    // bytes from the buffer's start to this weight's first element
  int64_t n, k;      // the plain weight's shape: n output rows of k inputs
  memory::desc desc; // the (k, n) matrix Wᵀ in oneDNN's blocked layout
  void* data() const { return static_cast<uint8_t*>(buffer->bytes.data_ptr()) + offset; }
};

namespace {
// (n, k) row-major is the (k, n) matrix with strides (1, k): format "ba".
memory::desc PlainDesc(int64_t n, int64_t k) { return memory::desc({k, n}, memory::data_type::f32, memory::format_tag::ba); }

void Reorder(const memory::desc& from, void* src, const memory::desc& to, void* dst) {
  memory a(from, Engine(), src), b(to, Engine(), dst);
  dnnl::stream s(Engine());
  dnnl::reorder(a, b).execute(s, a, b);
  s.wait();
}

// One primitive per (rows, out, in, bias, activation, residual): oneDNN picks its kernel (and the weight layout)
// for the exact shape; a model has a handful of these. One cache per thread: with oneDNN's default (shared)
// scratchpad a primitive must run on the thread that created it, and a Segmenter's worker and the main thread
// both run linears.
struct Plan {
  dnnl::matmul prim;
  memory::desc src, weights, bias, dst;
};
using PlanKey = std::tuple<int64_t, int64_t, int64_t, bool, int, bool>;
thread_local std::map<PlanKey, Plan> tPlans;

dnnl::algorithm Algorithm(Act act, float* alpha) {
  *alpha = 0.f;
  switch (act) {
    case Act::kGelu: return dnnl::algorithm::eltwise_gelu_erf;
    case Act::kGeluTanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case Act::kQuickGelu: *alpha = 1.702f; return dnnl::algorithm::eltwise_swish;  // x·σ(α·x)
    case Act::kSilu: *alpha = 1.f; return dnnl::algorithm::eltwise_swish;
    default: return dnnl::algorithm::undef;
  }
}

Plan& GetPlan(int64_t m, int64_t n, int64_t k, bool bias, Act act, bool residual) {
  const PlanKey key{m, n, k, bias, static_cast<int>(act), residual};
  auto it = tPlans.find(key);
  if (it != tPlans.end()) return it->second;
  const auto f32 = memory::data_type::f32;
  memory::desc src({m, k}, f32, memory::format_tag::ab);
  memory::desc wAny({k, n}, f32, memory::format_tag::any);
  memory::desc b({1, n}, f32, memory::format_tag::ab);
  memory::desc dst({m, n}, f32, memory::format_tag::ab);
  dnnl::post_ops ops;
  if (act != Act::kNone) {
    float alpha = 0.f;
    const dnnl::algorithm alg = Algorithm(act, &alpha);
    ops.append_eltwise(1.f, alg, alpha, 0.f);
  }
  if (residual) ops.append_binary(dnnl::algorithm::binary_add, dst);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wAny, bias ? b : memory::desc(), dst), attr, Engine());
  Plan plan{dnnl::matmul(pd), src, pd.weights_desc(), b, dst};
  return tPlans.emplace(key, std::move(plan)).first->second;
}

// The layout oneDNN prefers for this weight. It depends on the CPU and on (n, k), not on the row count (checked
// for 1 to 4096 rows), so one packing serves every call; a plan that wants another layout gets a per-call reorder.
memory::desc PreferredLayout(int64_t n, int64_t k) { return GetPlan(128, n, k, false, Act::kNone, false).weights; }

bool NoGradNeeded(const at::Tensor& x, const at::Tensor& b, const at::Tensor& r) {
  if (!at::GradMode::is_enabled()) return true;
  for (const at::Tensor* t : {&x, &b, &r})
    if (t->defined() && t->requires_grad()) return false;
  return true;
}
}  // namespace

PackedPtr PackWeight(const at::Tensor& w) {
  if (!gPrepack || !sgemm::Applies({&w}) || w.dim() != 2 || w.numel() == 0 || w.requires_grad()) return nullptr;
  const int64_t n = w.size(0), k = w.size(1);
  const memory::desc want = PreferredLayout(n, k);
  const at::Tensor plain = w.contiguous();
  auto buffer = std::make_shared<Buffer>(at::empty({static_cast<int64_t>(want.get_size())}, w.options().dtype(at::kByte)));
  Reorder(PlainDesc(n, k), plain.data_ptr(), want, buffer->bytes.data_ptr());
  return std::make_shared<const PackedWeight>(PackedWeight{std::move(buffer), 0, n, k, want});
}

at::Tensor UnpackWeight(const PackedWeight& p) {
  at::Tensor w = at::empty({p.n, p.k}, at::TensorOptions().dtype(at::kFloat));
  Reorder(p.desc, p.data(), PlainDesc(p.n, p.k), w.data_ptr());
  return w;
}

PackedPtr PackedRows(const PackedPtr& p, int64_t start, int64_t length) {
  // In the usual AVX-512 layout (BA16a64b) blocks of 64 output rows are outermost: rows [64·i, 64·j) are one span of
  // the buffer, itself laid out as a (k, 64·(j − i)) weight.
  constexpr int64_t kBlock = 64;
  const auto f32 = memory::data_type::f32;
  const auto tag = memory::format_tag::BA16a64b;
  if (start < 0 || length <= 0 || start + length > p->n || start % kBlock != 0 ||
      (length % kBlock != 0 && start + length != p->n) || p->desc != memory::desc({p->k, p->n}, f32, tag))
    return nullptr;
  const int64_t blockElems = p->desc.data.format_desc.blocking.strides[1];  // elements per block of 64 rows
  const int64_t offset = p->offset + (start / kBlock) * blockElems * 4;
  return std::make_shared<const PackedWeight>(
      PackedWeight{p->buffer, offset, length, p->k, memory::desc({p->k, length}, f32, tag)});
}

std::vector<int64_t> PackedSizes(const PackedWeight& p) { return {p.n, p.k}; }
size_t PackedNbytes(const PackedWeight& p) { return p.desc.get_size(); }

at::Tensor PackedLinear(const at::Tensor& x, const PackedWeight& w, const at::Tensor& b, Act act,
                        const at::Tensor& residual) {
  const int64_t n = w.n, k = w.k;
  if (!sgemm::Applies({&x, &b, &residual}) || !NoGradNeeded(x, b, residual) || x.dim() < 1 || x.size(-1) != k ||
      (b.defined() && (b.dim() != 1 || b.size(0) != n)))
    return at::Tensor();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  const int64_t m = x.numel() / k;
  if (residual.defined() && residual.sizes().vec() != shape) {  // a broadcast residual: added after
    at::Tensor y = PackedLinear(x, w, b, act, at::Tensor());
    return y.defined() ? y + residual : y;
  }
  if (m == 0) return residual.defined() ? residual.clone() : at::empty(shape, x.options());
  const at::Tensor x2 = x.reshape({m, k}).contiguous();
  const at::Tensor r2 = residual.defined() ? residual.reshape({m, n}).contiguous() : at::Tensor();
  const at::Tensor bias = b.defined() ? b.contiguous() : b;  // held until the primitive ran
  at::Tensor y = at::empty({m, n}, x.options());
  const Plan& plan = GetPlan(m, n, k, b.defined(), act, residual.defined());
  const dnnl::matmul& prim = plan.prim;
  const memory::desc &src = plan.src, &wants = plan.weights, &bdesc = plan.bias, &dst = plan.dst;
  at::Tensor relaid;  // the weight in another layout, for a plan that wants one (not seen on x86-64)
  void* wdata = w.data();
  if (wants != w.desc) {
    relaid = at::empty({static_cast<int64_t>(wants.get_size())}, x.options().dtype(at::kByte));
    Reorder(w.desc, wdata, wants, relaid.data_ptr());
    wdata = relaid.data_ptr();
  }
  dnnl::engine& eng = Engine();
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(src, eng, x2.data_ptr())},
                                       {DNNL_ARG_WEIGHTS, memory(wants, eng, wdata)},
                                       {DNNL_ARG_DST, memory(dst, eng, y.data_ptr())}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, memory(bdesc, eng, bias.data_ptr()));
  if (residual.defined()) {
    const int index = act != Act::kNone ? 1 : 0;  // the binary post-op's position
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1, memory(dst, eng, r2.data_ptr()));
  }
  dnnl::stream s(eng);
  prim.execute(s, args);
  s.wait();
  return y.view(shape);
}

#else  // no oneDNN at build time: nothing is ever packed

struct PackedWeight {};
PackedPtr PackWeight(const at::Tensor&) { return nullptr; }
at::Tensor UnpackWeight(const PackedWeight&) { throw std::logic_error("packed weights need oneDNN"); }
PackedPtr PackedRows(const PackedPtr&, int64_t, int64_t) { return nullptr; }
std::vector<int64_t> PackedSizes(const PackedWeight&) { return {}; }
size_t PackedNbytes(const PackedWeight&) { return 0; }
at::Tensor PackedLinear(const at::Tensor&, const PackedWeight&, const at::Tensor&, Act, const at::Tensor&) {
  return at::Tensor();
}

#endif

// A linear op's weight argument: the packed path when it applies, else the plain tensor (unpacking a packed handle
// for good) and the unfused ops.
at::Tensor LinearActArg(const Napi::CallbackInfo& info, size_t xi, size_t wi, size_t bi, Act act, size_t ri) {
  const at::Tensor x = ArgTensor(info, xi);
  const c10::optional<at::Tensor> b = ArgOptTensor(info, bi);
  const c10::optional<at::Tensor> r = ri < info.Length() ? ArgOptTensor(info, ri) : c10::nullopt;
  if (PackedPtr p = ArgWeight(info, wi).packed) {
    at::Tensor y = PackedLinear(x, *p, b.value_or(at::Tensor()), act, r.value_or(at::Tensor()));
    if (y.defined()) return y;
  }
  return Unfused(x, ArgTensor(info, wi), b, act, r);
}

void InitPacked(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("linearAct", {
    // linearAct(x, w, b|null, act, residual|null): act(x·Wᵀ + b) + residual
    return dedos::Ret(env, LinearActArg(info, 0, 1, 2, ParseAct(dedos::ArgString(info, 3)), 4));
  });
  DEDOS_OP("prepackWeight", {
    // prepackWeight(w): replaces the handle's plain tensor by its packed form; the plain bytes freed (0: left
    // plain, because packing does not apply or other tensors share the storage).
    return Napi::Number::New(env, static_cast<double>(dedos::PackHandle(info, 0)));
  });
  DEDOS_OP("isPrepacked", { return Napi::Boolean::New(env, dedos::ArgWeight(info, 0).packed != nullptr); });
  DEDOS_OP("setPrepack", {
    gPrepack = dedos::ArgBool(info, 0);
    return env.Undefined();
  });
  DEDOS_OP("packedBytes", { return Napi::Number::New(env, static_cast<double>(gPackedBytes.load())); });
  DEDOS_OP("prepackAvailable", {
#ifdef DEDOS_DNNL
    return Napi::Boolean::New(env, gPrepack && sgemm::Enabled());
#else
    return Napi::Boolean::New(env, false);
#endif
  });
}

}  // namespace dedos
