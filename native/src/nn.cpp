// Neural-network functional ops: layers, activations, normalisation, resampling, pooling, losses.
#include <c10/core/GradMode.h>

#include "common.h"

namespace dedos {

static int64_t Reduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw std::invalid_argument("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

void InitNN(Napi::Env env, Napi::Object exports) {
  // linear: native/src/gemm.cpp (sgemm forward and backward).
  DEDOS_OP("conv2d", {
    // conv2d(x, w, b|null, stride, padding, dilation, groups)
    return dedos::Ret(env, at::conv2d(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                      dedos::ArgInts(info, 3), dedos::ArgInts(info, 4), dedos::ArgInts(info, 5),
                                      dedos::ArgInt(info, 6)));
  });
  DEDOS_OP("convTranspose2d", {
    // convTranspose2d(x, w, b|null, stride, padding, outputPadding, groups, dilation)
    return dedos::Ret(env, at::conv_transpose2d(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1),
                                                dedos::ArgOptTensor(info, 2), dedos::ArgInts(info, 3), dedos::ArgInts(info, 4),
                                                dedos::ArgInts(info, 5), dedos::ArgInt(info, 6), dedos::ArgInts(info, 7)));
  });
  DEDOS_OP("layerNorm", {
    // layerNorm(x, normalizedShape, w|null, b|null, eps)
    return dedos::Ret(env, at::layer_norm(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgOptTensor(info, 2),
                                          dedos::ArgOptTensor(info, 3), dedos::ArgDouble(info, 4)));
  });
  DEDOS_OP("groupNorm", {
    // groupNorm(x, groups, w|null, b|null, eps)
    return dedos::Ret(env, at::group_norm(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgOptTensor(info, 2),
                                          dedos::ArgOptTensor(info, 3), dedos::ArgDouble(info, 4)));
  });
  DEDOS_OP("groupNormAct", {
    // groupNormAct(x, groups, w|null, b|null, eps, act: "none" | "silu" | "gelu"): the activation is applied in
    // place on the normalised map when nothing records it for a backward (one buffer instead of two).
    at::Tensor y = at::group_norm(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1), dedos::ArgOptTensor(info, 2),
                                  dedos::ArgOptTensor(info, 3), dedos::ArgDouble(info, 4));
    const std::string act = dedos::ArgString(info, 5);
    const bool inPlace = !(at::GradMode::is_enabled() && y.requires_grad());
    if (act == "silu") y = inPlace ? at::silu_(y) : at::silu(y);
    else if (act == "gelu") y = inPlace ? at::gelu_(y) : at::gelu(y);
    else if (act != "none") throw std::invalid_argument("unknown activation \"" + act + "\" (none, silu, gelu)");
    return dedos::Ret(env, y);
  });
  DEDOS_OP("batchNorm", {
    // batchNorm(x, w|null, b|null, runningMean|null, runningVar|null, training, momentum, eps)
    return dedos::Ret(env, at::batch_norm(dedos::ArgTensor(info, 0), dedos::ArgOptTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                          dedos::ArgOptTensor(info, 3), dedos::ArgOptTensor(info, 4), dedos::ArgBool(info, 5),
                                          dedos::ArgDouble(info, 6), dedos::ArgDouble(info, 7), false));
  });
  DEDOS_OP("softmax", { return dedos::Ret(env, at::softmax(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("logSoftmax", { return dedos::Ret(env, at::log_softmax(dedos::ArgTensor(info, 0), dedos::ArgInt(info, 1))); });
  DEDOS_OP("gelu", {
    // gelu(x, approximate: "none" | "tanh")
    return dedos::Ret(env, at::gelu(dedos::ArgTensor(info, 0), info.Length() > 1 ? dedos::ArgString(info, 1) : "none"));
  });
  DEDOS_OP("silu", { return dedos::Ret(env, at::silu(dedos::ArgTensor(info, 0))); });
  DEDOS_OP("relu", { return dedos::Ret(env, at::relu(dedos::ArgTensor(info, 0))); });
  DEDOS_OP("elu", { return dedos::Ret(env, at::elu(dedos::ArgTensor(info, 0), dedos::ArgScalar(info, 1))); });
  DEDOS_OP("leakyRelu", { return dedos::Ret(env, at::leaky_relu(dedos::ArgTensor(info, 0), dedos::ArgScalar(info, 1))); });
  DEDOS_OP("quickGelu", {
    // x · σ(1.702x), CLIP's activation.
    const at::Tensor& x = dedos::ArgTensor(info, 0);
    return dedos::Ret(env, x * at::sigmoid(x * 1.702));
  });
  DEDOS_OP("dropout", {
    // dropout(x, p, train, gen|null): with a generator the mask is drawn from it (reproducible).
    const at::Tensor& x = dedos::ArgTensor(info, 0);
    double p = dedos::ArgDouble(info, 1);
    bool train = dedos::ArgBool(info, 2);
    auto gen = dedos::ArgOptGenerator(info, 3);
    if (!train || p == 0.0) return dedos::Ret(env, x);
    if (p >= 1.0) return dedos::Ret(env, x * 0);
    at::Tensor mask = at::empty_like(x, x.options().requires_grad(false)).bernoulli_(1.0 - p, gen);
    return dedos::Ret(env, x * mask * (1.0 / (1.0 - p)));
  });
  DEDOS_OP("interpolate", {
    // interpolate(x, size[2], mode: nearest|bilinear|bicubic, alignCorners)
    const at::Tensor& x = dedos::ArgTensor(info, 0);
    std::vector<int64_t> size = dedos::ArgInts(info, 1);
    std::string mode = dedos::ArgString(info, 2);
    bool ac = dedos::ArgBool(info, 3);
    if (x.dim() != 4) throw std::invalid_argument("expects a 4-d (N, C, H, W) input, got " + std::to_string(x.dim()) + "-d");
    if (mode == "nearest") return dedos::Ret(env, at::upsample_nearest2d(x, size));
    if (mode == "bilinear") return dedos::Ret(env, at::upsample_bilinear2d(x, size, ac));
    if (mode == "bicubic") return dedos::Ret(env, at::upsample_bicubic2d(x, size, ac));
    throw std::invalid_argument("mode must be nearest, bilinear or bicubic, got '" + mode + "'");
  });
  DEDOS_OP("pad", {
    // pad(x, pads (last dim first, as F.pad), mode: constant|reflect|replicate, value)
    const at::Tensor& x = dedos::ArgTensor(info, 0);
    std::vector<int64_t> pads = dedos::ArgInts(info, 1);
    std::string mode = dedos::ArgString(info, 2);
    if (mode == "constant") return dedos::Ret(env, at::constant_pad_nd(x, pads, dedos::ArgScalar(info, 3)));
    if (pads.size() == 4 && mode == "reflect") return dedos::Ret(env, at::reflection_pad2d(x, pads));
    if (pads.size() == 4 && mode == "replicate") return dedos::Ret(env, at::replication_pad2d(x, pads));
    if (pads.size() == 2 && mode == "reflect") return dedos::Ret(env, at::reflection_pad1d(x, pads));
    if (pads.size() == 2 && mode == "replicate") return dedos::Ret(env, at::replication_pad1d(x, pads));
    throw std::invalid_argument("unsupported pad mode '" + mode + "' for " + std::to_string(pads.size()) + " pad values");
  });
  DEDOS_OP("avgPool2d", {
    // avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
    return dedos::Ret(env, at::avg_pool2d(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgInts(info, 2),
                                          dedos::ArgInts(info, 3), dedos::ArgBool(info, 4), dedos::ArgBool(info, 5)));
  });
  DEDOS_OP("maxPool2d", {
    // maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
    return dedos::Ret(env, at::max_pool2d(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1), dedos::ArgInts(info, 2),
                                          dedos::ArgInts(info, 3), dedos::ArgInts(info, 4), dedos::ArgBool(info, 5)));
  });
  DEDOS_OP("adaptiveAvgPool2d", {
    return dedos::Ret(env, at::adaptive_avg_pool2d(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1)));
  });
  DEDOS_OP("adaptiveMaxPool2d", {
    return dedos::Ret(env, std::get<0>(at::adaptive_max_pool2d(dedos::ArgTensor(info, 0), dedos::ArgInts(info, 1))));
  });
  DEDOS_OP("bceWithLogits", {
    // bceWithLogits(input, target, weight|null, posWeight|null, reduction)
    return dedos::Ret(env, at::binary_cross_entropy_with_logits(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1),
                                                                 dedos::ArgOptTensor(info, 2), dedos::ArgOptTensor(info, 3),
                                                                 Reduction(dedos::ArgString(info, 4))));
  });
  DEDOS_OP("crossEntropy", {
    // crossEntropy(logits (N,C,...), target (N,...) int64, weight|null, reduction, ignoreIndex, labelSmoothing)
    return dedos::Ret(env, at::cross_entropy_loss(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                                  Reduction(dedos::ArgString(info, 3)), dedos::ArgInt(info, 4),
                                                  dedos::ArgDouble(info, 5)));
  });
  DEDOS_OP("nllLoss", {
    return dedos::Ret(env, at::nll_loss_nd(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), dedos::ArgOptTensor(info, 2),
                                           Reduction(dedos::ArgString(info, 3)), dedos::ArgInt(info, 4)));
  });
  DEDOS_OP("smoothL1", {
    // smoothL1(input, target, reduction, beta)
    return dedos::Ret(env, at::smooth_l1_loss(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1),
                                              Reduction(dedos::ArgString(info, 2)), dedos::ArgDouble(info, 3)));
  });
  DEDOS_OP("mseLoss", {
    return dedos::Ret(env, at::mse_loss(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), Reduction(dedos::ArgString(info, 2))));
  });
  DEDOS_OP("l1Loss", {
    return dedos::Ret(env, at::l1_loss(dedos::ArgTensor(info, 0), dedos::ArgTensor(info, 1), Reduction(dedos::ArgString(info, 2))));
  });
}

}  // namespace dedos
