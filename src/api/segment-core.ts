// What the Segmenter runs, wherever it runs (its worker thread, or in-process over a model the caller holds):
// build a segmentation model from options, and segment one decoded image.
import type { CatSegConfig } from "../catseg/config.js";
import { segmentTensor, type WindowPreset } from "../catseg/inference.js";
import type { CatSegModel } from "../catseg/model.js";
import { ClipModel } from "../clip/model.js";
import type { RgbImage } from "../data/image-decode.js";
import { imageToTensor } from "../data/image-tensor.js";
import type { DedosConfig } from "../dedos/config.js";
import { DedosModel } from "../dedos/model.js";
import { createModel } from "../models/factory.js";
import { prepackForInference } from "../torch/nn/prepack.js";
import { noGrad, tidy, trimCache } from "../torch/tensor.js";

/** How to build a segmenter's model (plain data: it crosses to the worker thread). */
export interface ModelSpec {
  model?: "catseg" | "dedos";
  config?: string | CatSegConfig | DedosConfig;
  /** A local weights file or "random" (names are resolved before this point). */
  weights: string;
  sd?: string;
  device?: string;
  seed?: number;
}

/** What one call asks for. */
export interface SegmentRequest {
  classes: string[];
  scores?: boolean;
  synonyms?: "first" | "average";
}

/** One image's raw result (transferable arrays). */
export interface RawSegmentation {
  width: number;
  height: number;
  labels: Uint16Array;
  scores?: Float32Array;
}

export type SegmentStage = "loading" | "text" | "view" | "postprocess";

export interface SegmentHooks {
  /** A step finished: `done` of `total` in `stage`. */
  progress?: (stage: SegmentStage, done: number, total: number) => void;
  /** Checked between views: throw to cancel (every tensor of the run is freed). */
  checkCancelled?: () => void;
}

/** Builds the model a Segmenter runs: CAT-Seg or DEDOS (CLIP alone does not segment). */
export function buildSegmentationModel(spec: ModelSpec): CatSegModel | DedosModel {
  const model = createModel({
    arch: spec.model,
    config: spec.config,
    weights: spec.weights,
    sd: spec.sd,
    device: spec.device,
    seed: spec.seed,
  });
  if (model instanceof ClipModel) {
    model.dispose();
    throw new Error(
      `${spec.weights}: OpenAI CLIP weights alone do not segment; use a CAT-Seg or DEDOS checkpoint`,
    );
  }
  if (model instanceof DedosModel && model.needsDiffusionAtInference && !model.diffusionBranch) {
    model.dispose();
    throw new Error(
      "this DEDOS model reads Stable Diffusion at inference (proxy.conditioning = diffusion): pass sd " +
        "(--sd DIR), the stable-diffusion-2-base folder in diffusers layout",
    );
  }
  // Inference only: frozen, and the linear weights prepacked (one copy each, matmuls with fused epilogues),
  // the Stable Diffusion branch's too (held beside the model, not as its child).
  prepackForInference(model.eval().requiresGrad_(false));
  const sd = model instanceof DedosModel ? model.diffusionBranch?.folder : undefined;
  for (const m of sd ? [sd.unet, sd.vae] : []) prepackForInference(m.eval().requiresGrad_(false));
  return model;
}

/** Segments one decoded image with `model` (eval mode) on `device`; runs without gradients. */
export function segmentRgb(
  model: CatSegModel | DedosModel,
  device: string,
  window: WindowPreset,
  rgb: RgbImage,
  req: SegmentRequest,
  hooks: SegmentHooks = {},
): RawSegmentation {
  const out = noGrad(() =>
    tidy(() => {
      const text = model.textEmbeddings(req.classes, { synonyms: req.synonyms }).to(device); // (T, P, E)
      hooks.progress?.("text", 1, 1);
      hooks.checkCancelled?.();
      const img = imageToTensor(rgb, "uint8").to(device); // (1, 3, H, W) 0–255
      const r = segmentTensor<unknown>(model, img, text, {
        window,
        output: req.scores ? "both" : "labels",
        onView: (done, total) => {
          hooks.progress?.("view", done, total);
          hooks.checkCancelled?.();
        },
      });
      return { labels: r.labels!.to({ dtype: "int32", device: "cpu" }), scores: r.scores?.to("cpu") };
    }),
  );
  const labels = Uint16Array.from(out.labels.intoTypedArray() as Int32Array);
  const scores = out.scores ? (out.scores.intoTypedArray() as Float32Array) : undefined;
  trimCache(); // keep the blocks this image reused, free the ones it did not
  hooks.progress?.("postprocess", 1, 1);
  return { width: rgb.width, height: rgb.height, labels, scores };
}
