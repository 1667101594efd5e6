// Standard layers with PyTorch's parameter names and default initialisation.
import * as F from "../functional.js";
import { empty, type Generator, noGrad, ones, type Tensor, tidy, zeros } from "../tensor.js";
import { Module, ModuleList } from "./module.js";

/** Options shared by layer constructors. */
export interface InitOptions {
  /** Random generator for the default initialisation (reproducible weights). */
  generator?: Generator;
  /**
   * "random" (default): PyTorch's default initialisation. "empty": uninitialised memory, for weights that a
   * checkpoint overwrites next (skips filling hundreds of millions of random numbers for a full UNet).
   */
  init?: "random" | "empty";
}

function uniformInit(shape: number[], bound: number, o: InitOptions): Tensor {
  const t = empty(shape);
  return o.init === "empty" ? t : t.uniform_(-bound, bound, o.generator);
}

/** y = x·Wᵀ + b; weight (out, in), bias (out). PyTorch init: U(±1/√in). */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
    o: InitOptions = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.param("weight", uniformInit([outFeatures, inFeatures], bound, o));
    this.param("bias", bias ? uniformInit([outFeatures], bound, o) : null);
  }
  get weight(): Tensor {
    return this.get("weight");
  }
  get bias(): Tensor | null {
    return this.has("bias") ? this.get("bias") : null;
  }
  override linearWeights(): Tensor[] {
    return [this.weight];
  }
  /**
   * x·Wᵀ + b, optionally followed by an activation and a residual add — fused into the product at inference
   * (F.linearAct); exactly F.linear, activation, add otherwise.
   */
  forward(x: Tensor, o: { act?: F.LinearActivation; residual?: Tensor | null } = {}): Tensor {
    if (!o.act && !o.residual) return F.linear(x, this.weight, this.bias);
    return F.linearAct(x, this.weight, this.bias, o.act ?? "none", o.residual);
  }
}

export interface Conv2dConfig extends F.Conv2dOptions {
  bias?: boolean;
}
/** 2-d convolution; weight (out, in/groups, kh, kw). */
export class Conv2d extends Module {
  readonly opts: F.Conv2dOptions;
  constructor(
    inCh: number,
    outCh: number,
    kernel: number | [number, number],
    c: Conv2dConfig = {},
    o: InitOptions = {},
  ) {
    super();
    const [kh, kw] = typeof kernel === "number" ? [kernel, kernel] : kernel;
    const groups = c.groups ?? 1;
    const bound = 1 / Math.sqrt((inCh / groups) * kh * kw);
    this.param("weight", uniformInit([outCh, inCh / groups, kh, kw], bound, o));
    this.param("bias", c.bias === false ? null : uniformInit([outCh], bound, o));
    this.opts = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups };
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.get("weight"), this.has("bias") ? this.get("bias") : null, this.opts);
  }
}

/** Transposed 2-d convolution; weight (in, out/groups, kh, kw). */
export class ConvTranspose2d extends Module {
  readonly opts: F.Conv2dOptions & { outputPadding?: number | number[] };
  constructor(
    inCh: number,
    outCh: number,
    kernel: number,
    c: Conv2dConfig & { outputPadding?: number } = {},
    o: InitOptions = {},
  ) {
    super();
    const groups = c.groups ?? 1;
    const bound = 1 / Math.sqrt((outCh / groups) * kernel * kernel);
    this.param("weight", uniformInit([inCh, outCh / groups, kernel, kernel], bound, o));
    this.param("bias", c.bias === false ? null : uniformInit([outCh], bound, o));
    this.opts = {
      stride: c.stride,
      padding: c.padding,
      dilation: c.dilation,
      groups,
      outputPadding: c.outputPadding,
    };
  }
  forward(x: Tensor): Tensor {
    return F.convTranspose2d(x, this.get("weight"), this.has("bias") ? this.get("bias") : null, this.opts);
  }
}

/** LayerNorm over the trailing `shape`; weight 1, bias 0. */
export class LayerNorm extends Module {
  readonly shape: number[];
  constructor(
    shape: number | number[],
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    this.shape = typeof shape === "number" ? [shape] : shape;
    this.param("weight", affine ? ones(this.shape) : null);
    this.param("bias", affine ? zeros(this.shape) : null);
  }
  forward(x: Tensor): Tensor {
    const w = this.has("weight") ? this.get("weight") : null;
    const b = this.has("bias") ? this.get("bias") : null;
    if (w && x.dtype !== w.dtype) return tidy(() => this.forward(x.to(w.dtype))); // autocast: see GroupNorm
    return F.layerNorm(x, this.shape, w, b, this.eps);
  }
}

export class GroupNorm extends Module {
  constructor(
    readonly groups: number,
    channels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    this.param("weight", affine ? ones([channels]) : null);
    this.param("bias", affine ? zeros([channels]) : null);
  }
  /** The normalised map, optionally through an activation (applied in place at inference). */
  forward(x: Tensor, act: "none" | "silu" | "gelu" = "none"): Tensor {
    const w = this.has("weight") ? this.get("weight") : null;
    // Under autocast a lower-precision input meets float32 weights; libtorch 1.13's CPU kernel needs one
    // dtype, and normalisation belongs in float32 anyway (autocast's fp32 policy for norms).
    if (w && x.dtype !== w.dtype) return tidy(() => this.forward(x.to(w.dtype), act));
    return F.groupNorm(x, this.groups, w, this.has("bias") ? this.get("bias") : null, this.eps, act);
  }
}

/** BatchNorm2d with running statistics (buffers running_mean, running_var, num_batches_tracked). */
export class BatchNorm2d extends Module {
  constructor(
    channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.param("weight", ones([channels]));
    this.param("bias", zeros([channels]));
    this.buffer("running_mean", zeros([channels]));
    this.buffer("running_var", ones([channels]));
    this.buffer("num_batches_tracked", zeros([], { dtype: "int64" }));
  }
  forward(x: Tensor): Tensor {
    if (this.training) this.get("num_batches_tracked").add_(1);
    return F.batchNorm(
      x,
      this.get("running_mean"),
      this.get("running_var"),
      this.get("weight"),
      this.get("bias"),
      this.training,
      this.momentum,
      this.eps,
    );
  }
}

/** Lookup table; weight (num, dim), N(0, 1) init. */
export class Embedding extends Module {
  constructor(num: number, dim: number, o: InitOptions = {}) {
    super();
    const w = empty([num, dim]);
    this.param("weight", o.init === "empty" ? w : w.normal_(0, 1, o.generator));
  }
  get weight(): Tensor {
    return this.get("weight");
  }
  /** (…) int64 ids → (…, dim) */
  forward(ids: Tensor): Tensor {
    return tidy(() => this.weight.indexSelect(0, ids.flatten()).view(...ids.shape, -1));
  }
}

export class Dropout extends Module {
  constructor(
    readonly p = 0.5,
    readonly generator?: Generator,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this.generator);
  }
}

/** Applies children in order ("0", "1", …). Children must have `forward(x)`. */
export class Sequential extends ModuleList<Module & { forward(x: Tensor): Tensor }> {
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = x;
      for (const m of this.items) y = m.forward(y);
      return y;
    });
  }
}

/**
 * torch.nn.MultiheadAttention (batch_first = false): packed in_proj_weight (3E, E) / in_proj_bias and out_proj.
 * Inputs are (L, B, E), sequence first, as OpenAI CLIP calls it.
 */
export class MultiheadAttention extends Module {
  readonly outProj: Linear;
  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    o: InitOptions = {},
  ) {
    super();
    if (embedDim % numHeads !== 0)
      throw new Error(`MultiheadAttention: embedDim ${embedDim} is not divisible by ${numHeads} heads`);
    // xavier_uniform_ on the packed projection, zero biases: PyTorch's _reset_parameters.
    const bound = Math.sqrt(6 / (embedDim + 3 * embedDim));
    this.param("in_proj_weight", uniformInit([3 * embedDim, embedDim], bound, o));
    this.param("in_proj_bias", zeros([3 * embedDim]));
    this.outProj = this.child("out_proj", new Linear(embedDim, embedDim, true, o));
    noGrad(() => this.outProj.bias?.zero_());
  }
  override linearWeights(): Tensor[] {
    return [this.get("in_proj_weight")];
  }
  /**
   * Self-attention over x (L, B, E) with an additive mask (L, L) or (B·heads, L, L); `residual` (L, B, E) is
   * added to the output (fused into out_proj at inference).
   */
  forward(x: Tensor, mask?: Tensor | null, residual?: Tensor | null): Tensor {
    return tidy(() => {
      const [L, B, E] = x.shape as [number, number, number];
      const H = this.numHeads;
      const d = E / H;
      const qkv = F.linear(x, this.get("in_proj_weight"), this.get("in_proj_bias")); // (L, B, 3E)
      const [q, k, v] = qkv.chunk(3, -1).map((t) => t.reshape(L, B * H, d).transpose(0, 1)) as [
        Tensor,
        Tensor,
        Tensor,
      ]; // (B·H, L, d)
      // (1, B·H, L, d): at inference the fast kernel, whose result is a view of (1, L, B·H, d).
      const o = F.attentionInference(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), { mask }).squeeze(0);
      return this.outProj.forward(o.transpose(0, 1).reshape(L, B, E), { residual });
    });
  }
}

export { ModuleList };
