// The library face of segmentation: a segmenter built from a config and weights, `segment(image, classes)`.
// It runs CAT-Seg (its released checkpoints) or DEDOS (weights trained with `dedos train`; with diffusion
// conditioning it needs Stable Diffusion 2-base in diffusers layout too).
import { readFileSync } from "node:fs";
import { segmentTensor, type WindowPreset } from "../catseg/inference.js";
import { type CatSegConfig, CatSegModel, catSegPreset } from "../catseg/model.js";
import { parseClassList } from "../data/classes.js";
import { type ImageInput, readImageRGB } from "../data/image-decode.js";
import { imageToTensor } from "../data/image-tensor.js";
import { type DedosConfig, dedosPreset } from "../dedos/config.js";
import { DEDOS_WEIGHTS_FORMAT, DedosModel } from "../dedos/model.js";
import { type DiffusersFolder, DiffusionBranch, loadDiffusersFolder } from "../diffusion/pipeline.js";
import { Generator, noGrad, tidy } from "../torch/index.js";
import { readCheckpointRecords } from "../torch/io/load.js";
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
  /** CAT-Seg checkpoint (`model_final.pth`), or DEDOS weights (`model_final.safetensors`). None: random weights. */
  weights?: string;
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
    private readonly owned: { sd: DiffusersFolder | null; model: boolean },
  ) {}

  static create(o: SegmenterOptions = {}): Segmenter {
    const device = o.device ?? "cpu";
    const dedos = o.weights ? isDedosWeights(o.weights) : o.model === "dedos" || isDedosConfig(o.config);
    let model: CatSegModel | DedosModel;
    let sd: DiffusersFolder | null = null;
    if (dedos) {
      const config = o.config === undefined ? undefined : resolveDedosConfig(o.config);
      const m = o.weights
        ? DedosModel.fromFile(o.weights, { config })
        : new DedosModel(config ?? dedosPreset("vitb_384"), { generator: new Generator(o.seed ?? 0) }).eval();
      try {
        if (m.needsDiffusionAtInference || o.sd) {
          if (!o.sd)
            throw new Error(
              "this DEDOS model reads Stable Diffusion at inference (proxy.conditioning = diffusion): pass sd " +
                "(--sd DIR), the stable-diffusion-2-base folder in diffusers layout",
            );
          sd = loadDiffusersFolder(o.sd, { device });
          m.attachDiffusion(new DiffusionBranch(sd, m.config.diffusion));
        }
      } catch (e) {
        m.dispose();
        throw e;
      }
      model = m;
    } else {
      const config = resolveCatSegConfig(o.config ?? "vitb_384");
      model = o.weights
        ? CatSegModel.fromCheckpoint(o.weights, { config })
        : new CatSegModel(config, { generator: new Generator(o.seed ?? 0) }).eval();
    }
    if (device !== "cpu") model.to(device);
    return new Segmenter(model, !o.weights, device, o.window ?? "catseg", { sd, model: true });
  }

  /** A segmenter over a model you already hold (e.g. during training); `dispose` leaves the model alone. */
  static fromModel(
    model: CatSegModel | DedosModel,
    o: { window?: WindowPreset; device?: string } = {},
  ): Segmenter {
    return new Segmenter(model, false, o.device ?? "cpu", o.window ?? "catseg", { sd: null, model: false });
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

  dispose(): void {
    if (this.owned.model) this.model.dispose();
    this.owned.sd?.dispose();
  }
}

/** A `--model` value: catseg, dedos or absent. */
export function parseModelKind(m: string | undefined): SegmenterOptions["model"] {
  if (m === undefined || m === "catseg" || m === "dedos") return m;
  throw new Error(`--model must be catseg or dedos, got "${m}"`);
}

function isDedosWeights(file: string): boolean {
  return readCheckpointRecords(file).extra.format === DEDOS_WEIGHTS_FORMAT;
}

function readJsonConfig(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: cannot read the model config (${(e as Error).message})`);
  }
}

/** A DedosConfig has `catseg` and `head`; a training run's config.json holds one under `model`. */
function asDedosConfig(v: unknown): DedosConfig | null {
  const o = v as Record<string, unknown> | null;
  if (o && typeof o === "object" && "catseg" in o && "head" in o) return o as unknown as DedosConfig;
  if (o && typeof o === "object" && "model" in o) return asDedosConfig(o.model);
  return null;
}

function isDedosConfig(c: SegmenterOptions["config"]): boolean {
  if (c === undefined) return false;
  if (typeof c === "string") return c.endsWith(".json") && asDedosConfig(readJsonConfig(c)) !== null;
  return asDedosConfig(c) !== null;
}

function resolveDedosConfig(c: string | CatSegConfig | DedosConfig): DedosConfig {
  if (typeof c === "string") {
    if (!c.endsWith(".json")) return dedosPreset(c);
    const cfg = asDedosConfig(readJsonConfig(c));
    if (!cfg) throw new Error(`${c}: not a DEDOS config (no "catseg" and "head" fields)`);
    return cfg;
  }
  const cfg = asDedosConfig(c);
  if (!cfg) throw new Error("Segmenter: a CAT-Seg config was given for a DEDOS model");
  return cfg;
}

function resolveCatSegConfig(c: string | CatSegConfig | DedosConfig): CatSegConfig {
  if (typeof c !== "string") return asDedosConfig(c)?.catseg ?? (c as CatSegConfig);
  if (c.endsWith(".json")) return readJsonConfig(c) as CatSegConfig;
  return catSegPreset(c);
}
