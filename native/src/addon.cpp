// Entry point of the native addon: allocator settings, threads, and registration of every op group.
#include <dlfcn.h>
#include <malloc.h>
#include <ATen/Parallel.h>

#include "common.h"

namespace dedos {

static void TuneMalloc() {
  // glibc otherwise hands big freed buffers back to the OS and faults them in again on the next op
  // (thousands of page faults per transformer block). Keep buffers up to the maximum mmap threshold on the heap
  // and never trim it.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
}

// An OpenBLAS entry point, or null. Node loads addons with RTLD_LOCAL, so libtorch's OpenBLAS is not in the
// global scope that dlsym(RTLD_DEFAULT, …) searches: look in the loaded library itself first.
static void* BlasSymbol(const char* name) {
  for (const char* lib : {"libopenblas.so.0", "libblas.so.3"}) {
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* f = dlsym(h, name)) return f;
    }
  }
  return dlsym(RTLD_DEFAULT, name);
}

static void SetBlasThreads(int n) {
  // OpenBLAS keeps its own thread count and ignores at::set_num_threads; call it directly when present.
  using SetFn = void (*)(int);
  if (auto f = reinterpret_cast<SetFn>(BlasSymbol("openblas_set_num_threads"))) f(n);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TuneMalloc();
  InstallCpuAllocator(env, exports);
  InitTensorOps(env, exports);
  InitNN(env, exports);
  InitAutograd(env, exports);
  InitIO(env, exports);
  InitDistributed(env, exports);
  InitGemm(env, exports);
  InitAtenGemm(env, exports);
  InitPacked(env, exports);
  DEDOS_OP("setNumThreads", {
    int n = static_cast<int>(dedos::ArgInt(info, 0));
    if (n < 1) throw std::invalid_argument("thread count must be ≥ 1");
    at::set_num_threads(n);
    SetBlasThreads(n);
    return env.Undefined();
  });
  DEDOS_OP("getNumThreads", { return Napi::Number::New(env, at::get_num_threads()); });
  DEDOS_OP("hasCuda", { return Napi::Boolean::New(env, at::hasCUDA()); });
  DEDOS_OP("cudaDeviceCount", { return Napi::Number::New(env, at::hasCUDA() ? static_cast<double>(at::detail::getCUDAHooks().getNumGPUs()) : 0.0); });
  DEDOS_OP("config", { return Napi::String::New(env, at::show_config()); });
  DEDOS_OP("blasInfo", {
    // { core, threads } of the loaded OpenBLAS ({} for another BLAS).
    Napi::Object o = Napi::Object::New(env);
    using NameFn = char* (*)();
    using ThreadsFn = int (*)();
    if (auto f = reinterpret_cast<NameFn>(BlasSymbol("openblas_get_corename"))) o.Set("core", Napi::String::New(env, f()));
    if (auto f = reinterpret_cast<ThreadsFn>(BlasSymbol("openblas_get_num_threads"))) o.Set("threads", Napi::Number::New(env, f()));
    return o;
  });
  return exports;
}

}  // namespace dedos

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return dedos::Init(env, exports); }
NODE_API_MODULE(dedos_native, InitAddon)
