// Shared pieces of the addon: the tensor handle class and argument conversion helpers.
// Only ATen is included here (not <torch/torch.h>) to keep each translation unit's compile time down.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <functional>
#include <string>
#include <vector>

namespace dedos {

// A JavaScript handle owning one at::Tensor. `release()` frees the tensor deterministically; the handle
// object itself is collected by V8 later. Memory is reported to V8 as external memory while held.
class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  static Napi::Value Wrap(Napi::Env env, at::Tensor t);
  static bool IsTensor(const Napi::Value& v);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;
  void Release(Napi::Env env);

  at::Tensor tensor;
  int64_t reported = 0;

  // Handles are small and die late (their finalizers run only when the event loop turns); allocating them
  // from slabs of their own keeps them from fragmenting the heap that tensor buffers are carved from.
  static void* operator new(size_t n);
  static void operator delete(void* p);

 private:
  static Napi::FunctionReference* ctor_;
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value IsFreed(const Napi::CallbackInfo& info);
};

// Live-tensor accounting, for leak tests and diagnostics.
int64_t LiveHandles();
int64_t ReportedBytes();

// ---- argument access ----
at::Tensor& ArgTensor(const Napi::CallbackInfo& info, size_t i);
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
bool ArgIsTensor(const Napi::CallbackInfo& info, size_t i);

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

}  // namespace dedos
