// Zero-shot image classification with CLIP (the paper's standard use; a smoke test for loaded weights):
//   image → CLIP normalisation → bilinear resize to the native resolution → pooled image embedding
//   labels → prompt embeddings (templates averaged) → softmax(exp(logit_scale) · cosine) over the labels.

import * as F from "../torch/functional.js";
import { noGrad, type Tensor, tidy } from "../torch/tensor.js";
import type { ClipModel } from "./model.js";
import { type ClassEmbeddingOptions, embedClassNames, l2normalize, type PromptTokenizer } from "./prompts.js";
import { normalizeClipPixels, resizeForClip } from "./vision.js";

export interface ZeroShotOptions extends Pick<ClassEmbeddingOptions, "templates" | "synonyms" | "cache"> {
  /** The image is already CLIP-normalised (default false: raw 0–255 pixels). */
  normalized?: boolean;
}

/** (B, 3, H, W) image → (B, labels) probabilities (rows sum to 1). Runs without gradients. */
export function zeroShotClassify(
  model: ClipModel,
  tokenizer: PromptTokenizer,
  image: Tensor,
  labels: readonly string[],
  o: ZeroShotOptions = {},
): Tensor {
  return noGrad(() =>
    tidy(() => {
      const x = o.normalized ? image : normalizeClipPixels(image);
      const pixels = resizeForClip(x, model.config.vision.imageSize); // (B, 3, R, R)
      const img = l2normalize(model.encodeImage(pixels)); // (B, E)
      const text = embedClassNames(model, tokenizer, labels, { ...o, templateReduction: "mean" }).squeeze(1); // (N, E)
      const logits = img.matmul(text.transpose(0, 1)).mul(model.logitScale.exp()); // (B, N)
      return F.softmax(logits, -1);
    }),
  );
}
