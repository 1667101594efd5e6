// DEDOS mask-classification head (spec §6, `head = mask-decoder`): the pixel decoder (simple pyramid + FPN)
// over the refined CLIP features, the masked transformer decoder whose query positions are the summed T_l,
// and the class text (frozen CLIP text embeddings → text_proj MLP) as the classifier.
//
// Children: pixel_decoder (PixelDecoder), predictor (MaskTransformerDecoder), text_proj (MLP E → hidden →
// hidden, `text_proj.layers.{0,1}`), query_pos_proj (Linear D_q → hidden).

import * as F from "../torch/functional.js";
import type * as nn from "../torch/nn/layers.js";
import { Linear } from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { einsum, type Tensor, tidy } from "../torch/tensor.js";
import type { MaskHeadConfig, TextAggregationConfig } from "./config.js";
import { PixelDecoder } from "./pixel-decoder.js";
import { type MaskPrediction, MaskTransformerDecoder, MLP } from "./transformer-decoder.js";

export type { MaskPrediction } from "./transformer-decoder.js";

export interface MaskDecoderHeadOptions {
  /** D: width of the CLIP visual features (taps and final maps). */
  clipWidth: number;
  /** E: width of the class text embeddings (CLIP joint dim). */
  textDim: number;
  /** N: number of queries (the proxy queries, 100). */
  numQueries: number;
  /** Width of the query positions (the summed T_l, = D). Default clipWidth. */
  queryPosDim?: number;
  head: MaskHeadConfig;
  textAggregation: TextAggregationConfig;
}

export interface MaskDecoderHeadInput {
  /** CLIP tap maps (B, D, g, g): taps[0] → the 4g level, taps[1] → the 2g level. */
  taps: [Tensor, Tensor];
  /** Dense final CLIP features after ln_post, before the projection (B, D, g, g). */
  final: Tensor;
  /** Σ_l T_l (B, N, queryPosDim). */
  queryPos: Tensor;
  /** Class text embeddings from the frozen CLIP text encoder (B, T, E) (or (T, E), shared by the batch). */
  text: Tensor;
}

export interface MaskDecoderHeadOutput {
  /** decoderLayers + 1 predictions (deep supervision); the last is the final one. */
  predictions: MaskPrediction[];
}

/**
 * Σ_q softmax(classLogits)_q[:, :T] ⊗ sigmoid(masks)_q: classLogits (B, N, T + 1), masks (B, N, H, W) →
 * (B, T, H, W). The last class ("other") is dropped after the softmax.
 */
export function semanticInference(classLogits: Tensor, masks: Tensor): Tensor {
  return tidy(() => {
    const T = classLogits.size(-1) - 1;
    const probs = F.softmax(classLogits, -1).narrow(-1, 0, T);
    return einsum("bqc,bqhw->bchw", probs, masks.sigmoid());
  });
}

export class MaskDecoderHead extends Module {
  readonly pixel_decoder: PixelDecoder;
  readonly predictor: MaskTransformerDecoder;
  readonly text_proj: MLP;
  readonly query_pos_proj: Linear;

  constructor(
    readonly opts: MaskDecoderHeadOptions,
    o: nn.InitOptions = {},
  ) {
    super();
    const h = opts.head;
    if (h.hiddenDim % opts.textAggregation.heads !== 0)
      throw new Error(
        `MaskDecoderHead: hiddenDim ${h.hiddenDim} is not divisible by ${opts.textAggregation.heads} text-aggregation heads`,
      );
    this.pixel_decoder = this.child("pixel_decoder", new PixelDecoder(opts.clipWidth, h, o));
    this.predictor = this.child(
      "predictor",
      new MaskTransformerDecoder(opts.numQueries, h, opts.textAggregation, o),
    );
    this.text_proj = this.child("text_proj", new MLP([opts.textDim, h.hiddenDim, h.hiddenDim], o));
    this.query_pos_proj = this.child(
      "query_pos_proj",
      new Linear(opts.queryPosDim ?? opts.clipWidth, h.hiddenDim, true, o),
    );
  }

  forward(x: MaskDecoderHeadInput, o: { finalOnly?: boolean } = {}): MaskDecoderHeadOutput {
    return tidy(() => {
      const { maskFeatures, memory } = this.pixel_decoder.forward({ taps: x.taps, final: x.final });
      const predictions = this.predictor.forward(
        {
          memory,
          maskFeatures,
          queryPos: this.query_pos_proj.forward(x.queryPos),
          text: this.text_proj.forward(x.text),
        },
        o,
      );
      return { predictions };
    });
  }

  /** See `semanticInference`. */
  semanticInference(classLogits: Tensor, masks: Tensor): Tensor {
    return semanticInference(classLogits, masks);
  }
}
