// Linear weights prepacked for inference: a weight (n, k) reordered once into oneDNN's blocked layout, held by
// its tensor handle in place of the plain tensor (tensor.cpp), so a frozen model keeps one copy of each weight.
// Any use of the handle as a plain tensor unpacks it again for good; the linear ops read the packed form.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

namespace dedos {

struct PackedWeight;  // defined in packed.cpp
using PackedPtr = std::shared_ptr<const PackedWeight>;

// The packed form of `w`, or nullptr where packing does not apply: not a 2-d CPU float32 tensor, a gradient
// required, no oneDNN at build time, DEDOS_PREPACK=0 or sgemm switched off.
PackedPtr PackWeight(const at::Tensor& w);
// The plain (n, k) float32 tensor again (a new contiguous tensor, values bit for bit).
at::Tensor UnpackWeight(const PackedWeight& p);
// Rows [start, start + length) of the weight as a packed weight sharing the buffer, or nullptr when the slice does
// not start and end on the layout's blocks of output rows.
PackedPtr PackedRows(const PackedPtr& p, int64_t start, int64_t length);
std::vector<int64_t> PackedSizes(const PackedWeight& p);
size_t PackedNbytes(const PackedWeight& p);

enum class Act { kNone = 0, kGelu, kGeluTanh, kQuickGelu, kSilu };
Act ParseAct(const std::string& s);

// act(x·Wᵀ + b) + residual on a packed W as one oneDNN matmul, or an undefined tensor where that does not apply
// (other dtypes or devices, autocast, a gradient needed): the caller then unpacks W and runs the plain ops.
at::Tensor PackedLinear(const at::Tensor& x, const PackedWeight& w, const at::Tensor& b, Act act,
                        const at::Tensor& residual);

// The linear ops' body: act(x·Wᵀ + b) + residual from the op's arguments (x, w, b|null, residual|null at the
// given positions; no residual when `ri` is past the end): PackedLinear for a packed weight where it applies,
// otherwise the unfused ops on the plain weight (a packed handle is unpacked for good).
at::Tensor LinearActArg(const Napi::CallbackInfo& info, size_t xi, size_t wi, size_t bi, Act act, size_t ri);

}  // namespace dedos
