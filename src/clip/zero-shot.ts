// Zero-shot use of CLIP alone:
//   classify: image → CLIP normalisation → bilinear resize to the native resolution → pooled image embedding;
//             labels → prompt embeddings (templates averaged) → softmax(exp(logit_scale) · cosine).
//   segment (MaskCLIP-style, patch level, `dedos demo`): dense patch features at `resolution` → cosine with
//             each label's embedding → bilinear to the image size → argmax per pixel.

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

export interface ZeroShotSegmentOptions extends Pick<ClassEmbeddingOptions, "templates" | "synonyms"> {
  /** Side of the square CLIP sees (default 384: the 24×24 grid of ViT-B/16 through the positional resize). */
  resolution?: number;
}

/** Raw 0–255 image (1, 3, H, W) → (H·W) int32 label indices (argmax of patch-text cosine). No gradients. */
export function zeroShotSegment(
  model: ClipModel,
  tokenizer: PromptTokenizer,
  image: Tensor,
  labels: readonly string[],
  o: ZeroShotSegmentOptions = {},
): Tensor {
  const [H, W] = [image.size(2), image.size(3)];
  return noGrad(() =>
    tidy(() => {
      const x = resizeForClip(normalizeClipPixels(image), o.resolution ?? 384); // (1, 3, R, R)
      const out = model.visual.forward(x, { dense: true });
      const [gh, gw] = out.grid;
      const feats = out.tokens.slice(1, 1).reshape(1, gh, gw, -1); // (1, gh, gw, E) patch tokens
      const patches = l2normalize(feats);
      const text = embedClassNames(model, tokenizer, labels, { ...o }).squeeze(1); // (T, E)
      const logits = patches.matmul(text.mT).permute(0, 3, 1, 2); // (1, T, gh, gw)
      const full = F.interpolate(logits, { size: [H, W], mode: "bilinear" });
      return full.argmax(1).flatten().to("int32"); // (H·W)
    }),
  );
}
