// Every float32 CPU matrix product ATen makes, on oneDNN's sgemm: the CPU kernels of aten::mm, addmm, bmm and
// baddbmm are replaced (for the whole process) by ones that call sgemm, and fall back to ATen's own CPU kernels
// (at::cpu::*) whenever sgemm does not apply (other dtypes, autocast, DEDOS_DNNL_GEMM=0, sgemm not found).
//
// Why at the dispatcher: matmul, einsum, linear on N-D inputs, attention and every autograd formula of these
// (dA = dC·Bᵀ, dB = Aᵀ·dC, …) reach the BLAS through these four ops. Libtorch would run them on the system BLAS,
// which on Debian is OpenBLAS — possibly pinned to older kernels by OPENBLAS_CORETYPE (this environment pins
// Haswell: matmul 1024³ in 10.8–12.3 ms instead of ~6 ms). oneDNN picks its kernels from the CPU itself.
// Autograd stays ATen's: only the CPU kernel below it changes, so gradients, double backward and in-place checks
// are exactly as before; results differ from OpenBLAS only by rounding.
#include <ATen/Parallel.h>
#include <ATen/ops/addmm_cpu_dispatch.h>
#include <ATen/ops/baddbmm_cpu_dispatch.h>
#include <ATen/ops/bmm_cpu_dispatch.h>
#include <ATen/ops/mm_cpu_dispatch.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <memory>
#include <mutex>

#include "common.h"
#include "sgemm.h"

namespace dedos {
namespace {

using sgemm::BatchOperand;
using sgemm::Operand;

// Below this many multiply-adds per matrix, a batch runs one single-threaded sgemm per thread over its slices
// (the aggregator's per-pixel products, attention of short rows); above, each product uses every thread.
constexpr int64_t kSmallProduct = 1 << 20;

// c := alpha·a·b + beta·c over a batch, a (B, m, k), b (B, k, n), c (B, m, n) contiguous.
void BatchGemm(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float alpha, float beta) {
  const int64_t batch = c.size(0), m = c.size(1), n = c.size(2), k = a.size(2);
  const BatchOperand oa = sgemm::AsBatchOperand(a), ob = sgemm::AsBatchOperand(b);
  const float* pa = oa.t.data_ptr<float>();
  const float* pb = ob.t.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  auto run = [&](int64_t i) {
    sgemm::Gemm(oa.trans, ob.trans, m, n, k, alpha, pa + i * oa.batchStride, oa.ld, pb + i * ob.batchStride, ob.ld,
                beta, pc + i * m * n, n);
  };
  if (batch > 1 && m * n * k < kSmallProduct) {
    // oneDNN runs sequentially inside a parallel region, so each thread does whole products.
    at::parallel_for(0, batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) run(i);
    });
  } else {
    for (int64_t i = 0; i < batch; i++) run(i);
  }
}

// c prefilled with beta·self (broadcast to c's shape) when beta ≠ 0, as BLAS's C := α·A·B + β·C expects; beta = 0
// ignores self entirely (NaN included), as ATen does.
at::Tensor Prefilled(const at::Tensor& self, at::IntArrayRef shape, const at::TensorOptions& options, float beta) {
  if (beta == 0.f) return at::empty(shape, options);
  at::Tensor c = at::empty(shape, options);
  c.copy_(self.expand(shape));
  return c;
}

bool Products(const at::Tensor& a, const at::Tensor& b, int64_t dims) {
  return sgemm::Applies({&a, &b}) && a.dim() == dims && b.dim() == dims;
}

// (m, k)·(k, n) with c already holding beta·self: the sgemm call itself, with the empty cases handled.
void MatrixProduct(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float alpha, float beta) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.f) c.zero_();
    return;
  }
  const Operand oa = sgemm::AsOperand(a), ob = sgemm::AsOperand(b);
  sgemm::Gemm(oa.trans, ob.trans, m, n, k, alpha, oa.t.data_ptr<float>(), oa.ld, ob.t.data_ptr<float>(), ob.ld, beta,
              c.data_ptr<float>(), n);
}

bool Shapes2(const at::Tensor& a, const at::Tensor& b) { return a.size(1) == b.size(0); }
bool Shapes3(const at::Tensor& a, const at::Tensor& b) {
  return a.size(0) == b.size(0) && a.size(2) == b.size(1);
}

at::Tensor Mm(const at::Tensor& a, const at::Tensor& b) {
  if (!Products(a, b, 2) || !Shapes2(a, b)) return at::cpu::mm(a, b);
  at::Tensor c = at::empty({a.size(0), b.size(1)}, a.options());
  MatrixProduct(a, b, c, 1.f, 0.f);
  return c;
}

at::Tensor Addmm(const at::Tensor& self, const at::Tensor& a, const at::Tensor& b, const at::Scalar& beta,
                 const at::Scalar& alpha) {
  if (!Products(a, b, 2) || !Shapes2(a, b) || !sgemm::Applies({&self}) || beta.isComplex() || alpha.isComplex())
    return at::cpu::addmm(self, a, b, beta, alpha);
  const float fb = beta.toFloat(), fa = alpha.toFloat();
  at::Tensor c = Prefilled(self, {a.size(0), b.size(1)}, a.options(), fb);
  MatrixProduct(a, b, c, fa, fb);
  return c;
}

at::Tensor Bmm(const at::Tensor& a, const at::Tensor& b) {
  if (!Products(a, b, 3) || !Shapes3(a, b)) return at::cpu::bmm(a, b);
  at::Tensor c = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  if (c.numel() == 0) return c;
  if (a.size(2) == 0) return c.zero_();
  BatchGemm(a, b, c, 1.f, 0.f);
  return c;
}

at::Tensor Baddbmm(const at::Tensor& self, const at::Tensor& a, const at::Tensor& b, const at::Scalar& beta,
                   const at::Scalar& alpha) {
  if (!Products(a, b, 3) || !Shapes3(a, b) || !sgemm::Applies({&self}) || beta.isComplex() || alpha.isComplex())
    return at::cpu::baddbmm(self, a, b, beta, alpha);
  const float fb = beta.toFloat(), fa = alpha.toFloat();
  at::Tensor c = Prefilled(self, {a.size(0), a.size(1), b.size(2)}, a.options(), fb);
  if (c.numel() == 0) return c;
  if (a.size(2) == 0) return fb == 0.f ? c.zero_() : c;
  BatchGemm(a, b, c, fa, fb);
  return c;
}

std::unique_ptr<torch::Library> gLibrary;
std::once_flag gRegistered;

// A warning handler that drops the dispatcher's "overriding a previously registered kernel" notes.
struct QuietHandler : c10::WarningHandler {
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};

}  // namespace

void InitAtenGemm(Napi::Env env, Napi::Object exports) {
  // Once per process (every worker thread that loads the addon runs this init).
  std::call_once(gRegistered, [] {
    if (!sgemm::Found()) return;
    QuietHandler quiet;
    c10::Warning::WarningHandlerGuard guard(&quiet);
    gLibrary = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::CPU, __FILE__, __LINE__);
    gLibrary->impl("mm", TORCH_FN(Mm));
    gLibrary->impl("addmm", TORCH_FN(Addmm));
    gLibrary->impl("bmm", TORCH_FN(Bmm));
    gLibrary->impl("baddbmm", TORCH_FN(Baddbmm));
  });
  DEDOS_OP("atenGemmRouted", { return Napi::Boolean::New(env, gLibrary != nullptr && sgemm::Enabled()); });
}

}  // namespace dedos
