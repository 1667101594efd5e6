// DEDOS text aggregation (spec §6): class text embeddings and the proxy queries meet through linear-attention
// layers with a residual.
//
//   LinearCrossAttention   x ← x + out(LA(q(x), k(mem), v(mem)))     (elu+1 linear attention, multi-head)
//   TextQueryAggregation   mask-decoder head, M rounds: text ← text + LA(text → queries),
//                                                      queries ← queries + LA(queries → text)
//   TextMemoryAggregation  cost-aggregation head: text (B, T, P, E) ← M × [text + LA(text → Σ T_l)], with
//                          zero-initialised output projections, so a fresh module is exactly the identity.

import { linearAttention } from "../catseg/aggregator.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { noGrad, type Tensor, tidy } from "../torch/tensor.js";
import type { TextAggregationConfig } from "./config.js";

export interface LinearCrossAttentionOptions {
  /** Width of the attention (q/k/v projections), split over the heads; default the width of x. */
  innerDim?: number;
  /** Zero weight and bias of the output projection: the layer starts as the exact identity. */
  zeroInit?: boolean;
}

/**
 * x attends to a memory with multi-head elu+1 linear attention (`linearAttention` of CAT-Seg), then a
 * residual: x + out_proj(attention). Parameters: q_proj (dim → inner), k_proj / v_proj (memDim → inner),
 * out_proj (inner → dim).
 */
export class LinearCrossAttention extends Module {
  readonly q_proj: nn.Linear;
  readonly k_proj: nn.Linear;
  readonly v_proj: nn.Linear;
  readonly out_proj: nn.Linear;
  readonly innerDim: number;

  constructor(
    readonly dim: number,
    readonly memoryDim: number,
    readonly heads: number,
    opts: LinearCrossAttentionOptions = {},
    o: nn.InitOptions = {},
  ) {
    super();
    const inner = opts.innerDim ?? dim;
    if (!Number.isInteger(heads) || heads <= 0 || inner % heads !== 0)
      throw new Error(`LinearCrossAttention: width ${inner} is not divisible by ${heads} heads`);
    this.innerDim = inner;
    this.q_proj = this.child("q_proj", new nn.Linear(dim, inner, true, o));
    this.k_proj = this.child("k_proj", new nn.Linear(memoryDim, inner, true, o));
    this.v_proj = this.child("v_proj", new nn.Linear(memoryDim, inner, true, o));
    this.out_proj = this.child("out_proj", new nn.Linear(inner, dim, true, o));
    if (opts.zeroInit)
      noGrad(() => {
        this.out_proj.weight.zero_();
        this.out_proj.bias?.zero_();
      });
  }

  /** The attention term alone (no residual): x (B, L, dim), memory (B, S, memDim) → (B, L, dim). */
  attend(x: Tensor, memory: Tensor): Tensor {
    return tidy(() => {
      const [B, L] = x.shape as [number, number, number];
      const S = memory.size(1);
      const h = this.heads;
      const d = this.innerDim / h;
      const q = this.q_proj.forward(x).reshape(B, L, h, d);
      const k = this.k_proj.forward(memory).reshape(B, S, h, d);
      const v = this.v_proj.forward(memory).reshape(B, S, h, d);
      return this.out_proj.forward(linearAttention(q, k, v).reshape(B, L, this.innerDim));
    });
  }

  /** x (B, L, dim), memory (B, S, memDim) → x + attention (B, L, dim). */
  forward(x: Tensor, memory: Tensor): Tensor {
    return tidy(() => x.add(this.attend(x, memory)));
  }
}

/** One round of TextQueryAggregation: `text_to_query` (text attends to queries), then `query_to_text`. */
export class TextQueryAggregationLayer extends Module {
  readonly text_to_query: LinearCrossAttention;
  readonly query_to_text: LinearCrossAttention;
  constructor(dim: number, heads: number, o: nn.InitOptions = {}) {
    super();
    this.text_to_query = this.child("text_to_query", new LinearCrossAttention(dim, dim, heads, {}, o));
    this.query_to_text = this.child("query_to_text", new LinearCrossAttention(dim, dim, heads, {}, o));
  }
  forward(text: Tensor, queries: Tensor): { text: Tensor; queries: Tensor } {
    return tidy(() => {
      const t = this.text_to_query.forward(text, queries);
      return { text: t, queries: this.query_to_text.forward(queries, t) };
    });
  }
}

/**
 * Mask-decoder head text aggregation: cfg.layers rounds (`layers.{i}`) of text ← text + LA(text → queries),
 * then queries ← queries + LA(queries → text). text (B, T, dim), queries (B, N, dim).
 */
export class TextQueryAggregation extends Module {
  readonly layers: ModuleList<TextQueryAggregationLayer>;
  constructor(dim: number, cfg: TextAggregationConfig, o: nn.InitOptions = {}) {
    super();
    this.layers = this.child(
      "layers",
      new ModuleList(
        Array.from({ length: cfg.layers }, () => new TextQueryAggregationLayer(dim, cfg.heads, o)),
      ),
    );
  }
  forward(text: Tensor, queries: Tensor): { text: Tensor; queries: Tensor } {
    return tidy(() => {
      let r = { text, queries };
      for (const l of this.layers) r = l.forward(r.text, r.queries);
      return r;
    });
  }
}

/**
 * Cost-aggregation head text aggregation: the class text embeddings (B, T, P, E) attend to the query memory
 * (B, N, D) through cfg.layers LinearCrossAttention layers (`layers.{i}`, width E) with zero-initialised
 * output projections, so a fresh module returns its input unchanged. Every prompt embedding attends
 * independently (linear attention has no interaction between query rows).
 */
export class TextMemoryAggregation extends Module {
  readonly layers: ModuleList<LinearCrossAttention>;
  constructor(textDim: number, memoryDim: number, cfg: TextAggregationConfig, o: nn.InitOptions = {}) {
    super();
    this.layers = this.child(
      "layers",
      new ModuleList(
        Array.from(
          { length: cfg.layers },
          () => new LinearCrossAttention(textDim, memoryDim, cfg.heads, { zeroInit: true }, o),
        ),
      ),
    );
  }
  /** text (B, T, P, E), memory (B, N, D) → (B, T, P, E). */
  forward(text: Tensor, memory: Tensor): Tensor {
    return tidy(() => {
      const [B, T, P, E] = text.shape as [number, number, number, number];
      let x = text.reshape(B, T * P, E);
      for (const l of this.layers) x = l.forward(x, memory);
      return x.reshape(B, T, P, E);
    });
  }
}
