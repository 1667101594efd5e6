// OpenAI CLIP text tower (clip/model.py `CLIP.encode_text`), plus the residual attention transformer that
// both towers share. Parameter names are the OpenAI checkpoint names, so `stateDict()` of a ClipTextEncoder
// is exactly the text part of an OpenAI state dict.
//
//   ids (B, L) → token_embedding + positional_embedding → transformer (causal, LND) → ln_final
//   → feature at the EOT position (argmax of ids: EOT is the largest id) → @ text_projection → (B, E)

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { arange, empty, full, type Tensor, tensor, tidy } from "../torch/tensor.js";
import type { ClipTextConfig } from "./config.js";

// ---------------------------------------------------------------------------------------------------------
// Shared transformer (clip/model.py ResidualAttentionBlock / Transformer)

/** nn.MultiheadAttention with the packed projection exposed: CAT-Seg's dense block reads its value rows. */
export class ClipAttention extends nn.MultiheadAttention {
  /** (3D, D) rows q;k;v */
  get inProjWeight(): Tensor {
    return this.get("in_proj_weight");
  }
  /** (3D) */
  get inProjBias(): Tensor {
    return this.get("in_proj_bias");
  }
}

/** c_fc → QuickGELU → c_proj (OpenAI's Sequential names). */
export class ClipMlp extends Module {
  readonly c_fc: nn.Linear;
  readonly c_proj: nn.Linear;
  constructor(width: number, o: nn.InitOptions = {}) {
    super();
    this.c_fc = this.child("c_fc", new nn.Linear(width, width * 4, true, o));
    this.c_proj = this.child("c_proj", new nn.Linear(width * 4, width, true, o));
  }
  /** (…, D) → (…, D); `residual` is added to the output (fused with c_proj at inference). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return tidy(() => this.c_proj.forward(this.c_fc.forward(x, { act: "quickGelu" }), { residual }));
  }
}

/** Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). Sequence-first (L, B, D) like the reference. */
export class ResidualAttentionBlock extends Module {
  readonly attn: ClipAttention;
  readonly ln_1: nn.LayerNorm;
  readonly mlp: ClipMlp;
  readonly ln_2: nn.LayerNorm;
  constructor(width: number, heads: number, o: nn.InitOptions = {}) {
    super();
    // Registration order = OpenAI's state_dict order.
    this.attn = this.child("attn", new ClipAttention(width, heads, o));
    this.ln_1 = this.child("ln_1", new nn.LayerNorm(width, 1e-5));
    this.mlp = this.child("mlp", new ClipMlp(width, o));
    this.ln_2 = this.child("ln_2", new nn.LayerNorm(width, 1e-5));
  }

  /** (L, B, D) → (L, B, D); `mask` is additive (L, L). */
  forward(x: Tensor, mask?: Tensor | null): Tensor {
    return tidy(() => {
      const h = this.attn.forward(this.ln_1.forward(x), mask, x); // x + attn(ln_1(x))
      return this.mlp.forward(this.ln_2.forward(h), h); // h + mlp(ln_2(h))
    });
  }

  /**
   * CAT-Seg `forward_dense` (model_vpt.py), used for the last visual block: no token mixing, only the
   * value path, so every patch keeps its own (localised) feature.
   *   v = out_proj(v_proj(ln_1(x))) + x[CLS];  v + mlp(ln_2(v))
   * The residual is the input CLS token broadcast over all positions, exactly as the reference adds x[:1].
   */
  forwardDense(x: Tensor): Tensor {
    return tidy(() => {
      const D = x.size(-1);
      const wv = this.attn.inProjWeight.narrow(0, 2 * D, D); // (D, D) value rows
      const bv = this.attn.inProjBias.narrow(0, 2 * D, D); // (D)
      const v = this.attn.outProj.forward(F.linear(this.ln_1.forward(x), wv, bv)); // (L, B, D)
      const h = v.add(x.narrow(0, 0, 1)); // + CLS (1, B, D)
      return this.mlp.forward(this.ln_2.forward(h), h);
    });
  }
}

/** What a transformer pass records besides its output. */
export interface TransformerRun {
  /** Output of the last block (L, B, D). */
  out: Tensor;
  /** Block outputs of the requested layers, in request order (L, B, D). */
  taps: Tensor[];
}

export interface TransformerRunOptions {
  /** Additive attention mask (L, L) for every block. */
  mask?: Tensor | null;
  /** Run the last block with `forwardDense` (CAT-Seg dense image features). */
  denseLast?: boolean;
  /** Layer indices whose outputs to return. */
  taps?: readonly number[];
  /**
   * Called with each block's output; its result replaces it (query injection in DEDOS). Taps record the
   * value after the hook, i.e. what the next block receives.
   */
  blockHook?: (layer: number, x: Tensor) => Tensor;
}

/** `transformer.resblocks.i` */
export class ClipTransformer extends Module {
  readonly resblocks: ModuleList<ResidualAttentionBlock>;
  constructor(
    readonly width: number,
    readonly layers: number,
    readonly heads: number,
    o: nn.InitOptions = {},
  ) {
    super();
    const blocks: ResidualAttentionBlock[] = [];
    for (let i = 0; i < layers; i++) blocks.push(new ResidualAttentionBlock(width, heads, o));
    this.resblocks = this.child("resblocks", new ModuleList(blocks));
  }

  /** (L, B, D) → (L, B, D) plus the requested taps. */
  run(x: Tensor, o: TransformerRunOptions = {}): TransformerRun {
    const want = o.taps ?? [];
    for (const l of want) {
      if (!Number.isInteger(l) || l < 0 || l >= this.layers) {
        throw new Error(`ClipTransformer: tap layer ${l} is outside 0…${this.layers - 1}`);
      }
    }
    return tidy(() => {
      const outs = new Map<number, Tensor>();
      let h = x;
      for (let i = 0; i < this.layers; i++) {
        const block = this.resblocks.at(i);
        h = o.denseLast && i === this.layers - 1 ? block.forwardDense(h) : block.forward(h, o.mask);
        if (o.blockHook) h = o.blockHook(i, h);
        outs.set(i, h);
      }
      return { out: h, taps: want.map((l) => outs.get(l)!) };
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Text tower

export interface ClipTextOutput {
  /** (B, embedDim) projected EOT features (not normalised). */
  features: Tensor;
  /** (B, width) ln_final output at the EOT position, before the projection. */
  eotPooled: Tensor;
  /** (B, L, width) ln_final over every position. */
  lnFinal: Tensor;
  /** (B, L, width) token + positional embedding. */
  embed: Tensor;
  /** Every block output (L, B, width), when asked for. */
  blocks: Tensor[];
}

export interface ClipInitOptions extends nn.InitOptions {
  /** "random" (default): CLIP-like random init; "empty": uninitialised memory, for weights loaded next. */
  init?: "random" | "empty";
}

/** Random or uninitialised (soon overwritten) parameter storage. */
export function initParam(shape: number[], std: number, o: ClipInitOptions): Tensor {
  const t = empty(shape);
  return o.init === "empty" ? t : t.normal_(0, std, o.generator);
}

/**
 * The text tower with OpenAI's top-level names: `token_embedding.weight`, `positional_embedding`,
 * `transformer.resblocks.i.*`, `ln_final.*`, `text_projection`.
 */
export class ClipTextEncoder extends Module {
  readonly token_embedding: nn.Embedding;
  readonly transformer: ClipTransformer;
  readonly ln_final: nn.LayerNorm;

  constructor(
    readonly textConfig: ClipTextConfig,
    o: ClipInitOptions = {},
  ) {
    super();
    const c = textConfig;
    if (c.width % c.heads !== 0)
      throw new Error(`ClipTextEncoder: width ${c.width} is not divisible by ${c.heads} heads`);
    this.param("positional_embedding", initParam([c.contextLength, c.width], 0.01, o)); // (Lctx, W)
    this.param("text_projection", initParam([c.width, c.embedDim], c.width ** -0.5, o)); // (W, E)
    this.transformer = this.child("transformer", new ClipTransformer(c.width, c.layers, c.heads, o));
    this.token_embedding = this.child("token_embedding", new nn.Embedding(c.vocabSize, c.width, o));
    this.ln_final = this.child("ln_final", new nn.LayerNorm(c.width, 1e-5));
  }

  get positionalEmbedding(): Tensor {
    return this.get("positional_embedding");
  }
  get textProjection(): Tensor {
    return this.get("text_projection");
  }

  /** ids (B, L ≤ contextLength), int64 or int32 → (B, embedDim) */
  forward(ids: Tensor): Tensor {
    return this.encodeText(ids);
  }

  /** ids (B, L) → (B, embedDim): `CLIP.encode_text`. */
  encodeText(ids: Tensor): Tensor {
    return tidy(() => this.forwardDetailed(ids).features);
  }

  /**
   * The full pass with its intermediates. L may be shorter than the context length: with a causal mask the
   * first L positions do not see the rest, so trimming trailing padding gives the same features.
   */
  forwardDetailed(ids: Tensor, o: { blocks?: boolean } = {}): ClipTextOutput {
    const c = this.textConfig;
    if (ids.ndim !== 2) throw new Error(`ClipTextEncoder: ids must be (B, L), got [${ids.shape.join(", ")}]`);
    const [B, L] = ids.shape as [number, number];
    if (L > c.contextLength)
      throw new Error(`ClipTextEncoder: ${L} tokens exceed the context length ${c.contextLength}`);
    return tidy(() => {
      const tok = ids.dtype === "int64" ? ids : ids.long();
      const pos = L === c.contextLength ? this.positionalEmbedding : this.positionalEmbedding.narrow(0, 0, L);
      const embed = this.token_embedding.forward(tok).add(pos); // (B, L, W)
      const mask = causalMask(L); // (L, L)
      const taps = o.blocks ? [...Array(c.layers).keys()] : [];
      const run = this.transformer.run(embed.permute(1, 0, 2), { mask, taps }); // LND
      const lnFinal = this.ln_final.forward(run.out.permute(1, 0, 2)); // (B, L, W)
      // EOT is the largest id of every row (49407 in the real vocabulary): argmax finds its position.
      const eot = tok.argmax(-1); // (B)
      const eotPooled = lnFinal.index([arange(B), eot]); // (B, W)
      const features = eotPooled.matmul(this.textProjection); // (B, E)
      return { features, eotPooled, lnFinal, embed, blocks: run.taps };
    });
  }
}

/** Additive causal mask (L, L): 0 on and below the diagonal, −inf above (CLIP.build_attention_mask). */
export function causalMask(L: number): Tensor {
  return tidy(() => full([L, L], Number.NEGATIVE_INFINITY).triu(1));
}

/** Token ids from the tokenizer's row-major Int32Array as an int64 (B, L) tensor. */
export function idsTensor(ids: Int32Array, shape: readonly [number, number]): Tensor {
  return tidy(() => tensor(ids, [shape[0], shape[1]]).long());
}
