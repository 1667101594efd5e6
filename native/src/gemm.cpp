// Fast paths on oneDNN's sgemm: F.linear (forward and backward), and for inference pointwise and small-map
// convolutions and attention.
//
// Why: libtorch runs fp32 linears and matmuls through the system BLAS (on Debian, OpenBLAS, whose kernel choice
// may be pinned by OPENBLAS_CORETYPE and then ignore AVX-512), and its oneDNN convolutions reorder the
// (out, in, kh, kw) weight into a blocked layout on every call, which dominates on small maps with many channels
// (SD's 1280-channel convs at 6² and 12²: the weight is 59 MB, the map 36 pixels). oneDNN's sgemm reads plain
// row-major operands as they are, picks its kernels from the CPU's ISA, and needs no persistent packed copy.
//
// Every op here computes the same function as its ATen counterpart (up to float rounding) and falls back to it
// whenever the fast path does not apply: (except for F.linear) a tensor that needs a gradient, non-CPU or
// non-float32 tensors, CPU autocast, shapes outside the cases below, or a libtorch without a separately loaded
// oneDNN (pytorch.org builds link it statically and hide its symbols; then dnnl_sgemm is simply not found).
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <string>

#include "common.h"
#include "sgemm.h"

namespace dedos {
namespace {

using sgemm::AsOperand;
using sgemm::Gemm;
using sgemm::IsRowMajor;
using sgemm::Operand;

// CPU float32 strided tensors with sgemm found and enabled (see sgemm.h).
bool SgemmApplies(std::initializer_list<const at::Tensor*> ts) { return sgemm::Applies(ts); }

// Whether autograd would record an op on these tensors.
bool NeedsGrad(std::initializer_list<const at::Tensor*> ts) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : ts)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

// The inference paths: sgemm applies and no gradient is needed.
bool Eligible(std::initializer_list<const at::Tensor*> ts) { return SgemmApplies(ts) && !NeedsGrad(ts); }

// Up to this many rows, linears run as yᵀ = W·xᵀ (see Linear).
constexpr int64_t kFewRows = 256;

// Shapes the sgemm linear handles: x (…, k), w (n, k), b (n) or undefined, none of them empty.
bool LinearShapes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1) && x.numel() > 0 && w.numel() > 0 &&
         (!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)));
}

// y = x·Wᵀ + b over the last dimension of x.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bOpt) {
  at::Tensor b = bOpt.has_value() ? *bOpt : at::Tensor();
  if (!Eligible({&x, &w, &b}) || !LinearShapes(x, w, b)) return at::linear(x, w, bOpt);
  const int64_t n = w.size(0), k = w.size(1);
  const Operand a = AsOperand(x.reshape({-1, k}));  // a view for contiguous tokens and for NCHW maps seen as tokens
  const Operand wt = AsOperand(w);
  const int64_t m = a.t.size(0);
  at::Tensor y = at::empty({m, n}, x.options());
  if (m <= kFewRows) {
    // Few rows: yᵀ = W·xᵀ, then one transposed pass that also adds the bias. oneDNN then splits and blocks the
    // weight's many rows rather than the few tokens: measured 1.2–3.3× faster for SD's 12² and 6² maps (144 and
    // 36 tokens) and the 77 text tokens, equal from about 256 rows on.
    at::Tensor yt = at::empty({n, m}, x.options());
    Gemm(wt.trans, a.trans == 'N' ? 'T' : 'N', n, m, k, 1.f, wt.t.data_ptr<float>(), wt.ld, a.t.data_ptr<float>(), a.ld,
         0.f, yt.data_ptr<float>(), m);
    if (b.defined())
      at::add_out(y, yt.t(), b);
    else
      y.copy_(yt.t());
  } else {
    // The bias is broadcast into C first and accumulated into (beta = 1). (A fresh buffer: contiguous() of an
    // expanded one-row bias would be the bias itself.)
    if (b.defined()) y.copy_(b.expand({m, n}));
    Gemm(a.trans, wt.trans == 'N' ? 'T' : 'N', m, n, k, 1.f, a.t.data_ptr<float>(), a.ld, wt.t.data_ptr<float>(), wt.ld,
         b.defined() ? 1.f : 0.f, y.data_ptr<float>(), n);
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  return y.view(shape);
}

// c = a·b for 2-D operands in any layout AsOperand reads (row-major, or transposed views of row-major).
at::Tensor Mm(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  at::Tensor c = at::empty({m, n}, a.options());
  if (m == 0 || n == 0) return c;
  if (k == 0) return c.zero_();
  const Operand oa = AsOperand(a), ob = AsOperand(b);
  Gemm(oa.trans, ob.trans, m, n, k, 1.f, oa.t.data_ptr<float>(), oa.ld, ob.t.data_ptr<float>(), ob.ld, 0.f,
       c.data_ptr<float>(), n);
  return c;
}

// y = x·Wᵀ + b with its backward on sgemm too: dx = dy·W, dW = dyᵀ·x, db = Σ dy. Training's linears otherwise run
// on the system BLAS, which may be pinned to older kernels (OPENBLAS_CORETYPE); oneDNN picks the CPU's best.
struct LinearFunction : public torch::autograd::Function<LinearFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const c10::optional<at::Tensor>& b) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["bias"] = b.has_value() && b->defined();
    return Linear(x, w, b);  // grad mode is off inside forward: the sgemm path
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const bool bias = ctx->saved_data["bias"].toBool();
    const int64_t n = w.size(0), k = w.size(1);
    const at::Tensor g = grads[0].reshape({-1, n});  // (m, n)
    // A double backward (create_graph) needs differentiable products: ATen's.
    const bool graph = at::GradMode::is_enabled();
    auto mm = [&](const at::Tensor& a, const at::Tensor& b) {
      return graph || !SgemmApplies({&a, &b}) ? at::mm(a, b) : Mm(a, b);
    };
    at::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = mm(g, w).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = mm(g.t(), x.reshape({-1, k}));
    if (bias && ctx->needs_input_grad(2)) db = g.sum(0);
    return {dx, dw, db};
  }
};

// Output maps up to this many pixels run 3×3 (k×k) convolutions as im2col + sgemm; larger ones go to ATen
// (oneDNN), whose direct kernels win there and whose per-call weight reorder is then amortised.
constexpr int64_t kIm2colMaxPixels = 256;

// y = conv(x, w) + b (+ residual, same shape as y). The residual joins the bias in C before the product on the
// sgemm paths (one pass over the map less), and is added in place to ATen's fresh output otherwise.
at::Tensor Conv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bOpt,
                  const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                  const std::vector<int64_t>& dilation, int64_t groups, const at::Tensor& residual) {
  at::Tensor b = bOpt.has_value() ? *bOpt : at::Tensor();
  auto aten = [&] {
    at::Tensor y = at::conv2d(x, w, bOpt, stride, padding, dilation, groups);
    if (!residual.defined()) return y;
    // In place only on the inference path, where nothing records y for a backward.
    return Eligible({&x, &w, &b, &residual}) && residual.sizes() == y.sizes() ? y.add_(residual) : y + residual;
  };
  if (!Eligible({&x, &w, &b}) || groups != 1 || x.dim() != 4 || w.dim() != 4 || stride.size() != 2 ||
      padding.size() != 2 || dilation.size() != 2 || dilation[0] != 1 || dilation[1] != 1 || x.size(1) != w.size(1) ||
      x.numel() == 0 || w.numel() == 0 || (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))))
    return aten();
  const int64_t batch = x.size(0), cin = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t cout = w.size(0), kh = w.size(2), kw = w.size(3);
  const int64_t sh = stride[0], sw = stride[1], ph = padding[0], pw = padding[1];
  if (sh < 1 || sw < 1 || ph < 0 || pw < 0 || h + 2 * ph < kh || wd + 2 * pw < kw) return aten();
  const int64_t ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1, pixels = ho * wo;
  const bool pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  if (!pointwise && pixels > kIm2colMaxPixels) return aten();
  if (residual.defined() && (!Eligible({&residual}) || residual.sizes() != at::IntArrayRef({batch, cout, ho, wo})))
    return aten();
  const int64_t depth = cin * kh * kw;
  at::Tensor xc = x.contiguous();
  at::Tensor wm = w.contiguous().view({cout, depth});
  at::Tensor y = at::empty({batch, cout, pixels}, x.options());
  if (residual.defined()) {
    const at::Tensor r = residual.reshape({batch, cout, pixels});
    if (b.defined()) at::add_out(y, r, b.view({1, cout, 1}));
    else y.copy_(r);
  } else if (b.defined()) {
    y.copy_(b.view({1, cout, 1}).expand({batch, cout, pixels}));
  }
  for (int64_t i = 0; i < batch; i++) {
    at::Tensor cols = pointwise ? xc[i].view({cin, pixels})
                                : at::im2col(xc.narrow(0, i, 1), {kh, kw}, {1, 1}, {ph, pw}, {sh, sw}).view({depth, pixels});
    Gemm('N', 'N', cout, pixels, depth, 1.f, wm.data_ptr<float>(), depth, cols.data_ptr<float>(), pixels,
         b.defined() || residual.defined() ? 1.f : 0.f, y.data_ptr<float>() + i * cout * pixels, pixels);
  }
  return y.view({batch, cout, ho, wo});
}

// softmax(scale·Q·Kᵀ + mask)·V for q (B, H, L, d), k (B, H, S, d), v (B, H, S, e), each with a unit-stride last
// dimension (head views of (B, L, H·d) projections qualify as they are). Query blocks are scored, normalised and
// applied one at a time, so no (B, H, L, S) score tensor is ever made.
// Returns (B, H, L, e) as a view of a (B, L, H, e) tensor: reshaping it back to (B, L, H·e) is free.
// An undefined tensor means "not applicable here" (the caller falls back to its own attention).
at::Tensor Attention(const at::Tensor& qIn, const at::Tensor& kIn, const at::Tensor& vIn, double scale,
                     const at::Tensor& maskIn) {
  if (!Eligible({&qIn, &kIn, &vIn, &maskIn}) || qIn.dim() != 4 || kIn.dim() != 4 || vIn.dim() != 4) return at::Tensor();
  const int64_t batch = qIn.size(0), heads = qIn.size(1), lq = qIn.size(2), d = qIn.size(3);
  const int64_t lk = kIn.size(2), e = vIn.size(3);
  if (kIn.size(0) != batch || kIn.size(1) != heads || kIn.size(3) != d || vIn.size(0) != batch ||
      vIn.size(1) != heads || vIn.size(2) != lk || lq == 0 || lk == 0 || d == 0 || e == 0)
    return at::Tensor();
  // An additive mask broadcast to (B, H, L, S) (a view: no copy), added to each block of scores.
  at::Tensor mask;
  if (maskIn.defined()) {
    if (maskIn.dim() > 4) return at::Tensor();
    const std::vector<int64_t> want{batch, heads, lq, lk};
    if (at::infer_size(maskIn.sizes(), want) != want) return at::Tensor();
    mask = maskIn.expand(want);
  }
  // Each (b, h) slice must be a row-major matrix.
  auto usable = [](const at::Tensor& t) { return IsRowMajor(t[0][0]); };
  const at::Tensor q = usable(qIn) ? qIn : qIn.contiguous();
  const at::Tensor k = usable(kIn) ? kIn : kIn.contiguous();
  const at::Tensor v = usable(vIn) ? vIn : vIn.contiguous();
  auto ld = [](const at::Tensor& t) { return t.size(2) > 1 ? t.stride(2) : t.size(3); };
  const int64_t ldq = ld(q), ldk = ld(k), ldv = ld(v);
  at::Tensor out = at::empty({batch, lq, heads, e}, q.options());
  // Query blocks of up to 32 MB of scores (the whole of a 2304-token head), one after the other, each product and
  // the softmax (in place) on all of ATen's threads. Measured on the SD-2 UNet: as fast as 2 MB blocks on idle
  // cores and as fast as blocks in parallel with single-threaded products under CPU contention, with the fewest
  // fork/joins (3 per block).
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(lq, (8 << 20) / lk));
  at::Tensor scores = at::empty({rows, lk}, q.options());
  const float alpha = static_cast<float>(scale);
  for (int64_t bi = 0; bi < batch; bi++) {
    for (int64_t hi = 0; hi < heads; hi++) {
      const float* qp = q.data_ptr<float>() + bi * q.stride(0) + hi * q.stride(1);
      const float* kp = k.data_ptr<float>() + bi * k.stride(0) + hi * k.stride(1);
      const float* vp = v.data_ptr<float>() + bi * v.stride(0) + hi * v.stride(1);
      float* op = out.data_ptr<float>() + bi * lq * heads * e + hi * e;
      for (int64_t r0 = 0; r0 < lq; r0 += rows) {
        const int64_t n = std::min(rows, lq - r0);
        at::Tensor s = scores.narrow(0, 0, n);
        Gemm('N', 'T', n, lk, d, alpha, qp + r0 * ldq, ldq, kp, ldk, 0.f, s.data_ptr<float>(), lk);
        if (mask.defined()) s.add_(mask[bi][hi].narrow(0, r0, n));
        // In place: ATen's last-dimension softmax reads each row's element before writing it.
        at::_softmax_out(s, s, 1, false);
        Gemm('N', 'N', n, e, lk, 1.f, s.data_ptr<float>(), lk, vp, ldv, 0.f, op + r0 * heads * e, heads * e);
      }
    }
  }
  return out.permute({0, 2, 1, 3});
}

}  // namespace

// F.linear: sgemm forward and backward when a gradient is needed, the inference path when none is, ATen when sgemm
// does not apply (other devices and dtypes, autocast, DEDOS_DNNL_GEMM=0).
at::Tensor LinearAny(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bOpt) {
  at::Tensor b = bOpt.has_value() ? *bOpt : at::Tensor();
  if (!NeedsGrad({&x, &w, &b})) return Linear(x, w, bOpt);
  if (!SgemmApplies({&x, &w, &b}) || !LinearShapes(x, w, b)) return at::linear(x, w, bOpt);
  return LinearFunction::apply(x, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt);
}

void InitGemm(Napi::Env env, Napi::Object exports) {
  // linear(x, w, b|null) and linearInference(x, w, b|null): the same op since both route on whether a gradient is
  // needed; a prepacked weight runs as one oneDNN matmul (packed.cpp).
  DEDOS_OP("linear", { return dedos::Ret(env, LinearActArg(info, 0, 1, 2, Act::kNone, 3)); });
  DEDOS_OP("linearInference", { return dedos::Ret(env, LinearActArg(info, 0, 1, 2, Act::kNone, 3)); });
  DEDOS_OP("conv2dInference", {
    // conv2dInference(x, w, b|null, stride, padding, dilation, groups, residual?|null): as conv2d, + residual
    const c10::optional<at::Tensor> r = info.Length() > 7 ? dedos::ArgOptTensor(info, 7) : c10::nullopt;
    return dedos::Ret(env, Conv2d(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                  dedos::ArgInts(info, 3), dedos::ArgInts(info, 4), dedos::ArgInts(info, 5),
                                  dedos::ArgInt(info, 6), r.has_value() ? *r : at::Tensor()));
  });
  DEDOS_OP("attentionInference", {
    // attentionInference(q, k, v, scale, mask|null): (B, H, L, d), (B, H, S, d), (B, H, S, e) → (B, H, L, e),
    // an additive mask broadcastable to (B, H, L, S); null when the fast path does not apply.
    const c10::optional<at::Tensor> mask = info.Length() > 4 ? dedos::ArgOptTensor(info, 4) : c10::nullopt;
    at::Tensor o = Attention(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgTensor(info, 2),
                             dedos::ArgDouble(info, 3), mask.has_value() ? *mask : at::Tensor());
    return o.defined() ? dedos::Ret(env, o) : env.Null();
  });
  DEDOS_OP("setInferenceGemm", {
    sgemm::SetEnabled(dedos::ArgBool(info, 0));
    return env.Undefined();
  });
  DEDOS_OP("inferenceGemmAvailable", { return Napi::Boolean::New(env, sgemm::Enabled()); });
}

}  // namespace dedos
