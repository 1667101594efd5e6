// Shared pieces of the addon: the tensor handle class and argument conversion helpers.
// Only ATen is included here (not <torch/torch.h>) to keep each translation unit's compile time down.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <functional>
#include <string>
#include <vector>

#include "packed.h"

namespace dedos {

// Tensors live in a native slot table; JavaScript holds a plain number (slot + generation), so creating a
// tensor costs no JS object, no N-API reference and no finalizer. `FreeTensor` releases the slot (and the
// storage, when it was the last reference) immediately; a stale number is detected by its generation.
double StoreTensor(Napi::Env env, at::Tensor t);
at::Tensor& LookupTensor(Napi::Env env, const Napi::Value& v, const std::string& what);
bool FreeTensor(Napi::Env env, double id);

// Live-tensor accounting, for leak tests and diagnostics.
int64_t LiveHandles();
int64_t ReportedBytes();

// ---- argument access ----
// A tensor argument. A handle holding a prepacked weight (prepackWeight) is unpacked for good first: whatever
// reads it as a plain tensor gets the plain values.
at::Tensor& ArgTensor(const Napi::CallbackInfo& info, size_t i);
// A linear weight argument as its handle holds it: the packed form, or (packed == nullptr) the plain tensor.
struct WeightArg {
  PackedPtr packed;
  at::Tensor* plain;
};
WeightArg ArgWeight(const Napi::CallbackInfo& info, size_t i);
// What a tensor argument is, without unpacking a packed weight: dtype, device, sizes, requires_grad, contiguity.
struct TensorMeta {
  at::ScalarType dtype;
  at::Device device;
  std::vector<int64_t> sizes;
  bool requiresGrad;
  bool contiguous;
};
TensorMeta ArgMeta(const Napi::CallbackInfo& info, size_t i);
// Replaces the handle's tensor by its packed form (PackWeight) when the handle is the only owner of the tensor and
// its storage; returns the plain bytes freed (0: left as it was).
size_t PackHandle(const Napi::CallbackInfo& info, size_t i);
// A new handle holding a packed weight.
Napi::Value RetPacked(Napi::Env env, PackedPtr p);
c10::optional<at::Tensor> ArgOptTensor(const Napi::CallbackInfo& info, size_t i);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i);
c10::optional<int64_t> ArgOptInt(const Napi::CallbackInfo& info, size_t i);
double ArgDouble(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> ArgOptDouble(const Napi::CallbackInfo& info, size_t i);
bool ArgBool(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> ArgInts(const Napi::CallbackInfo& info, size_t i);
c10::optional<std::vector<int64_t>> ArgOptInts(const Napi::CallbackInfo& info, size_t i);
std::vector<double> ArgDoubles(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> ArgTensors(const Napi::CallbackInfo& info, size_t i);
at::Scalar ArgScalar(const Napi::CallbackInfo& info, size_t i);
at::ScalarType ArgDType(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::ScalarType> ArgOptDType(const Napi::CallbackInfo& info, size_t i);
at::Device ArgDevice(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Generator> ArgOptGenerator(const Napi::CallbackInfo& info, size_t i);

// ---- results ----
Napi::Value Ret(Napi::Env env, const at::Tensor& t);
Napi::Value Ret(Napi::Env env, const std::vector<at::Tensor>& ts);
Napi::Value Ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts);

// Runs `body`, turning C++ exceptions (c10::Error and others) into JavaScript Errors prefixed with the op name.
using Body = std::function<Napi::Value(const Napi::CallbackInfo&)>;
void Def(Napi::Env env, Napi::Object exports, const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&));
[[noreturn]] void ThrowOpError(Napi::Env env, const char* op, const char* what);

// Registers `name` whose body may throw; the body is a capture-less lambda.
#define DEDOS_OP(name, ...)                                                                                  \
  dedos::Def(env, exports, name, [](const Napi::CallbackInfo& info) -> Napi::Value {                          \
    Napi::Env env = info.Env();                                                                              \
    try {                                                                                                     \
      __VA_ARGS__                                                                                             \
    } catch (const Napi::Error&) {                                                                            \
      throw;                                                                                                  \
    } catch (const c10::Error& e) {                                                                           \
      dedos::ThrowOpError(env, name, e.what_without_backtrace());                                             \
    } catch (const std::exception& e) {                                                                       \
      dedos::ThrowOpError(env, name, e.what());                                                               \
    }                                                                                                         \
  })

void InitTensorOps(Napi::Env env, Napi::Object exports);
void InitNN(Napi::Env env, Napi::Object exports);
void InitAutograd(Napi::Env env, Napi::Object exports);
void InitIO(Napi::Env env, Napi::Object exports);
void InstallCpuAllocator(Napi::Env env, Napi::Object exports);
void InitDistributed(Napi::Env env, Napi::Object exports);
void InitGemm(Napi::Env env, Napi::Object exports);
void InitAtenGemm(Napi::Env env, Napi::Object exports);
void InitPacked(Napi::Env env, Napi::Object exports);

}  // namespace dedos
