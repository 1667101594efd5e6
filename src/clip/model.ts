// The full OpenAI CLIP model with the exact top-level key layout of OpenAI checkpoints (weights are read by
// models/factory.ts through the key rules of ./weights.ts).
//
// OpenAI stores the text tower at the top level (`token_embedding.weight`, `positional_embedding`,
// `transformer.*`, `ln_final.*`, `text_projection`) next to `visual.*` and `logit_scale`. ClipModel is
// therefore a ClipTextEncoder with the image tower and the logit scale added, so its state dict is
// OpenAI's key for key and a strict load of an OpenAI checkpoint needs no renaming.

import { full, type Tensor } from "../torch/tensor.js";
import type { ClipConfig } from "./config.js";
import { type ClipInitOptions, ClipTextEncoder } from "./text.js";
import { ClipVisionEncoder } from "./vision.js";

export class ClipModel extends ClipTextEncoder {
  readonly visual: ClipVisionEncoder;

  constructor(
    readonly config: ClipConfig,
    o: ClipInitOptions = {},
  ) {
    super(config.text, o);
    this.visual = this.child("visual", new ClipVisionEncoder(config.vision, o));
    this.param("logit_scale", full([], Math.log(1 / 0.07))); // scalar
  }

  /** The text tower is this module itself (its keys are top-level); typed view for clarity. */
  get text(): ClipTextEncoder {
    return this;
  }
  get logitScale(): Tensor {
    return this.get("logit_scale");
  }

  /** Normalised pixels (B, 3, H, W) → (B, E) pooled, or (B, 1 + HW, E) when dense. */
  encodeImage(pixels: Tensor, o: { dense?: boolean } = {}): Tensor {
    return this.visual.encodeImage(pixels, o);
  }
}
