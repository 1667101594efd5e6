// oneDNN's sgemm, resolved at load time, and the operand views it reads. Shared by the fast paths (gemm.cpp)
// and the ATen matrix-product kernels routed onto it (aten-gemm.cpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <initializer_list>

namespace dedos::sgemm {

// Whether dnnl_sgemm was found in the process (a libtorch linked to a shared oneDNN) and is not switched off
// (DEDOS_DNNL_GEMM=0, or SetEnabled(false) at run time).
bool Enabled();
void SetEnabled(bool on);
bool Found();

// C := alpha·op(A)·op(B) + beta·C, all row-major; throws on a oneDNN error status.
void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);

// CPU float32 strided tensors (undefined ones are skipped), outside CPU autocast regions, with sgemm enabled.
bool Applies(std::initializer_list<const at::Tensor*> ts);

// A (rows × cols) matrix as sgemm reads it: row-major as it is ('N'), column-major as the transpose of a row-major
// matrix ('T'), anything else as a row-major copy. `ld` is the leading dimension sgemm expects.
struct Operand {
  at::Tensor t;
  char trans;
  int64_t ld;
};
bool IsRowMajor(const at::Tensor& m);
Operand AsOperand(const at::Tensor& m);

// The same for the last two dimensions of a (batch, rows, cols) tensor whose batch stride may be anything
// (0 for a broadcast operand): trans/ld describe every slice; a copy is made only when a slice is neither layout.
struct BatchOperand {
  at::Tensor t;
  char trans;
  int64_t ld;
  int64_t batchStride;
};
BatchOperand AsBatchOperand(const at::Tensor& m);

}  // namespace dedos::sgemm

namespace dedos {
// F.linear: sgemm forward (and backward, when a gradient is needed), ATen where sgemm does not apply (gemm.cpp).
at::Tensor LinearAny(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b);
}  // namespace dedos
