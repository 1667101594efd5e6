// torch.nn.functional: layers, activations, normalisation, resampling, pooling, attention and losses.

import { native as N } from "./native.js";
import type { LinearActivation } from "./native-api.js";
import { type Generator, Tensor, tidy } from "./tensor.js";

type Reduction = "mean" | "sum" | "none";
const pair = (v: number | number[]): number[] => (typeof v === "number" ? [v, v] : v);

/**
 * y = x·Wᵀ + b. CPU float32 forwards and backwards run on oneDNN's sgemm (the CPU's best kernels, whatever BLAS
 * libtorch was built with or OPENBLAS_CORETYPE pins); other devices and dtypes, autocast and
 * DEDOS_DNNL_GEMM=0 run ATen's linear.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(N.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export type { LinearActivation } from "./native-api.js";

/**
 * act(x·Wᵀ + b) + residual: `F.linear`, the activation, then the residual add, as one op. At inference (no
 * gradient, CPU float32) it runs as one oneDNN matmul on a weight packed once into oneDNN's preferred layout,
 * with bias, activation and residual applied to each output tile while it is in cache; otherwise it is exactly
 * the unfused ops. Same values up to float rounding.
 */
export function linearAct(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null | undefined,
  act: LinearActivation,
  residual?: Tensor | null,
): Tensor {
  return new Tensor(
    N.linearAct(x.handle, weight.handle, bias?.handle ?? null, act, residual?.handle ?? null),
  );
}

/**
 * F.linear for inference: when no gradient is needed (grad mode off, or no operand requires one) and every
 * operand is a CPU float32 tensor, y = x·Wᵀ + b runs as one oneDNN sgemm on the operands as they are (no
 * copies for row-major or column-major token views, AVX-512 where the CPU has it, whatever BLAS libtorch uses);
 * otherwise exactly F.linear. Same values up to float rounding.
 */
export function linearInference(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(N.linearInference(x.handle, weight.handle, bias?.handle ?? null));
}

export interface Conv2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}
/** The native conv2d argument list: (x, w, b|null, stride, padding, dilation, groups). */
function convArgs(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, o: Conv2dOptions) {
  return [
    x.handle,
    weight.handle,
    bias?.handle ?? null,
    pair(o.stride ?? 1),
    pair(o.padding ?? 0),
    pair(o.dilation ?? 1),
    o.groups ?? 1,
  ] as const;
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  return new Tensor(N.conv2d(...convArgs(x, weight, bias, o)));
}
/**
 * F.conv2d for inference (conditions as linearInference): 1×1 convolutions run as one sgemm on the NCHW map,
 * k×k convolutions with small outputs (≤ 256 pixels: SD's 1280-channel maps at 6² and 12², where oneDNN's
 * per-call weight reorder costs more than the convolution) as im2col + sgemm; everything else as F.conv2d.
 */
export function conv2dInference(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: Conv2dOptions = {},
  residual?: Tensor | null,
): Tensor {
  // `residual` (the output's shape) is added to the result: on the sgemm paths it joins the bias before the
  // product, so the add costs no pass of its own.
  return new Tensor(N.conv2dInference(...convArgs(x, weight, bias, o), residual?.handle ?? null));
}
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: Conv2dOptions & { outputPadding?: number | number[] } = {},
): Tensor {
  return new Tensor(
    N.convTranspose2d(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      pair(o.stride ?? 1),
      pair(o.padding ?? 0),
      pair(o.outputPadding ?? 0),
      o.groups ?? 1,
      pair(o.dilation ?? 1),
    ),
  );
}

export function layerNorm(
  x: Tensor,
  normalizedShape: number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return new Tensor(
    N.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps),
  );
}
export function groupNorm(
  x: Tensor,
  groups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
  act: "none" | "silu" | "gelu" = "none",
): Tensor {
  // With an activation: applied in place on the normalised map when no backward records it (one buffer less).
  const [w, b] = [weight?.handle ?? null, bias?.handle ?? null];
  return new Tensor(
    act === "none"
      ? N.groupNorm(x.handle, groups, w, b, eps)
      : N.groupNormAct(x.handle, groups, w, b, eps, act),
  );
}
/** Batch norm; in training mode the running statistics (if given) are updated in place. */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null,
  bias: Tensor | null,
  training: boolean,
  momentum = 0.1,
  eps = 1e-5,
): Tensor {
  return new Tensor(
    N.batchNorm(
      x.handle,
      weight?.handle ?? null,
      bias?.handle ?? null,
      runningMean?.handle ?? null,
      runningVar?.handle ?? null,
      training,
      momentum,
      eps,
    ),
  );
}

export function softmax(x: Tensor, dim: number): Tensor {
  return new Tensor(N.softmax(x.handle, dim));
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return new Tensor(N.logSoftmax(x.handle, dim));
}
/** GELU: exact (erf) by default, or the tanh approximation. */
export function gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  return new Tensor(N.gelu(x.handle, approximate));
}
/** x·σ(1.702·x), the activation of OpenAI CLIP. */
export function quickGelu(x: Tensor): Tensor {
  return new Tensor(N.quickGelu(x.handle));
}
export function silu(x: Tensor): Tensor {
  return new Tensor(N.silu(x.handle));
}
export function relu(x: Tensor): Tensor {
  return new Tensor(N.relu(x.handle));
}
export function elu(x: Tensor, alpha = 1): Tensor {
  return new Tensor(N.elu(x.handle, alpha));
}
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return new Tensor(N.leakyRelu(x.handle, slope));
}
export function sigmoid(x: Tensor): Tensor {
  return x.sigmoid();
}
/** Inverted dropout; identity when not training. A generator makes the mask reproducible. */
export function dropout(x: Tensor, p: number, training: boolean, generator?: Generator): Tensor {
  return new Tensor(N.dropout(x.handle, p, training, generator?.handle ?? null));
}

export interface InterpolateOptions {
  size: [number, number];
  mode?: "nearest" | "bilinear" | "bicubic";
  alignCorners?: boolean;
}
/** Resizes (N, C, H, W) maps to `size`, as F.interpolate(size=...). */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  return new Tensor(N.interpolate(x.handle, o.size, o.mode ?? "nearest", o.alignCorners ?? false));
}

/** F.pad: `pads` lists (left, right) pairs from the last dimension backwards. */
export function pad(
  x: Tensor,
  pads: number[],
  mode: "constant" | "reflect" | "replicate" = "constant",
  value = 0,
): Tensor {
  return new Tensor(N.pad(x.handle, pads, mode, value));
}

export function avgPool2d(
  x: Tensor,
  kernel: number | number[],
  o: {
    stride?: number | number[];
    padding?: number | number[];
    ceilMode?: boolean;
    countIncludePad?: boolean;
  } = {},
): Tensor {
  return new Tensor(
    N.avgPool2d(
      x.handle,
      pair(kernel),
      pair(o.stride ?? kernel),
      pair(o.padding ?? 0),
      o.ceilMode ?? false,
      o.countIncludePad ?? true,
    ),
  );
}
export function maxPool2d(
  x: Tensor,
  kernel: number | number[],
  o: {
    stride?: number | number[];
    padding?: number | number[];
    dilation?: number | number[];
    ceilMode?: boolean;
  } = {},
): Tensor {
  return new Tensor(
    N.maxPool2d(
      x.handle,
      pair(kernel),
      pair(o.stride ?? kernel),
      pair(o.padding ?? 0),
      pair(o.dilation ?? 1),
      o.ceilMode ?? false,
    ),
  );
}
export function adaptiveAvgPool2d(x: Tensor, size: number | number[]): Tensor {
  return new Tensor(N.adaptiveAvgPool2d(x.handle, pair(size)));
}
export function adaptiveMaxPool2d(x: Tensor, size: number | number[]): Tensor {
  return new Tensor(N.adaptiveMaxPool2d(x.handle, pair(size)));
}
/** F.unfold: (N, C, H, W) → (N, C·kh·kw, L) sliding blocks. */
export function unfold(
  x: Tensor,
  kernel: number | number[],
  o: { dilation?: number | number[]; padding?: number | number[]; stride?: number | number[] } = {},
): Tensor {
  return new Tensor(
    N.im2col(x.handle, pair(kernel), pair(o.dilation ?? 1), pair(o.padding ?? 0), pair(o.stride ?? 1)),
  );
}
/** F.fold: the inverse gathering of `unfold`, summing overlaps. */
export function fold(
  x: Tensor,
  outputSize: number | number[],
  kernel: number | number[],
  o: { dilation?: number | number[]; padding?: number | number[]; stride?: number | number[] } = {},
): Tensor {
  return new Tensor(
    N.col2im(
      x.handle,
      pair(outputSize),
      pair(kernel),
      pair(o.dilation ?? 1),
      pair(o.padding ?? 0),
      pair(o.stride ?? 1),
    ),
  );
}

export interface AttentionOptions {
  /** Added to the scores (−inf / large negative to mask), broadcast to (…, Lq, Lk). */
  mask?: Tensor | null;
  /** Score scale; default 1/√d. */
  scale?: number;
  /** Process this many queries at a time to bound the score matrix's memory (same result). */
  queryChunk?: number;
}
/** softmax(Q·Kᵀ·scale + mask)·V over (…, L, d) tensors. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const d = q.size(-1);
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const L = q.size(-2);
  const one = (qq: Tensor, mask: Tensor | null | undefined): Tensor =>
    tidy(() => {
      let s = qq.mul(scale).matmul(k.mT);
      if (mask) s = s.add(mask);
      return softmax(s, -1).matmul(v);
    });
  if (!o.queryChunk || o.queryChunk >= L) return one(q, o.mask);
  const parts: Tensor[] = [];
  for (let i = 0; i < L; i += o.queryChunk) {
    const n = Math.min(o.queryChunk, L - i);
    parts.push(
      tidy(() => {
        const m = o.mask && o.mask.size(-2) === L ? o.mask.narrow(-2, i, n) : o.mask;
        return one(q.narrow(-2, i, n), m);
      }),
    );
  }
  return tidy(() => {
    const out = new Tensor(
      N.cat(
        parts.map((p) => p.handle),
        -2,
      ),
    );
    for (const p of parts) p.dispose();
    return out;
  });
}

/**
 * `attention` for inference: q (B, H, L, d), k (B, H, S, d), v (B, H, S, e) with unit-stride last dimensions
 * (head views of (B, L, H·d) projections as they are), an optional additive mask broadcastable to (B, H, L, S).
 * When no gradient is needed and all are CPU float32, query blocks (up to 32 MB of scores) are scored, masked,
 * normalised in place and applied one at a time (oneDNN sgemm), so the (B, H, L, S) score tensor never exists;
 * the (B, H, L, e) result is then a view of a (B, L, H, e) tensor, whose reshape to (B, L, H·e) is free.
 * Otherwise exactly `attention(q, k, v, o)`.
 */
export function attentionInference(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const scale = o.scale ?? 1 / Math.sqrt(q.size(-1));
  const h = N.attentionInference(q.handle, k.handle, v.handle, scale, o.mask?.handle ?? null);
  return h === null ? attention(q, k, v, { ...o, scale }) : new Tensor(h);
}

// ---- losses ----

export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  return new Tensor(
    N.bceWithLogits(
      input.handle,
      target.handle,
      o.weight?.handle ?? null,
      o.posWeight?.handle ?? null,
      o.reduction ?? "mean",
    ),
  );
}
/** Cross entropy over class dimension 1 of (N, C, …) logits against int64 targets. */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return new Tensor(
    N.crossEntropy(
      input.handle,
      target.handle,
      o.weight?.handle ?? null,
      o.reduction ?? "mean",
      o.ignoreIndex ?? -100,
      o.labelSmoothing ?? 0,
    ),
  );
}
export function nllLoss(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number } = {},
): Tensor {
  return new Tensor(
    N.nllLoss(
      input.handle,
      target.handle,
      o.weight?.handle ?? null,
      o.reduction ?? "mean",
      o.ignoreIndex ?? -100,
    ),
  );
}
export function smoothL1Loss(
  input: Tensor,
  target: Tensor,
  o: { reduction?: Reduction; beta?: number } = {},
): Tensor {
  return new Tensor(N.smoothL1(input.handle, target.handle, o.reduction ?? "mean", o.beta ?? 1));
}
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(N.mseLoss(input.handle, target.handle, reduction));
}
export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(N.l1Loss(input.handle, target.handle, reduction));
}

/**
 * Sigmoid focal loss (Lin et al.), as torchvision/fvcore `sigmoid_focal_loss`:
 * BCE·(1 − p_t)^γ, weighted by α for positives and 1 − α for negatives when α ≥ 0.
 */
export function sigmoidFocalLoss(
  logits: Tensor,
  targets: Tensor,
  o: { alpha?: number; gamma?: number; reduction?: Reduction } = {},
): Tensor {
  const alpha = o.alpha ?? 0.25;
  const gamma = o.gamma ?? 2;
  return tidy(() => {
    const p = logits.sigmoid();
    const ce = binaryCrossEntropyWithLogits(logits, targets, { reduction: "none" });
    const pt = p.mul(targets).add(p.rsub(1).mul(targets.rsub(1)));
    let loss = ce.mul(pt.rsub(1).pow(gamma));
    if (alpha >= 0) loss = loss.mul(targets.mul(alpha).add(targets.rsub(1).mul(1 - alpha)));
    return reduce(loss, o.reduction ?? "none");
  });
}

/**
 * Dice loss on mask logits (Mask2Former / DETR form): 1 − (2·Σ p·t + 1)/(Σ p + Σ t + 1) per row of
 * (N, …) inputs, flattened from dimension 1.
 */
export function diceLoss(logits: Tensor, targets: Tensor, reduction: Reduction = "none"): Tensor {
  return tidy(() => {
    const p = logits.sigmoid().flatten(1);
    const t = targets.flatten(1);
    const num = p.mul(t).sum(-1).mul(2).add(1);
    const den = p.sum(-1).add(t.sum(-1)).add(1);
    return reduce(num.div(den).rsub(1), reduction);
  });
}

function reduce(x: Tensor, r: Reduction): Tensor {
  return r === "mean" ? x.mean() : r === "sum" ? x.sum() : x;
}
