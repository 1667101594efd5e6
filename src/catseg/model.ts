// The whole CAT-Seg model (cat_seg/cat_seg_model.py `CATSeg`, heads/cat_seg_head.py `CATSegHead`,
// transformer/cat_seg_predictor.py `CATSegPredictor`) with the module tree, and therefore the state-dict
// keys, of an official detectron2 checkpoint (`model_final.pth`):
//
//   sem_seg_head.predictor.clip_model.*   CLIP (CAT-Seg stores every attention split: {q,k,v}_proj_weight)
//   sem_seg_head.predictor.transformer.*  the cost-aggregation Aggregator
//   upsample1.{weight,bias}               ConvTranspose2d(vision width → decoder guidance 0, 2, stride 2)
//   upsample2.{weight,bias}               ConvTranspose2d(vision width → decoder guidance 1, 4, stride 4)
//
// CATSeg's pixel_mean/std and clip_pixel_mean/std are non-persistent buffers (not in the checkpoint), the
// predictor holds nothing besides clip_model and transformer (its text embeddings are a cache), and the
// head holds only the predictor. The guidance upsampling convs sit on CATSeg itself, not on the predictor.
//
//   images 0–255 (B, 3, H, W) → (x − mean) / std → bilinear to the CLIP resolution → CLIP dense pass
//   → tokens (B, 1 + g², E): patch tokens = cost-volume features and appearance guidance g0 (B, E, g, g)
//   → taps of blocks (3, 7) / (7, 15): patch tokens (B, width, g, g) → upsample1 → g1 (2g), upsample2 → g2 (4g)
//   → Aggregator(img, text repeated per image, [g0, g1, g2]) → logits (B, T, 4g, 4g)

import { ClipModel } from "../clip/model.js";
import { type ClassEmbeddingOptions, embedClassNames, type PromptTokenizer } from "../clip/prompts.js";
import type { ClipInitOptions } from "../clip/text.js";
import { ClipTokenizer } from "../clip/tokenizer.js";
import { prepareClipInput } from "../clip/vision.js";
import * as nn from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { type Tensor, tidy } from "../torch/tensor.js";
import { Aggregator } from "./aggregator.js";
import { type CatSegConfig, cloneAggregatorConfig, validateCatSegConfig } from "./config.js";

/** CAT-Seg's single prompt template (PROMPT_ENSEMBLE_TYPE "single"). */
export const CATSEG_TEMPLATE = "A photo of a {} in the scene";

/** CLIP features of a batch, independent of the classes (computed once, shared by class chunks). */
export interface CatSegFeatures {
  /** Projected dense patch features (B, E, g, g): the cost-volume input and appearance guidance g0. */
  img: Tensor;
  /** Decoder guidance [g1 (B, dg0, 2g, 2g), g2 (B, dg1, 4g, 4g)] from the upsampled taps. */
  guidance: [Tensor, Tensor];
  /** With `clipMaps`: the two tapped block outputs and the ln_post'd dense features, each (B, width, g, g). */
  clipMaps?: { taps: [Tensor, Tensor]; dense: Tensor };
}

export interface CatSegEncodeOptions {
  /** Replaces each CLIP block's output (DEDOS query injection); see ClipVisionForwardOptions.blockHook. */
  blockHook?: (layer: number, x: Tensor) => Tensor;
  /** Also return the CLIP maps before projection and upsampling (the DEDOS pixel decoder's input). */
  clipMaps?: boolean;
}

export interface CatSegForwardOptions {
  /** Class-layer pooling; default (by mode) the aggregator's training pooling or `testPoolingSize`. */
  poolingSize?: [number, number];
}

/** `CATSegHead` (only the predictor). */
class CatSegHead extends Module {
  readonly predictor: CatSegPredictor;
  constructor(c: CatSegConfig, o: ClipInitOptions) {
    super();
    this.predictor = this.child("predictor", new CatSegPredictor(c, o));
  }
}

/** `CATSegPredictor`: the CLIP model and the Aggregator. */
class CatSegPredictor extends Module {
  readonly clip_model: ClipModel;
  readonly transformer: Aggregator;
  constructor(c: CatSegConfig, o: ClipInitOptions) {
    super();
    this.clip_model = this.child("clip_model", new ClipModel(c.clip, o));
    this.transformer = this.child("transformer", new Aggregator(c.aggregator, o));
  }
}

export interface CatSegTextOptions extends Pick<ClassEmbeddingOptions, "synonyms" | "batchSize" | "cache"> {
  /** Templates (default CAT-Seg's single "A photo of a {} in the scene"). */
  templates?: ClassEmbeddingOptions["templates"];
  /** Tokenizer (default the bundled CLIP BPE vocabulary, loaded once). */
  tokenizer?: PromptTokenizer;
}

let defaultTokenizer: ClipTokenizer | undefined;

/**
 * CAT-Seg: `CATSeg` with its head, predictor, CLIP, Aggregator and guidance upsampling. `stateDict()` keys
 * are the checkpoint's except CLIP attention, which this model holds packed (OpenAI's `in_proj_weight`);
 * `catsegStateDict()` gives the checkpoint's split layout.
 */
export class CatSegModel extends Module {
  readonly config: CatSegConfig;
  readonly sem_seg_head: CatSegHead;
  readonly upsample1: nn.ConvTranspose2d;
  readonly upsample2: nn.ConvTranspose2d;

  constructor(config: CatSegConfig, o: ClipInitOptions = {}) {
    super();
    validateCatSegConfig(config);
    this.config = {
      clip: { vision: { ...config.clip.vision }, text: { ...config.clip.text } },
      aggregator: cloneAggregatorConfig(config.aggregator),
      clipResolution: config.clipResolution,
      taps: [...config.taps],
      testPoolingSize: [...config.testPoolingSize],
    };
    // Registration order = CATSeg's state_dict order (sem_seg_head, then upsample1, upsample2).
    this.sem_seg_head = this.child("sem_seg_head", new CatSegHead(this.config, o));
    const width = config.clip.vision.width; // CATSeg `proj_dim`: 768 ViT-B, 1024 ViT-L
    const [dg0, dg1] = config.aggregator.decoderGuidanceDims; // 256, 128 in CATSeg (hard-coded there)
    this.upsample1 = this.child("upsample1", new nn.ConvTranspose2d(width, dg0, 2, { stride: 2 }, o));
    this.upsample2 = this.child("upsample2", new nn.ConvTranspose2d(width, dg1, 4, { stride: 4 }, o));
  }

  get clip(): ClipModel {
    return this.sem_seg_head.predictor.clip_model;
  }
  get aggregator(): Aggregator {
    return this.sem_seg_head.predictor.transformer;
  }

  /** The class-attention sequence length (classes beyond it are cut to the top pad_len by the head). */
  get padLen(): number {
    return this.config.aggregator.padLen;
  }

  /** Pooling used when none is given: the aggregator's (training) in train mode, `testPoolingSize` in eval. */
  defaultPooling(): [number, number] {
    return this.training ? [...this.config.aggregator.poolingSize] : [...this.config.testPoolingSize];
  }

  /** Raw 0–255 images (B, 3, H, W) → CLIP features and guidance (class independent). */
  encodeImage(images: Tensor, o: CatSegEncodeOptions = {}): CatSegFeatures {
    if (images.ndim !== 4 || images.size(1) !== 3)
      throw new Error(`CatSegModel: images must be (B, 3, H, W), got [${images.shape.join(", ")}]`);
    const c = this.config;
    return tidy(() => {
      const pixels = prepareClipInput(images, c.clipResolution);
      const out = this.clip.visual.forward(pixels, { dense: true, taps: c.taps, blockHook: o.blockHook });
      const [gh, gw] = out.grid;
      const B = images.size(0);
      const E = out.tokens.size(2);
      // "B (H W) C -> B C H W"
      const img = out.tokens
        .narrow(1, 1, gh * gw)
        .reshape(B, gh, gw, E)
        .permute(0, 3, 1, 2);
      // "(H W) B C -> B C H W" on the patch rows of each tap
      const grid = (tap: Tensor) => {
        const D = tap.size(2);
        return tap
          .narrow(0, 1, gh * gw)
          .permute(1, 2, 0)
          .reshape(B, D, gh, gw);
      };
      const t0 = grid(out.taps[0]!);
      const t1 = grid(out.taps[1]!);
      const g1 = this.upsample1.forward(t0);
      const g2 = this.upsample2.forward(t1);
      const features: CatSegFeatures = { img: img.contiguous(), guidance: [g1, g2] };
      if (o.clipMaps) {
        const D = out.lnPostDense.size(2);
        const dense = out.lnPostDense
          .narrow(1, 1, gh * gw)
          .reshape(B, gh, gw, D)
          .permute(0, 3, 1, 2)
          .contiguous();
        features.clipMaps = { taps: [t0.contiguous(), t1.contiguous()], dense };
      }
      return features;
    });
  }

  /** The head on precomputed features: text (T, P, E) is shared by every image → logits (B, T, 4g, 4g). */
  head(features: CatSegFeatures, textEmbeds: Tensor, o: CatSegForwardOptions = {}): Tensor {
    if (textEmbeds.ndim !== 3)
      throw new Error(`CatSegModel: text embeddings must be (T, P, E), got [${textEmbeds.shape.join(", ")}]`);
    return tidy(() => {
      const B = features.img.size(0);
      const [T, P, E] = textEmbeds.shape as [number, number, number];
      const text = textEmbeds.unsqueeze(0).expand(B, T, P, E); // text.repeat(B, 1, 1, 1)
      return this.aggregator.forward(features.img, text, [features.img, ...features.guidance], {
        poolingSize: o.poolingSize ?? this.defaultPooling(),
      });
    });
  }

  /** Raw 0–255 images (B, 3, H, W), text (T, P, E) → logits (B, T, 4g, 4g) (96×96 for the presets). */
  forward(images: Tensor, textEmbeds: Tensor, o: CatSegForwardOptions = {}): Tensor {
    return tidy(() => this.head(this.encodeImage(images), textEmbeds, o));
  }

  /**
   * Class-name embeddings (T, P, E) as CAT-Seg's `get_text_embeds`: the template filled with the first
   * synonym of "a, b" (or all, averaged), CLIP text features L2-normalised. With several templates they are
   * averaged into P = 1 unless the aggregator was built for P = the template count (prompt_channel).
   */
  textEmbeddings(classNames: readonly string[], o: CatSegTextOptions = {}): Tensor {
    if (!o.tokenizer && !defaultTokenizer) defaultTokenizer = ClipTokenizer.load();
    const tokenizer = o.tokenizer ?? defaultTokenizer!;
    const P = this.config.aggregator.promptChannel;
    const emb = embedClassNames(this.clip, tokenizer, classNames, {
      templates: o.templates ?? [CATSEG_TEMPLATE],
      synonyms: o.synonyms,
      templateReduction: P > 1 ? "none" : "mean",
      batchSize: o.batchSize,
      cache: o.cache,
    });
    if (emb.size(1) !== P) {
      emb.dispose();
      throw new Error(
        `CatSegModel: ${emb.size(1)} prompts per class, the aggregator takes prompt_channel ${P}`,
      );
    }
    return emb;
  }
}
