// The library face of segmentation: a segmenter built from a config and weights, `segment(image, classes)`.
import { readFileSync } from "node:fs";
import { segmentTensor, type WindowPreset } from "../catseg/inference.js";
import { type CatSegConfig, CatSegModel, catSegPreset } from "../catseg/model.js";
import { parseClassList } from "../data/classes.js";
import { type ImageInput, imageToTensor, readImageRGB } from "../data/image.js";
import { Generator, noGrad, tidy } from "../torch/index.js";
import { type ClassShare, classShares } from "../viz/overlay.js";

export interface SegmenterOptions {
  /** Architecture: a preset name ("vitb_384", "vitl_336"), a CatSegConfig, or a JSON file holding one. */
  config?: string | CatSegConfig;
  /** CAT-Seg checkpoint (detectron2 `model_final.pth`) or a safetensors file of this model. None: random weights. */
  weights?: string;
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
 * Open-vocabulary segmentation with CAT-Seg weights (DEDOS weights plug into the same interface later).
 * @example
 *   const seg = Segmenter.create({ config: "vitb_384", weights: "model_final.pth" });
 *   const r = await seg.segment("street.jpg", "road; sidewalk; car, truck; sky");
 *   seg.dispose();
 */
export class Segmenter {
  private constructor(
    readonly model: CatSegModel,
    readonly randomWeights: boolean,
    readonly device: string,
    readonly window: WindowPreset,
  ) {}

  static create(o: SegmenterOptions = {}): Segmenter {
    const config = resolveConfig(o.config ?? "vitb_384");
    const device = o.device ?? "cpu";
    let model: CatSegModel;
    if (o.weights) model = CatSegModel.fromCheckpoint(o.weights, { config });
    else model = new CatSegModel(config, { generator: new Generator(o.seed ?? 0) }).eval();
    if (device !== "cpu") model.to(device);
    return new Segmenter(model, !o.weights, device, o.window ?? "catseg");
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
        const img = imageToTensor(rgb).to(this.device); // (1, 3, H, W) 0–255
        const r = segmentTensor(this.model, img, text, {
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

  dispose(): void {
    this.model.dispose();
  }
}

function resolveConfig(c: string | CatSegConfig): CatSegConfig {
  if (typeof c !== "string") return c;
  if (c.endsWith(".json")) {
    try {
      return JSON.parse(readFileSync(c, "utf8")) as CatSegConfig;
    } catch (e) {
      throw new Error(`${c}: cannot read the model config (${(e as Error).message})`);
    }
  }
  return catSegPreset(c);
}
