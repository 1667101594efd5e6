// oneDNN's sgemm entry point and operand layouts (see sgemm.h).
//
// dnnl_sgemm is looked up at load time rather than linked: Debian's libtorch loads the shared libdnnl.so.2, while
// pytorch.org builds link oneDNN statically and hide its symbols (then every caller falls back to ATen).
#include "sgemm.h"

#include <dlfcn.h>

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace dedos::sgemm {
namespace {

// dnnl_sgemm: row-major, dnnl_dim_t = int64_t, returns dnnl_status_t.
using SgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                        float*, int64_t);

SgemmFn Resolve() {
  void* f = nullptr;
  if (void* h = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_NOLOAD)) f = dlsym(h, "dnnl_sgemm");
  if (f == nullptr) f = dlsym(RTLD_DEFAULT, "dnnl_sgemm");
  return reinterpret_cast<SgemmFn>(f);
}

const SgemmFn kSgemm = Resolve();
// DEDOS_DNNL_GEMM=0 turns every sgemm path off (A/B measurements, debugging).
bool gEnabled = [] {
  const char* e = std::getenv("DEDOS_DNNL_GEMM");
  return !(e != nullptr && e[0] == '0');
}();

}  // namespace

bool Found() { return kSgemm != nullptr; }
bool Enabled() { return kSgemm != nullptr && gEnabled; }
void SetEnabled(bool on) { gEnabled = on; }

void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  const int status = kSgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != 0) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
}

bool Applies(std::initializer_list<const at::Tensor*> ts) {
  if (!Enabled() || at::autocast::is_cpu_enabled()) return false;
  for (const at::Tensor* t : ts)
    if (t->defined() && (!t->device().is_cpu() || t->scalar_type() != at::kFloat || t->layout() != at::kStrided))
      return false;
  return true;
}

namespace {
// trans/ld of a (rows, cols) matrix with these strides, or trans = 0 when it is neither layout.
std::pair<char, int64_t> Layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  if ((cols == 1 || s1 == 1) && (rows == 1 || s0 >= cols)) return {'N', rows > 1 ? s0 : std::max<int64_t>(cols, 1)};
  if ((rows == 1 || s0 == 1) && (cols == 1 || s1 >= rows)) return {'T', cols > 1 ? s1 : std::max<int64_t>(rows, 1)};
  return {0, 0};
}
}  // namespace

bool IsRowMajor(const at::Tensor& m) { return Layout(m.size(0), m.size(1), m.stride(0), m.stride(1)).first == 'N'; }

Operand AsOperand(const at::Tensor& m) {
  const auto [trans, ld] = Layout(m.size(0), m.size(1), m.stride(0), m.stride(1));
  if (trans != 0) return {m, trans, ld};
  return {m.contiguous(), 'N', std::max<int64_t>(m.size(1), 1)};
}

BatchOperand AsBatchOperand(const at::Tensor& m) {
  const auto [trans, ld] = Layout(m.size(1), m.size(2), m.stride(1), m.stride(2));
  if (trans != 0) return {m, trans, ld, m.size(0) > 1 ? m.stride(0) : 0};
  at::Tensor c = m.contiguous();
  return {c, 'N', std::max<int64_t>(m.size(2), 1), m.size(1) * m.size(2)};
}

}  // namespace dedos::sgemm
