// Tensor creation, shape and indexing ops, math, reductions, linear algebra and random numbers.
#include "common.h"

namespace dedos {

void InitTensorData(Napi::Env env, Napi::Object exports);

static at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  at::TensorOptions o;
  if (auto dt = ArgOptDType(info, dtypeArg)) o = o.dtype(*dt);
  if (info.Length() > deviceArg && info[deviceArg].IsString()) o = o.device(ArgDevice(info, deviceArg));
  return o;
}

// A binary op's right operand is a tensor when argument 2 is true, else a number.
#define BINARY(jsname, expr_tt, expr_ts)                 \
  DEDOS_OP(jsname, {                                     \
    const at::Tensor& a = dedos::ArgTensor(info, 0);     \
    if (dedos::ArgBool(info, 2)) {                       \
      const at::Tensor& b = dedos::ArgTensor(info, 1);   \
      return dedos::Ret(env, expr_tt);                   \
    }                                                    \
    at::Scalar b = dedos::ArgScalar(info, 1);            \
    return dedos::Ret(env, expr_ts);                     \
  })

#define UNARY(jsname, fn) DEDOS_OP(jsname, { return dedos::Ret(env, fn(dedos::ArgTensor(info, 0))); })

void InitTensorOps(Napi::Env env, Napi::Object exports) {
  InitTensorData(env, exports);

  // ---- creation ----
  DEDOS_OP("zeros", { return dedos::Ret(env, at::zeros(dedos::ArgInts(info, 0), Opts(info, 1, 2))); });
  DEDOS_OP("ones", { return dedos::Ret(env, at::ones(dedos::ArgInts(info, 0), Opts(info, 1, 2))); });
  DEDOS_OP("empty", { return dedos::Ret(env, at::empty(dedos::ArgInts(info, 0), Opts(info, 1, 2))); });
  DEDOS_OP("full", { return dedos::Ret(env, at::full(dedos::ArgInts(info, 0), dedos::ArgScalar(info, 1), Opts(info, 2, 3))); });
  DEDOS_OP("scalarTensor", { return dedos::Ret(env, at::scalar_tensor(dedos::ArgScalar(info, 0), Opts(info, 1, 2))); });
  DEDOS_OP("arange", {
    return dedos::Ret(env, at::arange(dedos::ArgScalar(info, 0), dedos::ArgScalar(info, 1), dedos::ArgScalar(info, 2), Opts(info, 3, 4)));
  });
  DEDOS_OP("linspace", {
    return dedos::Ret(env, at::linspace(dedos::ArgScalar(info, 0), dedos::ArgScalar(info, 1), dedos::ArgInt(info, 2), Opts(info, 3, 4)));
  });
  DEDOS_OP("eye", { return dedos::Ret(env, at::eye(dedos::ArgInt(info, 0), Opts(info, 1, 2))); });
  DEDOS_OP("zerosLike", { return dedos::Ret(env, at::zeros_like(dedos::ArgTensor(info, 0))); });
  DEDOS_OP("onesLike", { return dedos::Ret(env, at::ones_like(dedos::ArgTensor(info, 0))); });
  DEDOS_OP("fullLike", { return dedos::Ret(env, at::full_like(dedos::ArgTensor(info, 0), dedos::ArgScalar(info, 1))); });
  DEDOS_OP("clone", { return dedos::Ret(env, dedos::ArgTensor(info, 0).clone()); });
  DEDOS_OP("to", {
    // to(t, dtypeCode|null, device|null, copy)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dt = dedos::ArgOptDType(info, 1);
    at::Device dev = info[2].IsString() ? dedos::ArgDevice(info, 2) : t.device();
    return dedos::Ret(env, t.to(dev, dt.value_or(t.scalar_type()), false, dedos::ArgBool(info, 3)));
  });

  // ---- shape and indexing ----
  DEDOS_OP("view", { return dedos::Ret(env, dedos::ArgTensor(info, 0).view(dedos::ArgInts(info, 1))); });
  DEDOS_OP("reshape", { return dedos::Ret(env, dedos::ArgTensor(info, 0).reshape(dedos::ArgInts(info, 1))); });
  DEDOS_OP("permute", { return dedos::Ret(env, dedos::ArgTensor(info, 0).permute(dedos::ArgInts(info, 1))); });
  DEDOS_OP("transpose", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).transpose(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2)));
  });
  DEDOS_OP("contiguous", { return dedos::Ret(env, dedos::ArgTensor(info, 0).contiguous()); });
  // (N, C, H, W) stored channels-last (NHWC in memory): oneDNN's convolutions read and write it without reorders.
  DEDOS_OP("contiguousChannelsLast", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).contiguous(at::MemoryFormat::ChannelsLast));
  });
  DEDOS_OP("flatten", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).flatten(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2)));
  });
  DEDOS_OP("unsqueeze", { return dedos::Ret(env, dedos::ArgTensor(info, 0).unsqueeze(dedos::ArgInt(info, 1))); });
  DEDOS_OP("squeeze", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto d = dedos::ArgOptInt(info, 1);
    return dedos::Ret(env, d ? t.squeeze(*d) : t.squeeze());
  });
  DEDOS_OP("expand", { return dedos::Ret(env, dedos::ArgTensor(info, 0).expand(dedos::ArgInts(info, 1))); });
  DEDOS_OP("repeat", { return dedos::Ret(env, dedos::ArgTensor(info, 0).repeat(dedos::ArgInts(info, 1))); });
  DEDOS_OP("repeatInterleave", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).repeat_interleave(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2)));
  });
  DEDOS_OP("flip", { return dedos::Ret(env, dedos::ArgTensor(info, 0).flip(dedos::ArgInts(info, 1))); });
  DEDOS_OP("roll", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).roll(dedos::ArgInts(info, 1), dedos::ArgInts(info, 2)));
  });
  DEDOS_OP("slice", {
    // slice(t, dim, start, end, step); end null = to the end
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto end = dedos::ArgOptInt(info, 3);
    return dedos::Ret(env, t.slice(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2), end, dedos::ArgInt(info, 4)));
  });
  DEDOS_OP("narrow", {
    // Rows of a packed weight on its blocks stay packed (the halves of a GEGLU projection).
    if (dedos::PackedPtr p = dedos::ArgWeight(info, 0).packed; p != nullptr && dedos::ArgInt(info, 1) == 0)
      if (dedos::PackedPtr rows = dedos::PackedRows(p, dedos::ArgInt(info, 2), dedos::ArgInt(info, 3)))
        return dedos::RetPacked(env, std::move(rows));
    return dedos::Ret(env, dedos::ArgTensor(info, 0).narrow(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2), dedos::ArgInt(info, 3)));
  });
  DEDOS_OP("select", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).select(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2)));
  });
  DEDOS_OP("indexSelect", {
    return dedos::Ret(env, dedos::ArgTensor(info, 0).index_select(dedos::ArgInt(info, 1), dedos::ArgTensor(info, 2)));
  });
  DEDOS_OP("index", {
    // index(t, [idx0|null, idx1|null, ...]): advanced indexing with tensors; null keeps the dimension.
    at::Tensor& t = dedos::ArgTensor(info, 0);
    Napi::Array arr = info[1].As<Napi::Array>();
    c10::List<c10::optional<at::Tensor>> idx;
    for (uint32_t k = 0; k < arr.Length(); k++) {
      Napi::Value v = arr.Get(k);
      if (v.IsNull() || v.IsUndefined()) idx.push_back(c10::nullopt);
      else idx.push_back(dedos::LookupTensor(env, v, "index " + std::to_string(k)));
    }
    return dedos::Ret(env, at::index(t, idx));
  });
  DEDOS_OP("indexPut", {
    // indexPut(t, [idx...], values, accumulate) → new tensor
    at::Tensor& t = dedos::ArgTensor(info, 0);
    Napi::Array arr = info[1].As<Napi::Array>();
    c10::List<c10::optional<at::Tensor>> idx;
    for (uint32_t k = 0; k < arr.Length(); k++) {
      Napi::Value v = arr.Get(k);
      if (v.IsNull() || v.IsUndefined()) idx.push_back(c10::nullopt);
      else idx.push_back(dedos::LookupTensor(env, v, "index " + std::to_string(k)));
    }
    return dedos::Ret(env, at::index_put(t, idx, dedos::ArgTensor(info, 2), dedos::ArgBool(info, 3)));
  });
  DEDOS_OP("gather", {
    return dedos::Ret(env, at::gather(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgTensor(info, 2)));
  });
  DEDOS_OP("scatter", {
    // scatter(t, dim, index, src|number, srcIsTensor)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    if (dedos::ArgBool(info, 4))
      return dedos::Ret(env, at::scatter(t, dedos::ArgInt(info, 1), dedos::ArgTensor(info, 2), dedos::ArgTensor(info, 3)));
    return dedos::Ret(env, at::scatter(t, dedos::ArgInt(info, 1), dedos::ArgTensor(info, 2), dedos::ArgScalar(info, 3)));
  });
  DEDOS_OP("scatterAdd", {
    return dedos::Ret(env, at::scatter_add(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgTensor(info, 2),
                                           dedos::ArgTensor(info, 3)));
  });
  DEDOS_OP("where", {
    // where(cond, a|number, b|number, aIsTensor, bIsTensor)
    const at::Tensor& c = dedos::ArgTensor(info, 0);
    bool ta = dedos::ArgBool(info, 3), tb = dedos::ArgBool(info, 4);
    if (ta && tb) return dedos::Ret(env, at::where(c, dedos::ArgTensor(info, 1), dedos::ArgTensor(info, 2)));
    if (ta) return dedos::Ret(env, at::where(c, dedos::ArgTensor(info, 1), dedos::ArgScalar(info, 2)));
    if (tb) return dedos::Ret(env, at::where(c, dedos::ArgScalar(info, 1), dedos::ArgTensor(info, 2)));
    return dedos::Ret(env, at::where(c, dedos::ArgScalar(info, 1), dedos::ArgScalar(info, 2)));
  });
  DEDOS_OP("maskedFill", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    // maskedFill(t, mask, value|number, valueIsTensor)
    if (dedos::ArgBool(info, 3)) return dedos::Ret(env, t.masked_fill(dedos::ArgTensor(info, 1), dedos::ArgTensor(info, 2)));
    return dedos::Ret(env, t.masked_fill(dedos::ArgTensor(info, 1), dedos::ArgScalar(info, 2)));
  });
  DEDOS_OP("maskedSelect", { return dedos::Ret(env, dedos::ArgTensor(info, 0).masked_select(dedos::ArgTensor(info, 1))); });
  DEDOS_OP("nonzero", { return dedos::Ret(env, dedos::ArgTensor(info, 0).nonzero()); });
  DEDOS_OP("cat", { return dedos::Ret(env, at::cat(dedos::ArgTensors(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("stack", { return dedos::Ret(env, at::stack(dedos::ArgTensors(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("split", {
    // split(t, sizeOrSizes, dim)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    int64_t dim = dedos::ArgInt(info, 2);
    if (info[1].IsArray()) return dedos::Ret(env, t.split_with_sizes(dedos::ArgInts(info, 1), dim));
    return dedos::Ret(env, t.split(dedos::ArgInt(info, 1), dim));
  });
  DEDOS_OP("chunk", { return dedos::Ret(env, dedos::ArgTensor(info, 0).chunk(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2))); });
  DEDOS_OP("unfoldDim", {
    // Tensor.unfold(dim, size, step): sliding windows along one dimension.
    return dedos::Ret(env, dedos::ArgTensor(info, 0).unfold(dedos::ArgInt(info, 1), dedos::ArgInt(info, 2), dedos::ArgInt(info, 3)));
  });
  DEDOS_OP("im2col", {
    // F.unfold(input, kernel, dilation, padding, stride)
    return dedos::Ret(env, at::im2col(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgInts(info, 2),
                                      dedos::ArgInts(info, 3), dedos::ArgInts(info, 4)));
  });
  DEDOS_OP("col2im", {
    // F.fold(input, outputSize, kernel, dilation, padding, stride)
    return dedos::Ret(env, at::col2im(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgInts(info, 2),
                                      dedos::ArgInts(info, 3), dedos::ArgInts(info, 4), dedos::ArgInts(info, 5)));
  });
  DEDOS_OP("tril", { return dedos::Ret(env, dedos::ArgTensor(info, 0).tril(dedos::ArgInt(info, 1))); });
  DEDOS_OP("triu", { return dedos::Ret(env, dedos::ArgTensor(info, 0).triu(dedos::ArgInt(info, 1))); });
  DEDOS_OP("oneHot", { return dedos::Ret(env, at::one_hot(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("bincount", {
    return dedos::Ret(env, at::bincount(dedos::ArgTensor(info, 0), dedos::ArgOptTensor(info, 1), dedos::ArgInt(info, 2)));
  });

  // ---- elementwise math ----
  BINARY("add", at::add(a, b), at::add(a, b));
  BINARY("sub", at::sub(a, b), at::sub(a, b));
  BINARY("mul", at::mul(a, b), at::mul(a, b));
  BINARY("div", at::div(a, b), at::div(a, b));
  BINARY("pow", at::pow(a, b), at::pow(a, b));
  BINARY("remainder", at::remainder(a, b), at::remainder(a, b));
  BINARY("fmod", at::fmod(a, b), at::fmod(a, b));
  BINARY("maximum", at::maximum(a, b), at::clamp_min(a, b));
  BINARY("minimum", at::minimum(a, b), at::clamp_max(a, b));
  BINARY("eq", at::eq(a, b), at::eq(a, b));
  BINARY("ne", at::ne(a, b), at::ne(a, b));
  BINARY("lt", at::lt(a, b), at::lt(a, b));
  BINARY("le", at::le(a, b), at::le(a, b));
  BINARY("gt", at::gt(a, b), at::gt(a, b));
  BINARY("ge", at::ge(a, b), at::ge(a, b));
  BINARY("logicalAnd", at::logical_and(a, b), at::logical_and(a, at::scalar_tensor(b, a.options())));
  BINARY("logicalOr", at::logical_or(a, b), at::logical_or(a, at::scalar_tensor(b, a.options())));
  BINARY("atan2", at::atan2(a, b), at::atan2(a, at::scalar_tensor(b, a.options())));
  DEDOS_OP("rsub", { return dedos::Ret(env, at::rsub(dedos::ArgTensor(info, 0), dedos::ArgScalar(info, 1))); });
  DEDOS_OP("rdiv", {
    const at::Tensor& a = dedos::ArgTensor(info, 0);
    return dedos::Ret(env, at::reciprocal(a).mul_(dedos::ArgScalar(info, 1)));
  });
  DEDOS_OP("rpow", { return dedos::Ret(env, at::pow(dedos::ArgScalar(info, 1), dedos::ArgTensor(info, 0))); });
  UNARY("neg", at::neg);
  UNARY("exp", at::exp);
  UNARY("log", at::log);
  UNARY("log2", at::log2);
  UNARY("log1p", at::log1p);
  UNARY("expm1", at::expm1);
  UNARY("sqrt", at::sqrt);
  UNARY("rsqrt", at::rsqrt);
  UNARY("abs", at::abs);
  UNARY("sign", at::sign);
  UNARY("sin", at::sin);
  UNARY("cos", at::cos);
  UNARY("tanh", at::tanh);
  UNARY("sigmoid", at::sigmoid);
  UNARY("erf", at::erf);
  UNARY("floor", at::floor);
  UNARY("ceil", at::ceil);
  UNARY("round", at::round);
  UNARY("trunc", at::trunc);
  UNARY("reciprocal", at::reciprocal);
  UNARY("square", at::square);
  UNARY("logicalNot", at::logical_not);
  UNARY("isnan", at::isnan);
  UNARY("isfinite", at::isfinite);
  DEDOS_OP("clamp", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    c10::optional<at::Scalar> lo, hi;
    if (info[1].IsNumber()) lo = at::Scalar(dedos::ArgDouble(info, 1));
    if (info[2].IsNumber()) hi = at::Scalar(dedos::ArgDouble(info, 2));
    return dedos::Ret(env, at::clamp(t, lo, hi));
  });
  DEDOS_OP("lerp", {
    return dedos::Ret(env, at::lerp(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgScalar(info, 2)));
  });

  // ---- in place (used by optimizers, initialisers and accumulators; never on tensors that need grad) ----
  DEDOS_OP("copy_", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    t.copy_(dedos::ArgTensor(info, 1));
    return info[0];
  });
  DEDOS_OP("fill_", {
    dedos::ArgTensor(info, 0).fill_(dedos::ArgScalar(info, 1));
    return info[0];
  });
  DEDOS_OP("zero_", {
    dedos::ArgTensor(info, 0).zero_();
    return info[0];
  });
  DEDOS_OP("add_", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    // add_(t, other|number, otherIsTensor, alpha)
    if (dedos::ArgBool(info, 2)) t.add_(dedos::ArgTensor(info, 1), info.Length() > 3 ? dedos::ArgScalar(info, 3) : at::Scalar(1));
    else t.add_(dedos::ArgScalar(info, 1));
    return info[0];
  });
  DEDOS_OP("mul_", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    if (dedos::ArgBool(info, 2)) t.mul_(dedos::ArgTensor(info, 1));
    else t.mul_(dedos::ArgScalar(info, 1));
    return info[0];
  });
  DEDOS_OP("uniform_", {
    dedos::ArgTensor(info, 0).uniform_(dedos::ArgDouble(info, 1), dedos::ArgDouble(info, 2), dedos::ArgOptGenerator(info, 3));
    return info[0];
  });
  DEDOS_OP("normal_", {
    dedos::ArgTensor(info, 0).normal_(dedos::ArgDouble(info, 1), dedos::ArgDouble(info, 2), dedos::ArgOptGenerator(info, 3));
    return info[0];
  });

  // ---- reductions ----
  DEDOS_OP("sum", {
    // sum(t, dims|null, keepdim, dtype|null)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dims = dedos::ArgOptInts(info, 1);
    auto dt = dedos::ArgOptDType(info, 3);
    if (!dims) return dedos::Ret(env, t.sum(dt));
    return dedos::Ret(env, t.sum(*dims, dedos::ArgBool(info, 2), dt));
  });
  DEDOS_OP("mean", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dims = dedos::ArgOptInts(info, 1);
    if (!dims) return dedos::Ret(env, t.mean());
    return dedos::Ret(env, t.mean(*dims, dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("prod", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dim = dedos::ArgOptInt(info, 1);
    if (!dim) return dedos::Ret(env, t.prod());
    return dedos::Ret(env, t.prod(*dim, dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("var", {
    // var(t, dims|null, correction, keepdim)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dims = dedos::ArgOptInts(info, 1);
    int64_t corr = dedos::ArgInt(info, 2);
    if (!dims) return dedos::Ret(env, at::var(t, at::OptionalIntArrayRef(), corr, false));
    return dedos::Ret(env, at::var(t, at::OptionalIntArrayRef(*dims), corr, dedos::ArgBool(info, 3)));
  });
  DEDOS_OP("std", {
    at::Tensor& t = dedos::ArgTensor(info, 0);
    auto dims = dedos::ArgOptInts(info, 1);
    int64_t corr = dedos::ArgInt(info, 2);
    if (!dims) return dedos::Ret(env, at::std(t, at::OptionalIntArrayRef(), corr, false));
    return dedos::Ret(env, at::std(t, at::OptionalIntArrayRef(*dims), corr, dedos::ArgBool(info, 3)));
  });
  DEDOS_OP("norm", {
    // norm(t, p, dims|null, keepdim)
    at::Tensor& t = dedos::ArgTensor(info, 0);
    at::Scalar p = dedos::ArgDouble(info, 1);
    auto dims = dedos::ArgOptInts(info, 2);
    if (!dims) return dedos::Ret(env, at::norm(t, p));
    return dedos::Ret(env, at::norm(t, p, *dims, dedos::ArgBool(info, 3)));
  });
  DEDOS_OP("logsumexp", {
    return dedos::Ret(env, at::logsumexp(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("amax", {
    return dedos::Ret(env, at::amax(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("amin", {
    return dedos::Ret(env, at::amin(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("maxAll", { return dedos::Ret(env, dedos::ArgTensor(info, 0).max()); });
  DEDOS_OP("minAll", { return dedos::Ret(env, dedos::ArgTensor(info, 0).min()); });
  DEDOS_OP("maxDim", {
    return dedos::Ret(env, at::max(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("minDim", {
    return dedos::Ret(env, at::min(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("argmax", {
    return dedos::Ret(env, at::argmax(dedos::ArgTensor(info, 0), dedos::ArgOptInt(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("argmin", {
    return dedos::Ret(env, at::argmin(dedos::ArgTensor(info, 0), dedos::ArgOptInt(info, 1), dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("all", { return dedos::Ret(env, dedos::ArgTensor(info, 0).all()); });
  DEDOS_OP("any", { return dedos::Ret(env, dedos::ArgTensor(info, 0).any()); });
  DEDOS_OP("topk", {
    // topk(t, k, dim, largest, sorted) → [values, indices]
    return dedos::Ret(env, at::topk(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgInt(info, 2),
                                    dedos::ArgBool(info, 3), dedos::ArgBool(info, 4)));
  });
  DEDOS_OP("sort", {
    // sort(t, dim, descending, stable) → [values, indices]
    return dedos::Ret(env, at::sort(dedos::ArgTensor(info, 0), dedos::ArgBool(info, 3), dedos::ArgInt(info, 1),
                                    dedos::ArgBool(info, 2)));
  });
  DEDOS_OP("cumsum", { return dedos::Ret(env, at::cumsum(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("cumprod", { return dedos::Ret(env, at::cumprod(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("allclose", {
    return Napi::Boolean::New(env, at::allclose(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgDouble(info, 2),
                                                dedos::ArgDouble(info, 3)));
  });
  DEDOS_OP("equal", { return Napi::Boolean::New(env, at::equal(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });

  // ---- linear algebra ----
  DEDOS_OP("matmul", { return dedos::Ret(env, at::matmul(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });
  DEDOS_OP("mm", { return dedos::Ret(env, at::mm(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });
  DEDOS_OP("bmm", { return dedos::Ret(env, at::bmm(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });
  DEDOS_OP("baddbmm", {
    // baddbmm(input, a, b, beta, alpha)
    return dedos::Ret(env, at::baddbmm(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgTensor(info, 2),
                                       dedos::ArgScalar(info, 3), dedos::ArgScalar(info, 4)));
  });
  DEDOS_OP("einsum", { return dedos::Ret(env, at::einsum(dedos::ArgString(info, 0), dedos::ArgTensors(info, 1))); });
  DEDOS_OP("kron", { return dedos::Ret(env, at::kron(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });
  DEDOS_OP("outer", { return dedos::Ret(env, at::outer(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1))); });

  // ---- random ----
  DEDOS_OP("manualSeed", {
    at::manual_seed(static_cast<uint64_t>(dedos::ArgInt(info, 0)));
    return env.Undefined();
  });
  DEDOS_OP("makeGenerator", {
    at::Generator g = at::detail::createCPUGenerator(static_cast<uint64_t>(dedos::ArgInt(info, 0)));
    return Napi::External<at::Generator>::New(env, new at::Generator(g), [](Napi::Env, at::Generator* p) { delete p; });
  });
  DEDOS_OP("generatorState", {
    at::Generator g = *info[0].As<Napi::External<at::Generator>>().Data();
    at::Tensor s = g.get_state();
    return dedos::Ret(env, s);
  });
  DEDOS_OP("setGeneratorState", {
    at::Generator g = *info[0].As<Napi::External<at::Generator>>().Data();
    g.set_state(dedos::ArgTensor(info, 1));
    return env.Undefined();
  });
  DEDOS_OP("defaultGeneratorState", { return dedos::Ret(env, at::detail::getDefaultCPUGenerator().get_state()); });
  DEDOS_OP("setDefaultGeneratorState", {
    at::Generator g = at::detail::getDefaultCPUGenerator();
    g.set_state(dedos::ArgTensor(info, 0));
    return env.Undefined();
  });
  // rand/randn(shape, gen|null, dtype|null, device|null)
  DEDOS_OP("rand", { return dedos::Ret(env, at::rand(dedos::ArgInts(info, 0), dedos::ArgOptGenerator(info, 1), Opts(info, 2, 3))); });
  DEDOS_OP("randn", { return dedos::Ret(env, at::randn(dedos::ArgInts(info, 0), dedos::ArgOptGenerator(info, 1), Opts(info, 2, 3))); });
  DEDOS_OP("randint", {
    // randint(low, high, shape, gen|null, dtype|null, device|null)
    return dedos::Ret(env, at::randint(dedos::ArgInt(info, 0), dedos::ArgInt(info, 1), dedos::ArgInts(info, 2),
                                       dedos::ArgOptGenerator(info, 3), Opts(info, 4, 5)));
  });
  DEDOS_OP("randperm", {
    at::TensorOptions o = Opts(info, 2, 3);
    if (!o.has_dtype()) o = o.dtype(at::kLong);
    return dedos::Ret(env, at::randperm(dedos::ArgInt(info, 0), dedos::ArgOptGenerator(info, 1), o));
  });
  DEDOS_OP("bernoulli", {
    // bernoulli(t, p, gen): a tensor shaped like t of 0/1 draws with probability p.
    at::Tensor& t = dedos::ArgTensor(info, 0);
    return dedos::Ret(env, at::empty_like(t).bernoulli_(dedos::ArgDouble(info, 1), dedos::ArgOptGenerator(info, 2)));
  });
}

}  // namespace dedos
