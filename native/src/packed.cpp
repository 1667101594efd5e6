// Linear layers with their epilogue fused, on prepacked weights: y = act(x·Wᵀ + b) (+ residual) as one oneDNN
// matmul primitive at inference.
//
// Why: sgemm re-packs W on every call and leaves the bias, the activation (GELU, QuickGELU, SiLU) and the residual
// add as separate passes over the output. The matmul primitive reads W in the blocked layout it prefers — W is
// reordered once per weight and kept (keyed by the weight tensor, dropped when that tensor dies or changes) — and
// applies bias, activation and residual while the output tile is still in cache.
// Everything else (a gradient needed, other dtypes or devices, autocast, no oneDNN headers at build time,
// DEDOS_PREPACK=0) computes the same function from the unfused ops: LinearAny, the activation, the add.
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "common.h"
#include "sgemm.h"

#ifdef DEDOS_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace dedos {
namespace {

enum class Act { kNone = 0, kGelu, kGeluTanh, kQuickGelu, kSilu };

Act ParseAct(const std::string& s) {
  if (s == "none") return Act::kNone;
  if (s == "gelu") return Act::kGelu;
  if (s == "geluTanh") return Act::kGeluTanh;
  if (s == "quickGelu") return Act::kQuickGelu;
  if (s == "silu") return Act::kSilu;
  throw std::invalid_argument("unknown activation \"" + s + "\" (none, gelu, geluTanh, quickGelu, silu)");
}

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

// DEDOS_PREPACK=0 turns the fused path off (A/B measurements).
bool gPrepack = [] {
  const char* e = std::getenv("DEDOS_PREPACK");
  return !(e != nullptr && e[0] == '0');
}();

#ifdef DEDOS_DNNL
using dnnl::memory;

dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// One primitive per (rows, out, in, bias, activation, residual): oneDNN picks its kernel (and the weight layout)
// for the exact shape; a model has a handful of these.
struct Plan {
  dnnl::matmul prim;
  memory::desc src, weights, bias, dst;
};
using PlanKey = std::tuple<int64_t, int64_t, int64_t, bool, int, bool>;

// A weight reordered into a plan's layout. Keyed by where the weight's numbers are (data pointer, shape, row
// stride), not by its TensorImpl, so views made per call (the halves of a GEGLU projection) find their packed copy;
// tied to the storage's lifetime and the weight's version counter (shared by every view of it).
struct Packed {
  c10::weak_intrusive_ptr<c10::StorageImpl> owner;
  uint32_t version;
  memory::desc desc;
  at::Tensor bytes;  // the packed weight (uint8)
};
using PackedKey = std::tuple<const void*, int64_t, int64_t, int64_t>;  // data, n, k, row stride

std::mutex gMu;
std::map<PlanKey, Plan> gPlans;
std::map<PackedKey, Packed> gPacked;

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
  auto it = gPlans.find(key);
  if (it != gPlans.end()) return it->second;
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
  return gPlans.emplace(key, std::move(plan)).first->second;
}

// w (n, k) row-major in the plan's layout: reordered on first use, again when the weight changed (in-place
// update, new storage) or the layout differs; entries of dead weights are dropped on the way.
const at::Tensor& GetPacked(const at::Tensor& w, const memory::desc& want) {
  const PackedKey key{w.data_ptr(), w.size(0), w.size(1), w.stride(0)};
  auto it = gPacked.find(key);
  if (it != gPacked.end() && !it->second.owner.expired() && it->second.version == w._version() &&
      it->second.desc == want)
    return it->second.bytes;
  for (auto e = gPacked.begin(); e != gPacked.end();) e = e->second.owner.expired() ? gPacked.erase(e) : std::next(e);
  const int64_t n = w.size(0), k = w.size(1);
  at::Tensor plainW = w.contiguous();
  // (n, k) row-major is the (k, n) matrix with strides (1, k): format "ba".
  memory plain(memory::desc({k, n}, memory::data_type::f32, memory::format_tag::ba), Engine(), plainW.data_ptr());
  at::Tensor bytes = at::empty({static_cast<int64_t>(want.get_size())}, w.options().dtype(at::kByte));
  memory packed(want, Engine(), bytes.data_ptr());
  dnnl::stream s(Engine());
  dnnl::reorder(plain, packed).execute(s, plain, packed);
  s.wait();
  Packed entry{c10::weak_intrusive_ptr<c10::StorageImpl>(w.storage().getWeakStorageImpl()), w._version(), want, bytes};
  return gPacked.insert_or_assign(key, std::move(entry)).first->second.bytes;
}

// The fused path, or an undefined tensor when it does not apply.
at::Tensor Fused(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, Act act, const at::Tensor& residual) {
  const int64_t n = w.size(0), k = w.size(1);
  const int64_t m = x.numel() / k;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n;
  if (residual.defined() && residual.sizes().vec() != shape) return at::Tensor();
  const at::Tensor x2 = x.reshape({m, k}).contiguous();
  const at::Tensor r2 = residual.defined() ? residual.reshape({m, n}).contiguous() : at::Tensor();
  at::Tensor y = at::empty({m, n}, x.options());
  std::lock_guard<std::mutex> lock(gMu);
  Plan& plan = GetPlan(m, n, k, b.defined(), act, residual.defined());
  const at::Tensor& packed = GetPacked(w, plan.weights);
  dnnl::engine& eng = Engine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan.src, eng, x2.data_ptr())},
      {DNNL_ARG_WEIGHTS, memory(plan.weights, eng, packed.data_ptr())},
      {DNNL_ARG_DST, memory(plan.dst, eng, y.data_ptr())}};
  const at::Tensor bias = b.defined() ? b.contiguous() : b;  // held until the primitive ran
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, memory(plan.bias, eng, bias.data_ptr()));
  if (residual.defined()) {
    const int index = act != Act::kNone ? 1 : 0;  // the binary post-op's position
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1, memory(plan.dst, eng, r2.data_ptr()));
  }
  dnnl::stream s(eng);
  plan.prim.execute(s, args);
  s.wait();
  return y.view(shape);
}
#endif

bool FusedApplies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& r) {
  if (!gPrepack || !sgemm::Applies({&x, &w, &b, &r}) || at::GradMode::is_enabled()) return false;
  return x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1) && x.numel() > 0 && w.numel() > 0 &&
         (!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)));
}

at::Tensor LinearAct(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& bOpt, Act act,
                     const c10::optional<at::Tensor>& rOpt) {
#ifdef DEDOS_DNNL
  const at::Tensor b = bOpt.has_value() ? *bOpt : at::Tensor();
  const at::Tensor r = rOpt.has_value() ? *rOpt : at::Tensor();
  if (FusedApplies(x, w, b, r)) {
    at::Tensor y = Fused(x, w, b, act, r);
    if (y.defined()) return y;
  }
#endif
  return Unfused(x, w, bOpt, act, rOpt);
}

}  // namespace

void InitPacked(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("linearAct", {
    // linearAct(x, w, b|null, act, residual|null): act(x·Wᵀ + b) + residual
    return dedos::Ret(env, LinearAct(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                     ParseAct(dedos::ArgString(info, 3)), dedos::ArgOptTensor(info, 4)));
  });
  DEDOS_OP("setPrepack", {
    gPrepack = dedos::ArgBool(info, 0);
    return env.Undefined();
  });
  DEDOS_OP("packedBytes", {
    double bytes = 0;
#ifdef DEDOS_DNNL
    std::lock_guard<std::mutex> lock(gMu);
    for (auto& e : gPacked) bytes += static_cast<double>(e.second.bytes.nbytes());
#endif
    return Napi::Number::New(env, bytes);
  });
  DEDOS_OP("prepackAvailable", {
#ifdef DEDOS_DNNL
    return Napi::Boolean::New(env, gPrepack && sgemm::Enabled());
#else
    return Napi::Boolean::New(env, false);
#endif
  });
  DEDOS_OP("releasePacked", {
    // releasePacked(all): drops the packed copies of weights that died (all = false) or every packed weight and
    // plan (all = true); returns the bytes freed.
    double bytes = 0;
#ifdef DEDOS_DNNL
    const bool all = dedos::ArgBool(info, 0);
    std::lock_guard<std::mutex> lock(gMu);
    for (auto e = gPacked.begin(); e != gPacked.end();) {
      if (all || e->second.owner.expired()) {
        bytes += static_cast<double>(e->second.bytes.nbytes());
        e = gPacked.erase(e);
      } else {
        ++e;
      }
    }
    if (all) gPlans.clear();
#endif
    return Napi::Number::New(env, bytes);
  });
}

}  // namespace dedos
