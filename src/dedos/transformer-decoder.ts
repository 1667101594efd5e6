// DEDOS mask-decoder head, transformer decoder (spec §6): a Mask2Former-style masked-attention decoder whose
// query positions are the proxy queries (Σ T_l, projected by the caller) and whose classifier is the class
// text, met through linear-attention text aggregation.
//
//   queries: content `query_feat` (N, hidden) learned, position given (B, N, hidden)
//   memory level l (B, hidden, h, w) → tokens + level_embed[l]; keys add a 2-D sine position encoding
//   prediction 0 from decoder_norm(query_feat); then per layer i (level i mod L), post-norm as Mask2Former:
//     x = LN(x + CrossAttn(x + pos, mem + pe, mem; mask of the previous prediction at the level's size))
//     x = LN(x + SelfAttn(x + pos, x + pos, x))
//     x = LN(x + Linear(ReLU(Linear(x))))
//     prediction i + 1 from decoder_norm(x)
//   prediction(q̂ = decoder_norm(x)):
//     masks  = mask_embed(q̂) · maskFeatures                                    (B, N, 4g, 4g) logits
//     {text', q'} = text_aggregation(text, q̂);  e = class_embed(q')
//     class logits = [e · text'ᵀ , e · other_embed]                            (B, N, T + 1)
//   attention mask: bilinear resize of the mask logits, sigmoid < 0.5 → excluded, rows with every key
//   excluded are fully included again; computed without gradient.
//
// Parameter names follow Mask2Former's MultiScaleMaskedTransformerDecoder where the parts agree
// (transformer_cross_attention_layers.{i}.multihead_attn.in_proj_weight, …, query_feat.weight,
// level_embed.weight, decoder_norm, mask_embed.layers.{0,1,2}); the classifier is class_embed,
// other_embed and text_aggregation.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { cat, einsum, empty, noGrad, type Tensor, tensor, tidy, zeros } from "../torch/tensor.js";
import type { MaskHeadConfig, TextAggregationConfig } from "./config.js";
import { TextQueryAggregation } from "./text-aggregation.js";

/** xavier_uniform_ in place (fan-in / fan-out of a 2-D weight), unless the init is "empty". */
function xavierUniform_(t: Tensor, o: nn.InitOptions): void {
  if (o.init === "empty") return;
  const [fanOut, fanIn] = t.shape as [number, number];
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  noGrad(() => t.uniform_(-bound, bound, o.generator));
}

// ---------------------------------------------------------------------------------------------------------
// Position encoding

const sineCache = new Map<string, Float32Array>();

/**
 * DETR / Mask2Former `PositionEmbeddingSine` (normalize = true) for an unpadded h×w map: (2·numFeats, h, w)
 * values, channel-major. y = (i + 1)/(h + 1e-6)·scale, x = (j + 1)/(w + 1e-6)·scale; channel k < numFeats
 * is the y part, k ≥ numFeats the x part, with dim_t[k] = temperature^(2⌊k/2⌋/numFeats): sin(·/dim_t) at even
 * k, cos(·/dim_t) at odd k.
 */
export function sinePositionValues(
  h: number,
  w: number,
  numFeats: number,
  temperature = 10000,
  scale = 2 * Math.PI,
): Float32Array {
  const key = `${h},${w},${numFeats},${temperature},${scale}`;
  const hit = sineCache.get(key);
  if (hit) return hit;
  const eps = 1e-6;
  const out = new Float32Array(2 * numFeats * h * w);
  for (let k = 0; k < numFeats; k++) {
    const dimT = temperature ** ((2 * Math.floor(k / 2)) / numFeats);
    const f = k % 2 === 0 ? Math.sin : Math.cos;
    for (let i = 0; i < h; i++) {
      const y = (((i + 1) / (h + eps)) * scale) / dimT;
      for (let j = 0; j < w; j++) {
        const x = (((j + 1) / (w + eps)) * scale) / dimT;
        out[(k * h + i) * w + j] = f(y);
        out[((numFeats + k) * h + i) * w + j] = f(x);
      }
    }
  }
  if (sineCache.size > 64) sineCache.clear();
  sineCache.set(key, out);
  return out;
}

/** The sine position encoding as a tensor (1, 2·numFeats, h, w) on `like`'s device and dtype. */
export function sinePositionEncoding(h: number, w: number, numFeats: number, like?: Tensor): Tensor {
  return tidy(() => {
    const t = tensor(sinePositionValues(h, w, numFeats), [1, 2 * numFeats, h, w]);
    return like && (like.device !== "cpu" || like.dtype !== "float32")
      ? t.to({ device: like.device, dtype: like.dtype })
      : t;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Attention

/**
 * torch.nn.MultiheadAttention (batch_first = true, no dropout) with separate query, key and value inputs:
 * packed `in_proj_weight` (3E, E) / `in_proj_bias`, `out_proj`. Xavier-uniform weights, zero biases.
 */
export class MultiheadCrossAttention extends Module {
  readonly out_proj: nn.Linear;
  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    o: nn.InitOptions = {},
  ) {
    super();
    if (embedDim % numHeads !== 0)
      throw new Error(`MultiheadCrossAttention: embedDim ${embedDim} is not divisible by ${numHeads} heads`);
    xavierUniform_(this.param("in_proj_weight", empty([3 * embedDim, embedDim])), o);
    this.param("in_proj_bias", zeros([3 * embedDim]));
    this.out_proj = this.child("out_proj", new nn.Linear(embedDim, embedDim, true, o));
    xavierUniform_(this.out_proj.weight, o);
    noGrad(() => this.out_proj.bias!.zero_());
  }
  /**
   * query (B, L, E), key / value (B, S, E); mask additive, broadcast to (B, heads, L, S) (−inf excludes a
   * key) → (B, L, E).
   */
  forward(query: Tensor, key: Tensor, value: Tensor, mask?: Tensor | null): Tensor {
    return tidy(() => {
      const E = this.embedDim;
      const H = this.numHeads;
      const [B, L] = query.shape as [number, number, number];
      const S = key.size(1);
      const w = this.get("in_proj_weight").chunk(3, 0);
      const b = this.get("in_proj_bias").chunk(3, 0);
      const split = (t: Tensor, n: number) => t.reshape(B, n, H, E / H).transpose(1, 2); // (B, H, n, d)
      const q = split(F.linear(query, w[0]!, b[0]), L);
      const k = split(F.linear(key, w[1]!, b[1]), S);
      const v = split(F.linear(value, w[2]!, b[2]), S);
      const o = F.attention(q, k, v, { mask }); // (B, H, L, d)
      return this.out_proj.forward(o.transpose(1, 2).reshape(B, L, E));
    });
  }
}

/**
 * The additive attention mask of masked attention from mask logits (B, N, Hm, Wm): bilinear resize
 * (align_corners = false) to `size`, sigmoid < 0.5 → −inf, else 0; a query whose every key would be
 * excluded keeps all keys. No gradient. → (B, 1, N, h·w).
 */
export function maskedAttentionMask(maskLogits: Tensor, size: [number, number]): Tensor {
  return noGrad(() =>
    tidy(() => {
      const m = maskLogits.detach();
      const resized =
        m.size(2) === size[0] && m.size(3) === size[1]
          ? m
          : F.interpolate(m, { size, mode: "bilinear", alignCorners: false });
      let excluded = resized.sigmoid().lt(0.5).flatten(2); // (B, N, h·w) bool
      const all = excluded.sum(-1).eq(size[0] * size[1]); // (B, N)
      excluded = excluded.logicalAnd(all.logicalNot().unsqueeze(-1));
      return zeros(excluded.shape, { dtype: m.dtype, device: m.device })
        .maskedFill(excluded, Number.NEGATIVE_INFINITY)
        .unsqueeze(1);
    }),
  );
}

/** Post-norm masked cross-attention: x = norm(x + attn(x + pos, memory + memPos, memory, mask)). */
export class CrossAttentionLayer extends Module {
  readonly multihead_attn: MultiheadCrossAttention;
  readonly norm: nn.LayerNorm;
  constructor(dim: number, heads: number, o: nn.InitOptions = {}) {
    super();
    this.multihead_attn = this.child("multihead_attn", new MultiheadCrossAttention(dim, heads, o));
    this.norm = this.child("norm", new nn.LayerNorm(dim));
  }
  /** x (B, N, C), memory (B, S, C), pos (B, N, C), memPos (B or 1, S, C), mask (B, 1, N, S) additive. */
  forward(x: Tensor, memory: Tensor, pos: Tensor, memPos: Tensor, mask: Tensor | null): Tensor {
    return tidy(() =>
      this.norm.forward(x.add(this.multihead_attn.forward(x.add(pos), memory.add(memPos), memory, mask))),
    );
  }
}

/** Post-norm self-attention: x = norm(x + attn(x + pos, x + pos, x)). */
export class SelfAttentionLayer extends Module {
  readonly self_attn: MultiheadCrossAttention;
  readonly norm: nn.LayerNorm;
  constructor(dim: number, heads: number, o: nn.InitOptions = {}) {
    super();
    this.self_attn = this.child("self_attn", new MultiheadCrossAttention(dim, heads, o));
    this.norm = this.child("norm", new nn.LayerNorm(dim));
  }
  forward(x: Tensor, pos: Tensor): Tensor {
    return tidy(() => {
      const qk = x.add(pos);
      return this.norm.forward(x.add(this.self_attn.forward(qk, qk, x)));
    });
  }
}

/** Post-norm FFN: x = norm(x + linear2(ReLU(linear1(x)))). */
export class FFNLayer extends Module {
  readonly linear1: nn.Linear;
  readonly linear2: nn.Linear;
  readonly norm: nn.LayerNorm;
  constructor(dim: number, ffnDim: number, o: nn.InitOptions = {}) {
    super();
    this.linear1 = this.child("linear1", new nn.Linear(dim, ffnDim, true, o));
    this.linear2 = this.child("linear2", new nn.Linear(ffnDim, dim, true, o));
    xavierUniform_(this.linear1.weight, o);
    xavierUniform_(this.linear2.weight, o);
    this.norm = this.child("norm", new nn.LayerNorm(dim));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.norm.forward(x.add(this.linear2.forward(F.relu(this.linear1.forward(x))))));
  }
}

/** Linear layers `layers.{i}` with ReLU between them (not after the last): dims[0] → … → dims[n]. */
export class MLP extends Module {
  readonly layers: ModuleList<nn.Linear>;
  constructor(dims: number[], o: nn.InitOptions = {}) {
    super();
    const ls: nn.Linear[] = [];
    for (let i = 0; i + 1 < dims.length; i++) ls.push(new nn.Linear(dims[i]!, dims[i + 1]!, true, o));
    this.layers = this.child("layers", new ModuleList(ls));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = x;
      for (const [i, l] of this.layers.items.entries()) {
        y = l.forward(y);
        if (i + 1 < this.layers.length) y = F.relu(y);
      }
      return y;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The decoder

export interface MaskPrediction {
  /** (B, N, T + 1): T class logits and the "other" class last. */
  classLogits: Tensor;
  /** (B, N, Hf, Wf) mask logits at the mask-feature resolution. */
  masks: Tensor;
}

export interface MaskTransformerDecoderInput {
  /** Multi-scale memory, coarse → fine, each (B, hidden, h, w); layer i attends to level i mod length. */
  memory: Tensor[];
  /** (B, maskDim, Hf, Wf). */
  maskFeatures: Tensor;
  /** Query positions (B, N, hidden). */
  queryPos: Tensor;
  /** Projected class text (B, T, hidden) (or (T, hidden), shared by the batch). */
  text: Tensor;
}

export interface MaskTransformerDecoderOptions {
  /** Compute class logits only for the last prediction and return only it (inference). Default false. */
  finalOnly?: boolean;
}

export class MaskTransformerDecoder extends Module {
  readonly query_feat: nn.Embedding;
  readonly level_embed: nn.Embedding;
  readonly transformer_cross_attention_layers: ModuleList<CrossAttentionLayer>;
  readonly transformer_self_attention_layers: ModuleList<SelfAttentionLayer>;
  readonly transformer_ffn_layers: ModuleList<FFNLayer>;
  readonly decoder_norm: nn.LayerNorm;
  readonly mask_embed: MLP;
  readonly class_embed: nn.Linear;
  readonly text_aggregation: TextQueryAggregation;

  constructor(
    readonly numQueries: number,
    readonly cfg: MaskHeadConfig,
    textCfg: TextAggregationConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const C = cfg.hiddenDim;
    if (C % 2 !== 0) throw new Error(`MaskTransformerDecoder: hiddenDim ${C} must be even (sine encoding)`);
    this.query_feat = this.child("query_feat", new nn.Embedding(numQueries, C, o));
    this.level_embed = this.child("level_embed", new nn.Embedding(cfg.memoryLevels, C, o));
    const n = cfg.decoderLayers;
    const make = <M extends Module>(f: () => M) => new ModuleList(Array.from({ length: n }, f));
    this.transformer_cross_attention_layers = this.child(
      "transformer_cross_attention_layers",
      make(() => new CrossAttentionLayer(C, cfg.heads, o)),
    );
    this.transformer_self_attention_layers = this.child(
      "transformer_self_attention_layers",
      make(() => new SelfAttentionLayer(C, cfg.heads, o)),
    );
    this.transformer_ffn_layers = this.child(
      "transformer_ffn_layers",
      make(() => new FFNLayer(C, cfg.ffnDim, o)),
    );
    this.decoder_norm = this.child("decoder_norm", new nn.LayerNorm(C));
    this.mask_embed = this.child("mask_embed", new MLP([C, C, C, cfg.maskDim], o));
    this.class_embed = this.child("class_embed", new nn.Linear(C, C, true, o));
    const bound = 1 / Math.sqrt(C);
    const other = empty([C]);
    this.param("other_embed", o.init === "empty" ? other : other.uniform_(-bound, bound, o.generator));
    this.text_aggregation = this.child("text_aggregation", new TextQueryAggregation(C, textCfg, o));
  }

  /** The learned "other" class embedding (hidden). */
  get otherEmbed(): Tensor {
    return this.get("other_embed");
  }

  /** Mask logits of normed queries q̂ (B, N, C) against maskFeatures (B, maskDim, H, W) → (B, N, H, W). */
  predictMasks(normed: Tensor, maskFeatures: Tensor): Tensor {
    return tidy(() => einsum("bqc,bchw->bqhw", this.mask_embed.forward(normed), maskFeatures));
  }

  /** Class logits of normed queries q̂ (B, N, C) against projected text (B, T, C) → (B, N, T + 1). */
  predictClasses(normed: Tensor, text: Tensor): Tensor {
    return tidy(() => {
      const agg = this.text_aggregation.forward(text, normed);
      const e = this.class_embed.forward(agg.queries); // (B, N, C)
      const logits = einsum("bnc,btc->bnt", e, agg.text);
      const other = e.matmul(this.otherEmbed.unsqueeze(-1)); // (B, N, 1)
      return cat([logits, other], -1);
    });
  }

  forward(x: MaskTransformerDecoderInput, opts: MaskTransformerDecoderOptions = {}): MaskPrediction[] {
    return tidy(() => {
      const L = x.memory.length;
      if (L !== this.cfg.memoryLevels)
        throw new Error(
          `MaskTransformerDecoder: ${L} memory levels, the config has ${this.cfg.memoryLevels}`,
        );
      const [B, N, C] = x.queryPos.shape as [number, number, number];
      if (N !== this.numQueries || C !== this.cfg.hiddenDim)
        throw new Error(
          `MaskTransformerDecoder: queryPos is [${x.queryPos.shape}], expected [B, ${this.numQueries}, ${this.cfg.hiddenDim}]`,
        );
      const text = x.text.ndim === 2 ? x.text.unsqueeze(0).expand(B, -1, -1) : x.text;
      const levelEmbed = this.level_embed.weight;
      const sizes: [number, number][] = [];
      const mem: Tensor[] = [];
      const memPos: Tensor[] = [];
      for (const [l, m] of x.memory.entries()) {
        const [, , h, w] = m.shape as [number, number, number, number];
        sizes.push([h, w]);
        mem.push(m.flatten(2).transpose(1, 2).add(levelEmbed.select(0, l))); // (B, h·w, C)
        memPos.push(
          sinePositionEncoding(h, w, C / 2, m)
            .flatten(2)
            .transpose(1, 2),
        ); // (1, h·w, C)
      }
      const finalOnly = opts.finalOnly ?? false;
      const nLayers = this.cfg.decoderLayers;
      const predictions: MaskPrediction[] = [];
      let attnMask: Tensor | null = null;
      const predict = (q: Tensor, last: boolean, nextLevel: number) => {
        const normed = this.decoder_norm.forward(q);
        const masks = this.predictMasks(normed, x.maskFeatures);
        if (!last) attnMask = maskedAttentionMask(masks, sizes[nextLevel]!);
        if (last || !finalOnly) predictions.push({ classLogits: this.predictClasses(normed, text), masks });
      };
      let q = this.query_feat.weight.unsqueeze(0).expand(B, N, C);
      predict(q, nLayers === 0, 0);
      for (let i = 0; i < nLayers; i++) {
        const l = i % L;
        q = this.transformer_cross_attention_layers
          .at(i)
          .forward(q, mem[l]!, x.queryPos, memPos[l]!, attnMask);
        q = this.transformer_self_attention_layers.at(i).forward(q, x.queryPos);
        q = this.transformer_ffn_layers.at(i).forward(q);
        predict(q, i === nLayers - 1, (i + 1) % L);
      }
      return predictions;
    });
  }
}
