// Autograd (requires_grad, backward, grads, grad mode), optimizers (libtorch's AdamW and SGD) and
// gradient-norm clipping.
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "common.h"

namespace dedos {

using Optim = torch::optim::Optimizer;

static Optim* ArgOptim(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an optimizer");
  return info[i].As<Napi::External<Optim>>().Data();
}

static double Get(const Napi::Object& o, const char* k, double dflt) {
  return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().DoubleValue() : dflt;
}
static bool GetB(const Napi::Object& o, const char* k, bool dflt) {
  return o.Has(k) && o.Get(k).IsBoolean() ? o.Get(k).As<Napi::Boolean>().Value() : dflt;
}

static std::vector<at::Tensor> Params(Napi::Env env, const Napi::Object& g) {
  Napi::Array a = g.Get("params").As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t k = 0; k < a.Length(); k++) out.push_back(LookupTensor(env, a.Get(k), "optimizer parameter " + std::to_string(k)));
  return out;
}

static std::string Key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

void InitAutograd(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("setRequiresGrad", {
    // A packed weight needs no gradient already: freezing a prepacked model again leaves it packed.
    const bool on = dedos::ArgBool(info, 1);
    if (on || dedos::ArgWeight(info, 0).packed == nullptr) dedos::ArgTensor(info, 0).requires_grad_(on);
    return info[0];
  });
  DEDOS_OP("requiresGrad", { return Napi::Boolean::New(env, dedos::ArgMeta(info, 0).requiresGrad); });
  DEDOS_OP("isLeaf", { return Napi::Boolean::New(env, dedos::ArgTensor(info, 0).is_leaf()); });
  DEDOS_OP("retainGrad", {
    dedos::ArgTensor(info, 0).retain_grad();
    return env.Undefined();
  });
  DEDOS_OP("grad", {
    const at::Tensor& g = dedos::ArgTensor(info, 0).grad();
    if (!g.defined()) return env.Null();
    return dedos::Ret(env, g);
  });
  DEDOS_OP("setGrad", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto g = dedos::ArgOptTensor(info, 1);
    t.mutable_grad() = g ? *g : at::Tensor();
    return env.Undefined();
  });
  DEDOS_OP("detach", { return dedos::Ret(env, dedos::ArgTensor(info, 0).detach()); });
  DEDOS_OP("backward", {
    // backward(t, gradient|null, retainGraph, createGraph)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto g = dedos::ArgOptTensor(info, 1);
    t.backward(g ? *g : at::Tensor(), dedos::ArgBool(info, 2), dedos::ArgBool(info, 3));
    return env.Undefined();
  });
  DEDOS_OP("autogradGrad", {
    // autogradGrad(outputs[], inputs[], gradOutputs[]|null, retainGraph, createGraph, allowUnused) → (tensor|null)[]
    auto outs = dedos::ArgTensors(info, 0);
    auto ins = dedos::ArgTensors(info, 1);
    std::vector<at::Tensor> gouts;
    if (info[2].IsArray()) gouts = dedos::ArgTensors(info, 2);
    auto res = torch::autograd::grad(outs, ins, gouts, dedos::ArgBool(info, 3), dedos::ArgBool(info, 4), dedos::ArgBool(info, 5));
    Napi::Array a = Napi::Array::New(env, res.size());
    for (size_t k = 0; k < res.size(); k++)
      a.Set(static_cast<uint32_t>(k), res[k].defined() ? dedos::Ret(env, res[k]) : env.Null());
    return a;
  });
  DEDOS_OP("setGradEnabled", {
    bool prev = at::GradMode::is_enabled();
    at::GradMode::set_enabled(dedos::ArgBool(info, 0));
    return Napi::Boolean::New(env, prev);
  });
  DEDOS_OP("isGradEnabled", { return Napi::Boolean::New(env, at::GradMode::is_enabled()); });
  // Automatic mixed precision (torch.autocast): (device "cpu" | "cuda", enabled, dtype, entering) → the
  // previous [enabled, dtype code]. Entering a region counts one nesting level; leaving the outermost one
  // clears the cast-weight cache, as torch.autocast.__exit__ does.
  DEDOS_OP("setAutocast", {
    const std::string device = dedos::ArgString(info, 0);
    const bool on = dedos::ArgBool(info, 1);
    const at::ScalarType dtype = dedos::ArgDType(info, 2);
    const bool entering = dedos::ArgBool(info, 3);
    bool prev;
    at::ScalarType prevDtype;
    if (device == "cpu") {
      prev = at::autocast::is_cpu_enabled();
      prevDtype = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(on);
    } else if (device == "cuda") {
      prev = at::autocast::is_enabled();
      prevDtype = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(on);
    } else {
      throw std::invalid_argument("autocast device must be cpu or cuda, got " + device);
    }
    if (entering) {
      at::autocast::increment_nesting();
    } else if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Boolean::New(env, prev));
    r.Set(1u, Napi::Number::New(env, static_cast<double>(prevDtype)));
    return r;
  });

  DEDOS_OP("clipGradNorm", {
    // clipGradNorm(params[], maxNorm, normType) → total norm before clipping, as torch.nn.utils.clip_grad_norm_:
    // the norm of the per-parameter norms; grads scale by min(1, maxNorm / (total + 1e-6)).
    auto ps = dedos::ArgTensors(info, 0);
    double maxNorm = dedos::ArgDouble(info, 1), p = dedos::ArgDouble(info, 2);
    at::NoGradGuard ng;
    std::vector<at::Tensor> norms;
    for (auto& t : ps)
      if (t.grad().defined()) norms.push_back(std::isinf(p) ? t.grad().abs().max() : at::norm(t.grad(), p));
    if (norms.empty()) return Napi::Number::New(env, 0.0);
    at::Tensor stacked = at::stack(norms);
    at::Tensor total = std::isinf(p) ? stacked.max() : at::norm(stacked, p);
    at::Tensor coef = at::clamp_max(maxNorm / (total + 1e-6), 1.0);
    for (auto& t : ps)
      if (t.grad().defined()) t.mutable_grad().mul_(coef);
    return Napi::Number::New(env, total.item<double>());
  });

  // optimCreate(kind: "adamw"|"sgd", groups: {params, lr, weightDecay, betas, eps, amsgrad, momentum, dampening, nesterov}[])
  DEDOS_OP("optimCreate", {
    std::string kind = dedos::ArgString(info, 0);
    Napi::Array groups = info[1].As<Napi::Array>();
    Optim* opt = nullptr;
    if (kind == "adamw") {
      std::vector<torch::optim::OptimizerParamGroup> gs;
      for (uint32_t k = 0; k < groups.Length(); k++) {
        Napi::Object g = groups.Get(k).As<Napi::Object>();
        auto o = std::make_unique<torch::optim::AdamWOptions>(Get(g, "lr", 1e-3));
        double b1 = 0.9, b2 = 0.999;
        if (g.Has("betas") && g.Get("betas").IsArray()) {
          Napi::Array b = g.Get("betas").As<Napi::Array>();
          b1 = b.Get(0u).As<Napi::Number>().DoubleValue();
          b2 = b.Get(1u).As<Napi::Number>().DoubleValue();
        }
        o->betas({b1, b2}).eps(Get(g, "eps", 1e-8)).weight_decay(Get(g, "weightDecay", 1e-2)).amsgrad(GetB(g, "amsgrad", false));
        gs.emplace_back(Params(env, g), std::move(o));
      }
      opt = new torch::optim::AdamW(gs, torch::optim::AdamWOptions());
    } else if (kind == "sgd") {
      std::vector<torch::optim::OptimizerParamGroup> gs;
      for (uint32_t k = 0; k < groups.Length(); k++) {
        Napi::Object g = groups.Get(k).As<Napi::Object>();
        auto o = std::make_unique<torch::optim::SGDOptions>(Get(g, "lr", 1e-2));
        o->momentum(Get(g, "momentum", 0)).dampening(Get(g, "dampening", 0)).weight_decay(Get(g, "weightDecay", 0)).nesterov(GetB(g, "nesterov", false));
        gs.emplace_back(Params(env, g), std::move(o));
      }
      opt = new torch::optim::SGD(gs, torch::optim::SGDOptions(1e-2));
    } else {
      throw std::invalid_argument("unknown optimizer '" + kind + "' (adamw or sgd)");
    }
    return Napi::External<Optim>::New(env, opt, [](Napi::Env, Optim* p) { delete p; });
  });
  DEDOS_OP("optimStep", {
    at::NoGradGuard ng;
    dedos::ArgOptim(info, 0)->step();
    return env.Undefined();
  });
  DEDOS_OP("optimZeroGrad", {
    // Sets grads to None (PyTorch ≥ 2 default) so that untouched parameters are skipped by the step.
    for (auto& g : dedos::ArgOptim(info, 0)->param_groups())
      for (auto& p : g.params()) p.mutable_grad() = at::Tensor();
    return env.Undefined();
  });
  DEDOS_OP("optimSetLr", {
    Optim* o = dedos::ArgOptim(info, 0);
    int64_t gi = dedos::ArgInt(info, 1);
    if (gi < 0 || gi >= static_cast<int64_t>(o->param_groups().size())) throw std::out_of_range("no parameter group " + std::to_string(gi));
    o->param_groups()[gi].options().set_lr(dedos::ArgDouble(info, 2));
    return env.Undefined();
  });
  DEDOS_OP("optimGetLr", {
    Optim* o = dedos::ArgOptim(info, 0);
    int64_t gi = dedos::ArgInt(info, 1);
    if (gi < 0 || gi >= static_cast<int64_t>(o->param_groups().size())) throw std::out_of_range("no parameter group " + std::to_string(gi));
    return Napi::Number::New(env, o->param_groups()[gi].options().get_lr());
  });
  // optimGetState(opt) → per parameter (group order): null or {step, expAvg, expAvgSq, maxExpAvgSq} / {momentumBuffer}
  DEDOS_OP("optimGetState", {
    Optim* o = dedos::ArgOptim(info, 0);
    Napi::Array out = Napi::Array::New(env);
    uint32_t n = 0;
    for (auto& g : o->param_groups()) {
      for (auto& p : g.params()) {
        auto it = o->state().find(Key(p));
        if (it == o->state().end()) {
          out.Set(n++, env.Null());
          continue;
        }
        Napi::Object s = Napi::Object::New(env);
        if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(it->second.get())) {
          s.Set("step", Napi::Number::New(env, static_cast<double>(a->step())));
          s.Set("expAvg", dedos::Ret(env, a->exp_avg()));
          s.Set("expAvgSq", dedos::Ret(env, a->exp_avg_sq()));
          if (a->max_exp_avg_sq().defined()) s.Set("maxExpAvgSq", dedos::Ret(env, a->max_exp_avg_sq()));
        } else if (auto* m = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
          if (m->momentum_buffer().defined()) s.Set("momentumBuffer", dedos::Ret(env, m->momentum_buffer()));
        }
        out.Set(n++, s);
      }
    }
    return out;
  });
  DEDOS_OP("optimSetState", {
    Optim* o = dedos::ArgOptim(info, 0);
    Napi::Array states = info[1].As<Napi::Array>();
    uint32_t n = 0;
    bool adam = dynamic_cast<torch::optim::AdamW*>(o) != nullptr;
    for (auto& g : o->param_groups()) {
      for (auto& p : g.params()) {
        if (n >= states.Length()) throw std::invalid_argument("optimizer state has fewer entries than parameters");
        Napi::Value v = states.Get(n++);
        if (v.IsNull() || v.IsUndefined()) {
          o->state().erase(Key(p));
          continue;
        }
        Napi::Object s = v.As<Napi::Object>();
        auto T = [&](const char* k) { return LookupTensor(env, s.Get(k), std::string("optimizer state ") + k).clone(); };
        if (adam) {
          auto st = std::make_unique<torch::optim::AdamWParamState>();
          st->step(static_cast<int64_t>(s.Get("step").As<Napi::Number>().DoubleValue()));
          st->exp_avg(T("expAvg"));
          st->exp_avg_sq(T("expAvgSq"));
          if (s.Has("maxExpAvgSq")) st->max_exp_avg_sq(T("maxExpAvgSq"));
          o->state()[Key(p)] = std::move(st);
        } else {
          auto st = std::make_unique<torch::optim::SGDParamState>();
          if (s.Has("momentumBuffer")) st->momentum_buffer(T("momentumBuffer"));
          o->state()[Key(p)] = std::move(st);
        }
      }
    }
    if (n != states.Length()) throw std::invalid_argument("optimizer state has more entries than parameters");
    return env.Undefined();
  });
}

}  // namespace dedos
