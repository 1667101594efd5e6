// Attention for the Stable Diffusion UNet and VAE (diffusers attention_processor.py `Attention` with
// `AttnProcessor`, attention.py `BasicTransformerBlock` / `FeedForward` / `GEGLU`,
// transformers/transformer_2d.py `Transformer2DModel` on continuous inputs), with diffusers' key names:
// `to_q`, `to_k`, `to_v`, `to_out.0`, `group_norm`; `norm1..3`, `attn1`, `attn2`, `ff.net.0.proj`,
// `ff.net.2`; `norm`, `proj_in`, `transformer_blocks.i`, `proj_out`.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { type Tensor, tidy } from "../torch/tensor.js";
import { Conv2d, Linear } from "./layers.js";
import { type ForwardContext, PathModule, scoped } from "./resnet.js";

/** Default byte budget for one attention score matrix before the queries are processed in chunks. */
export const DEFAULT_ATTENTION_BUDGET_BYTES = 128 * 2 ** 20;

/**
 * Queries per chunk so that a (batch·heads, chunk, Lk) score matrix fits `budgetBytes`, or undefined when the
 * whole (…, Lq, Lk) matrix fits (no chunking).
 */
export function attentionQueryChunk(
  batchHeads: number,
  lq: number,
  lk: number,
  bytesPerElement: number,
  budgetBytes = DEFAULT_ATTENTION_BUDGET_BYTES,
): number | undefined {
  const perQuery = batchHeads * lk * bytesPerElement;
  if (perQuery * lq <= budgetBytes) return undefined;
  return Math.max(1, Math.floor(budgetBytes / perQuery));
}

const BYTES: Record<string, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2 };

export interface AttentionConfig {
  queryDim: number;
  heads: number;
  dimHead: number;
  /** Width of the context (text states) for cross-attention; null = self-attention. */
  crossAttentionDim: number | null;
  /** Biases on to_q/to_k/to_v (UNet: false, VAE: true). */
  bias: boolean;
  /** GroupNorm over the input channels first (VAE mid block: groups, eps); null = none. */
  groupNorm: { groups: number; eps: number } | null;
  /** Add the input back (VAE mid block) and divide by rescaleOutputFactor. */
  residualConnection: boolean;
  rescaleOutputFactor: number;
}

/**
 * Multi-head attention, AttnProcessor semantics: softmax(q·kᵀ·dim_head^−½)·v per head, then to_out.0.
 * Accepts tokens (B, L, C) or maps (B, C, H, W) (flattened row-major to h·w tokens and back).
 * Recordable by path (`…transformer_blocks.0.attn2`).
 */
export class Attention extends PathModule {
  readonly group_norm: nn.GroupNorm | null;
  readonly to_q: nn.Linear;
  readonly to_k: nn.Linear;
  readonly to_v: nn.Linear;
  readonly to_out: ModuleList<nn.Linear>;

  constructor(
    readonly config: AttentionConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const inner = c.heads * c.dimHead;
    const kvDim = c.crossAttentionDim ?? c.queryDim;
    this.group_norm = c.groupNorm
      ? this.child("group_norm", new nn.GroupNorm(c.groupNorm.groups, c.queryDim, c.groupNorm.eps))
      : null;
    this.to_q = this.child("to_q", new Linear(c.queryDim, inner, c.bias, o));
    this.to_k = this.child("to_k", new Linear(kvDim, inner, c.bias, o));
    this.to_v = this.child("to_v", new Linear(kvDim, inner, c.bias, o));
    // to_out = [Linear, Dropout]; the dropout has no parameters, so only `to_out.0.*` exists.
    this.to_out = this.child("to_out", new ModuleList([new Linear(inner, c.queryDim, true, o)]));
  }

  /** x (B, L, C) or (B, C, H, W); context (B, S, crossAttentionDim) for cross-attention. Same shape out. */
  forward(x: Tensor, context: Tensor | null = null, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      const c = this.config;
      const spatial = x.ndim === 4;
      const [B, C, H, W] = spatial
        ? (x.shape as [number, number, number, number])
        : [x.size(0), x.size(2), 0, 0];
      const residual = x;
      let tokens = spatial ? x.view(B, C, H * W).transpose(1, 2) : x; // (B, L, C)
      if (this.group_norm) tokens = this.group_norm.forward(tokens.transpose(1, 2)).transpose(1, 2);
      const kv = context ?? tokens;
      const L = tokens.size(1);
      const S = kv.size(1);
      const heads = (t: Tensor, n: number) => t.view(B, n, c.heads, c.dimHead).transpose(1, 2); // (B, h, n, d)
      const q = heads(this.to_q.forward(tokens), L);
      const k = heads(this.to_k.forward(kv), S);
      const v = heads(this.to_v.forward(kv), S);
      const queryChunk = attentionQueryChunk(
        B * c.heads,
        L,
        S,
        BYTES[q.dtype] ?? 4,
        ctx.attentionBudgetBytes ?? DEFAULT_ATTENTION_BUDGET_BYTES,
      );
      // (B, h, L, d); fused (no score tensor) and already laid out as (B, L, h, d) when no gradient is needed.
      const o = F.attentionInference(q, k, v, { scale: c.dimHead ** -0.5, queryChunk });
      let out = this.to_out.at(0).forward(o.transpose(1, 2).reshape(B, L, c.heads * c.dimHead)); // (B, L, C)
      if (spatial) out = out.transpose(1, 2).reshape(B, C, H, W);
      if (c.residualConnection) out = out.add(residual);
      if (c.rescaleOutputFactor !== 1) out = out.div(c.rescaleOutputFactor);
      // Module-output semantics: for attn1/attn2 this is also `to_out.1` (dropout) — DEDOS's released hook.
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Feed-forward

/** proj (dim → 2·inner), split into (hidden, gate), hidden · gelu(gate) (exact erf GELU). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(dimIn: number, dimOut: number, o: nn.InitOptions = {}) {
    super();
    this.proj = this.child("proj", new Linear(dimIn, dimOut * 2, true, o));
  }
  /** (…, dimIn) → (…, dimOut) */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      // proj's two halves as two products: h and the gate come out contiguous (the same numbers as chunking
      // one (…, 2·dimOut) output, whose strided halves make GELU and the product several times slower).
      const n = this.proj.outFeatures / 2;
      return this.proj.forwardRows(x, 0, n).mul(this.proj.forwardRows(x, n, n, "gelu"));
    });
  }
}

/** `net.0` = GEGLU(dim → 4·dim), `net.1` = dropout (no parameters), `net.2` = Linear(4·dim → dim). */
export class FeedForward extends Module {
  readonly geglu: GEGLU;
  readonly out: nn.Linear;
  constructor(dim: number, mult = 4, o: nn.InitOptions = {}) {
    super();
    const inner = Math.floor(dim * mult);
    this.geglu = new GEGLU(dim, inner, o);
    this.out = new Linear(inner, dim, true, o);
    this.child("net", new FeedForwardNet(this.geglu, this.out));
  }
  /** (…, dim) → (…, dim); `residual` is added to the output (fused into `net.2` at inference). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return tidy(() => this.out.forward(this.geglu.forward(x), { residual }));
  }
}

/** The `net` container: children "0" and "2" (index 1 is the parameterless dropout). */
class FeedForwardNet extends Module {
  constructor(geglu: GEGLU, out: nn.Linear) {
    super();
    this.child("0", geglu);
    this.child("2", out);
  }
}

// ---------------------------------------------------------------------------------------------------------
// BasicTransformerBlock (norm_type "layer_norm") and Transformer2DModel

export interface TransformerConfig {
  heads: number;
  dimHead: number;
  /** Channels of the feature map (= heads · dimHead in every SD UNet). */
  inChannels: number;
  /** BasicTransformerBlocks (diffusers transformer_layers_per_block). */
  layers: number;
  crossAttentionDim: number;
  groups: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

/**
 * x += attn1(norm1(x)) (self; with the text when only_cross_attention), x += attn2(norm2(x), text),
 * x += ff(norm3(x)). LayerNorm eps 1e-5 (diffusers default norm_eps).
 */
export class BasicTransformerBlock extends PathModule {
  readonly norm1: nn.LayerNorm;
  readonly attn1: Attention;
  readonly norm2: nn.LayerNorm;
  readonly attn2: Attention;
  readonly norm3: nn.LayerNorm;
  readonly ff: FeedForward;

  constructor(
    dim: number,
    readonly config: TransformerConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const attn = (cross: number | null) =>
      new Attention(
        {
          queryDim: dim,
          heads: c.heads,
          dimHead: c.dimHead,
          crossAttentionDim: cross,
          bias: false,
          groupNorm: null,
          residualConnection: false,
          rescaleOutputFactor: 1,
        },
        o,
      );
    this.norm1 = this.child("norm1", new nn.LayerNorm(dim, 1e-5));
    this.attn1 = this.child("attn1", attn(c.onlyCrossAttention ? c.crossAttentionDim : null));
    this.norm2 = this.child("norm2", new nn.LayerNorm(dim, 1e-5));
    this.attn2 = this.child("attn2", attn(c.crossAttentionDim));
    this.norm3 = this.child("norm3", new nn.LayerNorm(dim, 1e-5));
    this.ff = this.child("ff", new FeedForward(dim, 4, o));
  }

  /** (B, L, dim), text (B, S, crossAttentionDim) → (B, L, dim) */
  forward(x: Tensor, text: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = x.add(
        this.attn1.forward(this.norm1.forward(x), this.config.onlyCrossAttention ? text : null, ctx),
      );
      h = h.add(this.attn2.forward(this.norm2.forward(h), text, ctx));
      return this.ff.forward(this.norm3.forward(h), h); // h + ff(norm3(h))
    });
  }
}

/**
 * The spatial transformer: GroupNorm(eps 1e-6) → proj_in (1×1 conv before flattening, or linear after) →
 * tokens (B, h·w, inner) → transformer_blocks → proj_out → back to (B, C, h, w) → + input.
 * Records `transformer_blocks.i` outputs (tokens, with (h, w)) and its own output when asked.
 */
export class Transformer2DModel extends PathModule {
  readonly norm: nn.GroupNorm;
  readonly proj_in: nn.Linear | nn.Conv2d;
  readonly transformer_blocks: ModuleList<BasicTransformerBlock>;
  readonly proj_out: nn.Linear | nn.Conv2d;

  constructor(
    readonly config: TransformerConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const inner = c.heads * c.dimHead;
    this.norm = this.child("norm", new nn.GroupNorm(c.groups, c.inChannels, 1e-6));
    this.proj_in = this.child(
      "proj_in",
      c.useLinearProjection
        ? new Linear(c.inChannels, inner, true, o)
        : new Conv2d(c.inChannels, inner, 1, {}, o),
    );
    const blocks: BasicTransformerBlock[] = [];
    for (let i = 0; i < c.layers; i++) blocks.push(new BasicTransformerBlock(inner, c, o));
    this.transformer_blocks = this.child("transformer_blocks", new ModuleList(blocks));
    this.proj_out = this.child(
      "proj_out",
      c.useLinearProjection
        ? new Linear(inner, c.inChannels, true, o)
        : new Conv2d(inner, c.inChannels, 1, {}, o),
    );
  }

  /** (B, C, h, w), text (B, S, crossAttentionDim) → (B, C, h, w) */
  forward(x: Tensor, text: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      const [B, C, H, W] = x.shape as [number, number, number, number];
      const normed = this.norm.forward(x);
      const toTokens = (t: Tensor) => t.permute(0, 2, 3, 1).reshape(B, H * W, t.size(1)); // (B, h·w, ch)
      let h = this.config.useLinearProjection
        ? this.proj_in.forward(toTokens(normed))
        : toTokens(this.proj_in.forward(normed)); // (B, h·w, inner)
      for (const block of this.transformer_blocks) {
        h = block.forward(h, text, ctx);
        ctx.rec?.record(block.path, h, [H, W]);
      }
      const toMap = (t: Tensor) => t.reshape(B, H, W, t.size(2)).permute(0, 3, 1, 2); // (B, ch, h, w)
      const projected = this.config.useLinearProjection
        ? toMap(this.proj_out.forward(h))
        : this.proj_out.forward(toMap(h).contiguous());
      // x first: the sum takes x's (contiguous NCHW) layout; projected + x would take the permuted view's
      // channels-last strides and hand them to every op downstream.
      const out = x.add(projected); // (B, C, h, w)
      if (out.size(1) !== C) throw new Error("Transformer2DModel: proj_out must return the input channels");
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}
