// The library face of segmentation: a segmenter built from a config and weights, `segment(image, classes)`.
// It runs CAT-Seg (its released checkpoints) or DEDOS (weights trained with `dedos train`; with diffusion
// conditioning it needs Stable Diffusion 2-base in diffusers layout too).

import type { CatSegConfig } from "../catseg/config.js";
import { segmentTensor, type WindowPreset } from "../catseg/inference.js";
import type { CatSegModel } from "../catseg/model.js";
import { ClipModel } from "../clip/model.js";
import { parseClassList } from "../data/classes.js";
import { type ImageInput, readImageRGB } from "../data/image-decode.js";
import { imageToTensor } from "../data/image-tensor.js";
import type { DedosConfig } from "../dedos/config.js";
import { DedosModel } from "../dedos/model.js";
import { createModel } from "../models/factory.js";
import { noGrad, tidy } from "../torch/index.js";
import { type ClassShare, classShares } from "../viz/overlay.js";

export interface SegmenterOptions {
  /**
   * Which model when no weights say so: "catseg" (default) or "dedos". A DEDOS weights file (written by
   * `dedos train` / DedosModel.save) is recognised by its metadata and always gives DEDOS.
   */
  model?: "catseg" | "dedos";
  /**
   * Architecture: a preset name ("vitb_384", "vitl_336"), a config object (CatSegConfig or DedosConfig), or a
   * JSON file holding one. DEDOS weights files carry their own config.
   */
  config?: string | CatSegConfig | DedosConfig;
  /**
   * CAT-Seg checkpoint (`model_final.pth`) or DEDOS weights (`model_final.safetensors`), or "random" for
   * random weights (they show the pipeline, they do not segment).
   */
  weights: string;
  /** Stable Diffusion 2-base in diffusers layout (DEDOS with `proxy.conditioning = diffusion`). */
  sd?: string;
  /** "cpu" (default) or "cuda[:N]". */
  device?: string;
  /** Sliding-window geometry: "catseg" (kernel 384, overlap 1/3, default) or "dedos" (512, 0.75). */
  window?: WindowPreset;
  /** Seed of the random weights used when no checkpoint is given. */
  seed?: number;
}

export interface SegmentCallOptions {
  /** Also return per-class probabilities (T·H·W floats). */
  scores?: boolean;
  /** Synonyms in a class name ("sofa, couch"): use the first (default, CAT-Seg) or average them. */
  synonyms?: "first" | "average";
}

export interface Segmentation {
  width: number;
  height: number;
  /** The classes, in the order the label values index. */
  classes: string[];
  /** Row-major class index per pixel. */
  labels: Uint16Array;
  /** (T, H, W) probabilities, when asked for. */
  scores?: Float32Array;
  /** Classes present, largest first, with pixel counts and shares. */
  present: ClassShare[];
}

/**
 * Open-vocabulary segmentation with CAT-Seg or DEDOS weights.
 * @example
 *   const seg = Segmenter.create({ config: "vitb_384", weights: "model_final.pth" });
 *   const r = await seg.segment("street.jpg", "road; sidewalk; car, truck; sky");
 *   seg.dispose();
 * @example
 *   const dedos = Segmenter.create({ weights: "runs/dedos-b/model_final.safetensors", sd: "sd-2-base/" });
 */
export class Segmenter {
  private constructor(
    readonly model: CatSegModel | DedosModel,
    readonly randomWeights: boolean,
    readonly device: string,
    readonly window: WindowPreset,
    private readonly ownsModel: boolean,
  ) {}

  static create(o: SegmenterOptions): Segmenter {
    const device = o.device ?? "cpu";
    const model = createModel({
      arch: o.model,
      config: o.config,
      weights: o.weights,
      sd: o.sd,
      device,
      seed: o.seed,
    });
    if (model instanceof ClipModel) {
      model.dispose();
      throw new Error(
        `${o.weights}: OpenAI CLIP weights alone do not segment; use a CAT-Seg or DEDOS checkpoint`,
      );
    }
    if (model instanceof DedosModel && model.needsDiffusionAtInference && !model.diffusionBranch) {
      model.dispose();
      throw new Error(
        "this DEDOS model reads Stable Diffusion at inference (proxy.conditioning = diffusion): pass sd " +
          "(--sd DIR), the stable-diffusion-2-base folder in diffusers layout",
      );
    }
    return new Segmenter(model, o.weights === "random", device, o.window ?? "catseg", true);
  }

  /** A segmenter over a model you already hold (e.g. during training); `dispose` leaves the model alone. */
  static fromModel(
    model: CatSegModel | DedosModel,
    o: { window?: WindowPreset; device?: string } = {},
  ): Segmenter {
    return new Segmenter(model, false, o.device ?? "cpu", o.window ?? "catseg", false);
  }

  /** Labels every pixel of `image` with one of `classes` (an array, or "a; b, synonym; c"). */
  async segment(
    image: ImageInput,
    classes: readonly string[] | string,
    o: SegmentCallOptions = {},
  ): Promise<Segmentation> {
    const names = typeof classes === "string" ? parseClassList(classes) : [...classes];
    if (names.length === 0) throw new Error("segment: the class list is empty");
    const rgb = await readImageRGB(image);
    const out = noGrad(() =>
      tidy(() => {
        const text = this.model.textEmbeddings(names, { synonyms: o.synonyms }).to(this.device); // (T, P, E)
        const img = imageToTensor(rgb, "uint8").to(this.device); // (1, 3, H, W) 0–255
        const r = segmentTensor<unknown>(this.model, img, text, {
          window: this.window,
          output: o.scores ? "both" : "labels",
        });
        return { labels: r.labels!.to({ dtype: "int32", device: "cpu" }), scores: r.scores?.to("cpu") };
      }),
    );
    const labels = Uint16Array.from(out.labels.intoTypedArray() as Int32Array);
    const scores = out.scores ? (out.scores.intoTypedArray() as Float32Array) : undefined;
    return {
      width: rgb.width,
      height: rgb.height,
      classes: names,
      labels,
      scores,
      present: classShares(labels, names),
    };
  }

  /** Frees the model (and the Stable Diffusion folder it loaded), unless it was given by `fromModel`. */
  dispose(): void {
    if (this.ownsModel) this.model.dispose();
  }
}
