// CAT-Seg's cost-aggregation head (cat_seg/modeling/transformer/model.py `Aggregator` and its parts:
// `LinearAttention`, `FullAttention`, `AttentionLayer`, `ClassTransformerLayer`, `AggregatorLayer`,
// `DoubleConv`, `Up`). Parameter names are the reference's, so a CAT-Seg checkpoint's
// `sem_seg_head.predictor.transformer.*` loads strictly once that prefix is stripped.
//
//   img (B, C, H, W), text (B, T, P, C)
//   → cost volume: cosine of every pixel with every class prompt (B, P, T, H, W)
//     [T > pad_len: keep the pad_len classes with the largest max cost, the others end as −100]
//   → conv1 7×7 per class: P → hidden (B, hidden, T, H, W)
//   → num_layers × [spatial: Swin pair with appearance guidance; class: linear attention across classes
//     with text guidance, on a pooled grid, padded with learnable tokens up to pad_len]
//   → decoder: 2× (transposed conv ×2, concat projected guidance, DoubleConv) → 3×3 head → (B, T, 4H, 4W)

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { cat, einsum, full, type Tensor, tidy, zeros } from "../torch/tensor.js";
import {
  AGGREGATOR_CONSTANTS,
  type AggregatorAttentionType,
  type AggregatorConfig,
  cloneAggregatorConfig,
  validateAggregatorConfig,
} from "./config.js";
import { SwinTransformerBlockWrapper } from "./swin.js";

/** F.normalize(x, dim): x / max(‖x‖₂, 1e-12). */
export function l2normalizeSafe(x: Tensor, dim: number): Tensor {
  return tidy(() => x.div(x.norm(2, dim, true).clamp(1e-12)));
}

/** nn.ReLU as a parameterless Sequential member (keeps the reference's Sequential indices). */
class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Class aggregation

/**
 * `LinearAttention` ("Transformers are RNNs"), q (N, L, h, d), k (N, S, h, d), v (N, S, h, dv) →
 * (N, L, h, dv): φ = elu + 1; values pre-divided by S and the result multiplied back by S, as the reference
 * does against fp16 overflow; Z = 1 / (φ(q)·Σ_s φ(k) + eps).
 */
export function linearAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  eps: number = AGGREGATOR_CONSTANTS.linearAttentionEps,
): Tensor {
  return tidy(() => {
    const Q = F.elu(q).add(1);
    const K = F.elu(k).add(1);
    const S = v.size(1);
    const KV = einsum("nshd,nshv->nhdv", K, v.div(S)); // (N, h, d, dv)
    const Z = einsum("nlhd,nhd->nlh", Q, K.sum(1)).add(eps).reciprocal(); // (N, L, h)
    return einsum("nlhd,nhdv,nlh->nlhv", Q, KV, Z).mul(S).contiguous();
  });
}

/** `FullAttention` (no masks, no dropout): softmax over S of q·k/√d, q (N, L, h, d) → (N, L, h, d). */
export function fullAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return tidy(() => {
    const QK = einsum("nlhd,nshd->nlsh", q, k); // (N, L, S, h)
    const A = F.softmax(QK.mul(1 / q.size(3) ** 0.5), 2);
    return einsum("nlsh,nshd->nlhd", A, v).contiguous();
  });
}

/** `AttentionLayer`: q, k from [x, guidance], v from x, no output projection. */
export class AttentionLayer extends Module {
  readonly q: nn.Linear;
  readonly k: nn.Linear;
  readonly v: nn.Linear;
  constructor(
    hiddenDim: number,
    guidanceDim: number,
    readonly nheads: number,
    readonly attentionType: AggregatorAttentionType,
    o: nn.InitOptions = {},
  ) {
    super();
    this.q = this.child("q", new nn.Linear(hiddenDim + guidanceDim, hiddenDim, true, o));
    this.k = this.child("k", new nn.Linear(hiddenDim + guidanceDim, hiddenDim, true, o));
    this.v = this.child("v", new nn.Linear(hiddenDim, hiddenDim, true, o));
  }
  /** x (N, L, C), guidance (N, L, Cg) or null → (N, L, C). */
  forward(x: Tensor, guidance: Tensor | null): Tensor {
    return tidy(() => {
      const xg = guidance ? cat([x, guidance], -1) : x;
      const [N, L, C] = x.shape as [number, number, number];
      const split = (t: Tensor) => t.reshape(N, L, this.nheads, C / this.nheads); // B L (H D) → B L H D
      const q = split(this.q.forward(xg));
      const k = split(this.k.forward(xg));
      const v = split(this.v.forward(x));
      const out = this.attentionType === "linear" ? linearAttention(q, k, v) : fullAttention(q, k, v);
      return out.reshape(N, L, C);
    });
  }
}

/**
 * `ClassTransformerLayer`: attention across classes at every (pooled) position. Pooling (AvgPool2d, kernel =
 * stride) is a forward option because it has no parameters (CAT-Seg: 2×2 in training, 1×1 in evaluation).
 * With pad_len > 0, fewer than pad_len classes are padded with `padding_tokens` / `padding_guidance`, which are
 * dropped again after the attention.
 */
export class ClassTransformerLayer extends Module {
  readonly attention: AttentionLayer;
  readonly MLP: nn.Sequential;
  readonly norm1: nn.LayerNorm;
  readonly norm2: nn.LayerNorm;

  constructor(
    hiddenDim: number,
    guidanceDim: number,
    nheads: number,
    attentionType: AggregatorAttentionType,
    readonly padLen: number,
    o: nn.InitOptions = {},
  ) {
    super();
    const r = AGGREGATOR_CONSTANTS.classMlpRatio;
    this.attention = this.child(
      "attention",
      new AttentionLayer(hiddenDim, guidanceDim, nheads, attentionType, o),
    );
    this.MLP = this.child(
      "MLP",
      new nn.Sequential([
        new nn.Linear(hiddenDim, hiddenDim * r, true, o),
        new ReLU(),
        new nn.Linear(hiddenDim * r, hiddenDim, true, o),
      ]),
    );
    this.norm1 = this.child("norm1", new nn.LayerNorm(hiddenDim, AGGREGATOR_CONSTANTS.normEps));
    this.norm2 = this.child("norm2", new nn.LayerNorm(hiddenDim, AGGREGATOR_CONSTANTS.normEps));
    this.param("padding_tokens", padLen > 0 ? zeros([1, 1, hiddenDim]) : null); // (1, 1, C)
    this.param("padding_guidance", padLen > 0 && guidanceDim > 0 ? zeros([1, 1, guidanceDim]) : null); // (1, 1, Cg)
  }

  get paddingTokens(): Tensor | null {
    return this.has("padding_tokens") ? this.get("padding_tokens") : null;
  }
  get paddingGuidance(): Tensor | null {
    return this.has("padding_guidance") ? this.get("padding_guidance") : null;
  }

  /** x (B, C, T, H, W), guidance (B, T, Cg) or null → (B, C, T, H, W). */
  forward(x: Tensor, guidance: Tensor | null, poolingSize: [number, number] | null): Tensor {
    return tidy(() => {
      const [B, C, T, H, W] = x.shape as [number, number, number, number, number];
      const perClass = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W); // (B·T, C, H, W)
      const pooled =
        poolingSize && (poolingSize[0] !== 1 || poolingSize[1] !== 1)
          ? F.avgPool2d(perClass, poolingSize) // kernel = stride, no padding, floor
          : perClass;
      const [Hp, Wp] = [pooled.size(2), pooled.size(3)];
      let xp = pooled.reshape(B, T, C, Hp, Wp); // (B, T, C, Hp, Wp)
      let g = guidance;
      const pad = this.paddingTokens && T < this.padLen ? this.padLen - T : 0;
      if (pad > 0) {
        const tokens = this.paddingTokens!.reshape(1, 1, C, 1, 1).expand(B, pad, C, Hp, Wp);
        xp = cat([xp, tokens], 1); // (B, pad_len, C, Hp, Wp)
        const pg = this.paddingGuidance;
        if (g && pg) g = cat([g, pg.expand(B, pad, pg.size(-1))], 1); // (B, pad_len, Cg)
      }
      const Tp = T + pad;
      let s = xp.permute(0, 3, 4, 1, 2).reshape(B * Hp * Wp, Tp, C); // (B·Hp·Wp, T', C)
      const gs = g
        ? g
            .unsqueeze(1)
            .expand(B, Hp * Wp, Tp, g.size(-1))
            .reshape(B * Hp * Wp, Tp, g.size(-1))
        : null; // (B·Hp·Wp, T', Cg)
      s = s.add(this.attention.forward(this.norm1.forward(s), gs));
      s = s.add(this.MLP.forward(this.norm2.forward(s)));
      // Back to per-class maps; padding classes are dropped before (not after) the per-map upsampling.
      let maps = s
        .reshape(B, Hp, Wp, Tp, C)
        .narrow(3, 0, T)
        .permute(0, 3, 4, 1, 2)
        .reshape(B * T, C, Hp, Wp); // (B·T, C, Hp, Wp)
      if (Hp !== H || Wp !== W)
        maps = F.interpolate(maps, { size: [H, W], mode: "bilinear", alignCorners: true });
      return x.add(maps.reshape(B, T, C, H, W).permute(0, 2, 1, 3, 4));
    });
  }
}

/** `AggregatorLayer`: spatial (Swin pair) then class aggregation. */
export class AggregatorLayer extends Module {
  readonly swin_block: SwinTransformerBlockWrapper;
  readonly attention: ClassTransformerLayer;
  constructor(c: AggregatorConfig, o: nn.InitOptions = {}) {
    super();
    this.swin_block = this.child(
      "swin_block",
      new SwinTransformerBlockWrapper(
        c.hiddenDim,
        c.appearanceGuidanceProjDim,
        c.featureResolution,
        c.nheads,
        c.windowSize,
        o,
      ),
    );
    this.attention = this.child(
      "attention",
      new ClassTransformerLayer(c.hiddenDim, c.textGuidanceProjDim, c.nheads, c.attentionType, c.padLen, o),
    );
  }
  /** x (B, C, T, H, W) → the Swin output and the layer output, both (B, C, T, H, W). */
  forwardDetailed(
    x: Tensor,
    appearanceGuidance: Tensor | null,
    textGuidance: Tensor | null,
    poolingSize: [number, number] | null,
  ): { afterSwin: Tensor; out: Tensor } {
    return tidy(() => {
      const afterSwin = this.swin_block.forward(x, appearanceGuidance);
      return { afterSwin, out: this.attention.forward(afterSwin, textGuidance, poolingSize) };
    });
  }
  forward(
    x: Tensor,
    appearanceGuidance: Tensor | null,
    textGuidance: Tensor | null,
    poolingSize: [number, number] | null,
  ): Tensor {
    return tidy(() => this.forwardDetailed(x, appearanceGuidance, textGuidance, poolingSize).out);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoder

/** `DoubleConv`: (3×3 conv, no bias → GroupNorm(mid/16, mid) → ReLU) × 2, Sequential indices 0,1,3,4. */
export class DoubleConv extends Module {
  readonly double_conv: nn.Sequential;
  constructor(inChannels: number, outChannels: number, midChannels?: number, o: nn.InitOptions = {}) {
    super();
    const mid = midChannels || outChannels;
    const groups = Math.floor(mid / AGGREGATOR_CONSTANTS.groupNormChannelsPerGroup);
    if (groups < 1) throw new Error(`DoubleConv: GroupNorm(${mid} // 16) has no groups (need ≥ 16 channels)`);
    // The reference's second GroupNorm is also sized by mid_channels (= out_channels whenever mid is unset).
    this.double_conv = this.child(
      "double_conv",
      new nn.Sequential([
        new nn.Conv2d(inChannels, mid, 3, { padding: 1, bias: false }, o),
        new nn.GroupNorm(groups, mid, AGGREGATOR_CONSTANTS.normEps),
        new ReLU(),
        new nn.Conv2d(mid, outChannels, 3, { padding: 1, bias: false }, o),
        new nn.GroupNorm(groups, mid, AGGREGATOR_CONSTANTS.normEps),
        new ReLU(),
      ]),
    );
  }
  forward(x: Tensor): Tensor {
    return this.double_conv.forward(x);
  }
}

/** `Up`: ConvTranspose2d(in → in − guidance, 2, stride 2), concat the guidance repeated per class, DoubleConv. */
export class Up extends Module {
  readonly up: nn.ConvTranspose2d;
  readonly conv: DoubleConv;
  constructor(inChannels: number, outChannels: number, guidanceChannels: number, o: nn.InitOptions = {}) {
    super();
    this.up = this.child(
      "up",
      new nn.ConvTranspose2d(inChannels, inChannels - guidanceChannels, 2, { stride: 2 }, o),
    );
    this.conv = this.child("conv", new DoubleConv(inChannels, outChannels, undefined, o));
  }
  /** x (B·T, Cin, h, w), guidance (B, Cg, 2h, 2w) or null → (B·T, Cout, 2h, 2w). */
  forward(x: Tensor, guidance: Tensor | null): Tensor {
    return tidy(() => {
      let y = this.up.forward(x);
      if (guidance) {
        const [B, Cg, h, w] = guidance.shape as [number, number, number, number];
        const T = y.size(0) / B;
        const g = guidance
          .unsqueeze(1)
          .expand(B, T, Cg, h, w)
          .reshape(B * T, Cg, h, w); // B C H W → (B T) C H W
        y = cat([y, g], 1);
      }
      return this.conv.forward(y);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The head

export interface AggregatorForwardOptions {
  /** Class-layer pooling (kernel = stride); default the config's. CAT-Seg: (2, 2) training, (1, 1) eval. */
  poolingSize?: [number, number] | null;
}

export interface AggregatorDebug {
  /** conv1 input, the cost volume per class: (B·T', P, H, W). */
  corrEmbedIn: Tensor;
  /** conv1 output (B·T', hidden, H, W). */
  corrEmbedConv1: Tensor;
  /** guidance_projection(g0): (B, Ca', H, W), or null. */
  appearanceGuidanceProj: Tensor | null;
  /** text_guidance_projection of the prompt-averaged text: (B, T', Ct'), or null. */
  textGuidanceProj: Tensor | null;
  /** decoder_guidance_projection of g1, g2: (B, dg0', 2H, 2W), (B, dg1', 4H, 4W). */
  decoderGuidanceProj: (Tensor | null)[];
  /** Per layer: after the Swin pair and after the class attention, (B, hidden, T', H, W). */
  layers: { afterSwin: Tensor; out: Tensor }[];
  /** decoder1 / decoder2 outputs: (B·T', dec0, 2H, 2W), (B·T', dec1, 4H, 4W). */
  decoder1Out: Tensor;
  decoder2Out: Tensor;
}

export interface AggregatorOutput {
  /** (B, T, 4H, 4W) raw logits (CAT-Seg applies a sigmoid at inference); unselected classes are −100. */
  logits: Tensor;
  /**
   * (B, pad_len) int64 class indices aggregated on the top-k path (T > pad_len), in the order the aggregation
   * ran (libtorch `topk(sorted=False)` order, as the reference); null when every class was aggregated.
   * T' in the debug shapes is pad_len then, else T.
   */
  selectedClasses: Tensor | null;
  debug?: AggregatorDebug;
}

/**
 * The CAT-Seg cost-aggregation module. Children and parameters carry the reference's names: `layers.i.*`,
 * `conv1`, `guidance_projection.0`, `text_guidance_projection.0`, `decoder_guidance_projection.i.0`,
 * `decoder1`, `decoder2`, `head` (and the shifted Swin blocks' `attn_mask` buffers).
 */
export class Aggregator extends Module {
  readonly config: AggregatorConfig;
  readonly layers: ModuleList<AggregatorLayer>;
  readonly conv1: nn.Conv2d;
  readonly guidance_projection: nn.Sequential | null;
  readonly text_guidance_projection: nn.Sequential | null;
  readonly decoder_guidance_projection: ModuleList<nn.Sequential> | null;
  readonly decoder1: Up;
  readonly decoder2: Up;
  readonly head: nn.Conv2d;

  constructor(config: AggregatorConfig, o: nn.InitOptions = {}) {
    super();
    validateAggregatorConfig(config);
    const c = cloneAggregatorConfig(config);
    this.config = c;
    this.layers = this.child(
      "layers",
      new ModuleList(Array.from({ length: c.numLayers }, () => new AggregatorLayer(c, o))),
    );
    this.conv1 = this.child(
      "conv1",
      new nn.Conv2d(c.promptChannel, c.hiddenDim, AGGREGATOR_CONSTANTS.corrEmbedKernel, { padding: 3 }, o),
    );
    this.guidance_projection =
      c.appearanceGuidanceDim > 0
        ? this.child(
            "guidance_projection",
            new nn.Sequential([
              new nn.Conv2d(c.appearanceGuidanceDim, c.appearanceGuidanceProjDim, 3, { padding: 1 }, o),
              new ReLU(),
            ]),
          )
        : null;
    this.text_guidance_projection =
      c.textGuidanceDim > 0
        ? this.child(
            "text_guidance_projection",
            new nn.Sequential([new nn.Linear(c.textGuidanceDim, c.textGuidanceProjDim, true, o), new ReLU()]),
          )
        : null;
    this.decoder_guidance_projection =
      c.decoderGuidanceDims[0] > 0
        ? this.child(
            "decoder_guidance_projection",
            new ModuleList(
              c.decoderGuidanceDims.map(
                (d, i) =>
                  new nn.Sequential([
                    new nn.Conv2d(d, c.decoderGuidanceProjDims[i]!, 3, { padding: 1 }, o),
                    new ReLU(),
                  ]),
              ),
            ),
          )
        : null;
    this.decoder1 = this.child(
      "decoder1",
      new Up(c.hiddenDim, c.decoderDims[0], c.decoderGuidanceProjDims[0], o),
    );
    this.decoder2 = this.child(
      "decoder2",
      new Up(c.decoderDims[0], c.decoderDims[1], c.decoderGuidanceProjDims[1], o),
    );
    this.head = this.child("head", new nn.Conv2d(c.decoderDims[1], 1, 3, { padding: 1 }, o));
  }

  /** `correlation`: cosine of every pixel with every prompt, (B, C, H, W) × (B, T, P, C) → (B, P, T, H, W). */
  correlation(imgFeats: Tensor, textFeats: Tensor): Tensor {
    return tidy(() =>
      einsum("bchw,btpc->bpthw", l2normalizeSafe(imgFeats, 1), l2normalizeSafe(textFeats, -1)),
    );
  }

  /** img (B, C, H, W), text (B, T, P, C), guidance [g0 (B, Ca, H, W), g1 (B, dg0, 2H, 2W), g2 (B, dg1, 4H, 4W)] → (B, T, 4H, 4W). */
  forward(
    imgFeats: Tensor,
    textFeats: Tensor,
    guidance: readonly (Tensor | null)[],
    o: AggregatorForwardOptions = {},
  ): Tensor {
    return tidy(() => this.forwardDetailed(imgFeats, textFeats, guidance, o).logits);
  }

  /** `forward` with the top-k selection and (when `debug`) the intermediates of the reference's hooks. */
  forwardDetailed(
    imgFeats: Tensor,
    textFeats: Tensor,
    guidance: readonly (Tensor | null)[],
    o: AggregatorForwardOptions & { debug?: boolean } = {},
  ): AggregatorOutput {
    this.checkInputs(imgFeats, textFeats, guidance);
    const c = this.config;
    const pooling = o.poolingSize === undefined ? c.poolingSize : o.poolingSize;
    return tidy(() => {
      const [B, , H, W] = imgFeats.shape as [number, number, number, number];
      const [, T, P, C] = textFeats.shape as [number, number, number, number];
      let text = textFeats;
      let corr = this.correlation(imgFeats, textFeats); // (B, P, T, H, W)
      let classes: Tensor | null = null;
      if (c.padLen > 0 && T > c.padLen) {
        // Keep the pad_len classes whose best cost over prompts and pixels is largest.
        const best = corr.permute(0, 2, 1, 3, 4).flatten(-3).amax(-1); // (B, T)
        classes = best.topk(c.padLen, -1, true, false)[1]; // (B, K)
        const normed = l2normalizeSafe(textFeats, -1);
        text = normed.gather(1, classes.reshape(B, c.padLen, 1, 1).expand(B, c.padLen, P, C)); // (B, K, P, C)
        corr = einsum("bchw,btpc->bpthw", l2normalizeSafe(imgFeats, 1), text); // (B, P, K, H, W)
      }
      const Tk = text.size(1);

      // corr_embed: B P T H W → (B T) P H W → conv1 → B C T H W
      const corrEmbedIn = corr.permute(0, 2, 1, 3, 4).reshape(B * Tk, P, H, W);
      const corrEmbedConv1 = this.conv1.forward(corrEmbedIn); // (B·T', hidden, H, W)
      let x = corrEmbedConv1.reshape(B, Tk, c.hiddenDim, H, W).permute(0, 2, 1, 3, 4);

      const appearanceGuidanceProj =
        this.guidance_projection && guidance[0] ? this.guidance_projection.forward(guidance[0]) : null;
      const decoderGuidanceProj: (Tensor | null)[] = this.decoder_guidance_projection
        ? this.decoder_guidance_projection.items.map((proj, i) => {
            const g = guidance[i + 1];
            return g ? proj.forward(g) : null;
          })
        : [null, null];
      let textGuidanceProj: Tensor | null = null;
      if (this.text_guidance_projection) {
        const mean = text.mean(-2); // (B, T', C) average over prompts
        textGuidanceProj = this.text_guidance_projection.forward(mean.div(mean.norm(2, -1, true)));
      }

      const layers: { afterSwin: Tensor; out: Tensor }[] = [];
      for (const layer of this.layers) {
        const r = layer.forwardDetailed(x, appearanceGuidanceProj, textGuidanceProj, pooling);
        if (o.debug) layers.push(r);
        x = r.out;
      }

      // conv_decoder: B C T H W → (B T) C H W → decoder1, decoder2 → head → B T H W
      const perClass = x.permute(0, 2, 1, 3, 4).reshape(B * Tk, c.hiddenDim, H, W);
      const decoder1Out = this.decoder1.forward(perClass, decoderGuidanceProj[0] ?? null);
      const decoder2Out = this.decoder2.forward(decoder1Out, decoderGuidanceProj[1] ?? null);
      const head = this.head.forward(decoder2Out); // (B·T', 1, 4H, 4W)
      const [Ho, Wo] = [head.size(2), head.size(3)];
      let logits = head.reshape(B, Tk, Ho, Wo);
      if (classes) {
        const index = classes.reshape(B, c.padLen, 1, 1).expand(B, c.padLen, Ho, Wo);
        logits = full([B, T, Ho, Wo], AGGREGATOR_CONSTANTS.droppedClassLogit, {
          dtype: logits.dtype,
          device: logits.device,
        }).scatter(1, index, logits);
      }
      const out: AggregatorOutput = { logits, selectedClasses: classes };
      if (o.debug) {
        out.debug = {
          corrEmbedIn,
          corrEmbedConv1,
          appearanceGuidanceProj,
          textGuidanceProj,
          decoderGuidanceProj,
          layers,
          decoder1Out,
          decoder2Out,
        };
      }
      return out;
    });
  }

  private checkInputs(img: Tensor, text: Tensor, guidance: readonly (Tensor | null)[]): void {
    const c = this.config;
    const s = (t: Tensor) => `[${t.shape.join(", ")}]`;
    const fail = (msg: string): never => {
      throw new Error(`Aggregator: ${msg}`);
    };
    if (img.ndim !== 4) fail(`img_feats must be (B, C, H, W), got ${s(img)}`);
    if (text.ndim !== 4) fail(`text_feats must be (B, T, P, C), got ${s(text)}`);
    const [B, C, H, W] = img.shape as [number, number, number, number];
    if (text.size(0) !== B || text.size(3) !== C)
      fail(`text_feats ${s(text)} does not fit img_feats ${s(img)} (batch and channels must agree)`);
    if (text.size(2) !== c.promptChannel)
      fail(
        `text_feats has ${text.size(2)} prompts per class, conv1 takes prompt_channel = ${c.promptChannel}`,
      );
    if (H !== c.featureResolution[0] || W !== c.featureResolution[1])
      fail(`img_feats is ${H}×${W}, the Swin blocks are built for ${c.featureResolution.join("×")}`);
    if (guidance.length !== 3) fail(`appearance guidance must be [g0, g1, g2], got ${guidance.length} maps`);
    const want: [string, number, number][] = [
      ["guidance[0]", c.appearanceGuidanceDim, 1],
      ["guidance[1]", c.decoderGuidanceDims[0], 2],
      ["guidance[2]", c.decoderGuidanceDims[1], 4],
    ];
    want.forEach(([name, ch, scale], i) => {
      const g = guidance[i];
      if (ch <= 0) return;
      if (!g) fail(`${name} is missing (the config expects ${ch} channels)`);
      const ok =
        g!.ndim === 4 &&
        g!.size(0) === B &&
        g!.size(1) === ch &&
        g!.size(2) === H * scale &&
        g!.size(3) === W * scale;
      if (!ok) fail(`${name} must be [${B}, ${ch}, ${H * scale}, ${W * scale}], got ${s(g!)}`);
    });
  }
}
