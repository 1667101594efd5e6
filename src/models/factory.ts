// The assembly layer (in the spirit of open_clip's factory.py): the one place where configs and weights
// files become models. Every user of a model — Segmenter, the trainer, the evaluator, `parity`, the CLI —
// builds it here; the model files under src/{clip,catseg,diffusion,dedos} define modules only and read no
// files, and each family's weights.ts holds its key maps and layout transforms.
//
//   createModel({ arch, config, weights, startFrom, sd, device, seed })
//     arch     "clip" | "catseg" | "dedos"; default: what the weights file is (a DEDOS weights file, a
//              CAT-Seg checkpoint, an OpenAI CLIP checkpoint), else "catseg"
//     config   a preset name, a config object, or a JSON file (checked field by field); DEDOS weights files
//              carry their own
//     weights  a weights file, or "random" (seeded random weights: only ever on request)
//     startFrom  DEDOS training starts: OpenAI CLIP or CAT-Seg weights into a fresh DEDOS
//     sd       Stable Diffusion 2-base in diffusers layout, for a DEDOS that reads it at inference
//   loadWeights(module, file or tensors, { prefix })  the matching loader for a module already built
//   saveModel(model, file)                             DEDOS weights files (atomic; config in the metadata)

import { readFileSync } from "node:fs";
import { Aggregator } from "../catseg/aggregator.js";
import { type CatSegConfig, catSegPreset } from "../catseg/config.js";
import { CatSegModel } from "../catseg/model.js";
import { CATSEG_AGGREGATOR_PREFIX, loadAggregatorWeights, loadCatSegWeights } from "../catseg/weights.js";
import { type ClipConfig, inferClipConfig } from "../clip/config.js";
import { ClipModel } from "../clip/model.js";
import { ClipTextEncoder } from "../clip/text.js";
import { ClipVisionEncoder } from "../clip/vision.js";
import { type ClipCheckpointOptions, detectClipPrefix, loadClipWeights } from "../clip/weights.js";
import { type DedosConfig, dedosPreset, upgradeDedosConfig, validateDedosConfig } from "../dedos/config.js";
import { DedosModel } from "../dedos/model.js";
import { dedosConfigFromMetadata, dedosWeightsMetadata, isDedosWeightsMetadata } from "../dedos/weights.js";
import { DiffusionBranch, type DiffusionComponents } from "../diffusion/branch.js";
import { ClipTextModel } from "../diffusion/text-encoder.js";
import { UNet2DConditionModel } from "../diffusion/unet.js";
import { AutoencoderKL } from "../diffusion/vae.js";
import { loadTextEncoderWeights, loadUNetWeights, loadVaeWeights } from "../diffusion/weights.js";
import { readCheckpointRecords, releaseMappings, saveSafetensors, withCheckpoint } from "../torch/io/load.js";
import { buildAndLoad, type Module } from "../torch/nn/module.js";
import { Generator, type Tensor } from "../torch/tensor.js";
import { checkConfigShape } from "../util/config-shape.js";
import { loadDiffusersFolder } from "./diffusers.js";
import { loadModuleFile } from "./load.js";

export type ModelArch = "clip" | "catseg" | "dedos";
export type AnyModel = ClipModel | CatSegModel | DedosModel;

/** What a weights file holds, from its keys and metadata (no tensor is read). */
export type WeightsKind = "dedos" | "catseg" | "clip" | "unknown";

export interface CreateModelOptions {
  /** What to build (default: what the weights file is; "catseg" for random weights). */
  arch?: ModelArch;
  /** A preset name ("vitb_384", "vitl_336"), a config object, or a JSON file holding one. */
  config?: string | CatSegConfig | DedosConfig | ClipConfig;
  /** A weights file, or "random" for seeded random weights. */
  weights: string;
  /** DEDOS only, with random weights: OpenAI CLIP and/or CAT-Seg weights to start training from. */
  startFrom?: { clip?: string; catseg?: string };
  /** DEDOS: Stable Diffusion in diffusers layout (a folder, or loaded components the caller owns). */
  sd?: string | DiffusionComponents;
  /** "cpu" (default) or "cuda[:N]". */
  device?: string;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** CLIP: where its keys sit and how the config is inferred. */
  clip?: Omit<ClipCheckpointOptions, "config">;
}

export function createModel(o: CreateModelOptions & { arch: "clip" }): ClipModel;
export function createModel(o: CreateModelOptions & { arch: "catseg" }): CatSegModel;
export function createModel(o: CreateModelOptions & { arch: "dedos" }): DedosModel;
export function createModel(o: CreateModelOptions): AnyModel;
/** Builds a model from a config and weights (see the file comment). */
export function createModel(o: CreateModelOptions): AnyModel {
  if (typeof o.weights !== "string" || o.weights === "")
    throw new Error(
      'createModel: weights is required: a weights file (or a registered weight name), or "random" for random weights',
    );
  const random = o.weights === "random";
  const kind = random ? "unknown" : detectWeightsKind(o.weights);
  const arch =
    o.arch ??
    (kind === "dedos" ? "dedos" : kind === "clip" ? "clip" : isDedosConfig(o.config) ? "dedos" : "catseg");
  if (o.startFrom && arch !== "dedos")
    throw new Error(`createModel: startFrom applies to DEDOS, not ${arch}`);
  if (o.startFrom && !random)
    throw new Error('createModel: startFrom needs weights: "random" (the rest starts fresh)');
  let model: AnyModel;
  if (arch === "clip") model = createClip(o, random);
  else if (arch === "catseg") model = createCatSeg(o, random, kind);
  else model = createDedos(o, random, kind);
  releaseMappings();
  if (o.device && o.device !== "cpu") model.to(o.device);
  return model;
}

/** What a weights file holds (reads only its header and key names). */
export function detectWeightsKind(file: string): WeightsKind {
  const { records, extra } = readCheckpointRecords(file);
  if (isDedosWeightsMetadata(extra)) return "dedos";
  const keys = [...records.keys()];
  if (keys.some((k) => k.startsWith("sem_seg_head."))) return "catseg";
  if (keys.some((k) => k === "visual.conv1.weight" || k.endsWith(".visual.conv1.weight"))) return "clip";
  return "unknown";
}

function createClip(o: CreateModelOptions, random: boolean): ClipModel {
  if (random) {
    const config = o.config as ClipConfig | undefined;
    if (!config || typeof config !== "object" || !("vision" in config))
      throw new Error("createModel: random CLIP weights need a ClipConfig object (config)");
    return new ClipModel(config, { generator: new Generator(o.seed ?? 0) }).eval();
  }
  const file = o.weights;
  return withCheckpoint(file, (ckpt) => {
    const prefix = o.clip?.prefix ?? detectClipPrefix(ckpt.tensors.keys(), file);
    let config = typeof o.config === "object" ? (o.config as ClipConfig) : undefined;
    if (!config) {
      const inferred = inferClipConfig(ckpt.records, { prefix, headWidth: o.clip?.headWidth });
      if (!inferred.vision || !inferred.text)
        throw new Error(
          `${file}: not a full CLIP checkpoint under prefix "${prefix}" (need both visual.* and the text tower)`,
        );
      config = { vision: inferred.vision, text: inferred.text };
    }
    const cfg = config;
    return buildAndLoad(
      () => new ClipModel(cfg, { init: "empty" }),
      (m) => loadClipWeights(m, ckpt.tensors, { prefix, source: file }),
    );
  });
}

function createCatSeg(o: CreateModelOptions, random: boolean, kind: WeightsKind): CatSegModel {
  const config = resolveCatSegConfig(o.config ?? "vitb_384");
  if (random) return new CatSegModel(config, { generator: new Generator(o.seed ?? 0) }).eval();
  if (kind === "dedos")
    throw new Error(`${o.weights}: a DEDOS weights file, not a CAT-Seg checkpoint (use arch "dedos")`);
  return loadModuleFile(o.weights, () => new CatSegModel(config, { init: "empty" }), loadCatSegWeights);
}

function createDedos(o: CreateModelOptions, random: boolean, kind: WeightsKind): DedosModel {
  let model: DedosModel;
  if (!random && kind === "dedos") {
    const cfg = o.config === undefined ? undefined : resolveDedosConfig(o.config);
    model = withCheckpoint(o.weights, (ckpt) => {
      const config = cfg ?? dedosConfigFromMetadata(ckpt.extra as Record<string, unknown>, o.weights);
      return buildAndLoad(
        () => new DedosModel(config, { init: "empty" }),
        (m) => m.loadStateDict(ckpt.tensors, { strict: true, source: o.weights }),
      );
    });
  } else {
    if (!random && (kind !== "catseg" || o.config === undefined))
      throw new Error(
        `${o.weights}: not a DEDOS weights file (no "dedos" config in its metadata)` +
          (kind === "catseg"
            ? "; it holds CAT-Seg weights: load it as a CAT-Seg model, or give a DEDOS config to start a DEDOS from it"
            : ""),
      );
    const config = resolveDedosConfig(o.config ?? "vitb_384");
    model = buildAndLoad(
      () => new DedosModel(config, { generator: new Generator(o.seed ?? 0) }),
      (m) => {
        // A CAT-Seg checkpoint gives CLIP and the cost-aggregation head; the DEDOS modules start fresh.
        const catseg = random ? o.startFrom?.catseg : o.weights;
        if (catseg) loadWeights(m.catseg, catseg);
        if (o.startFrom?.clip) loadWeights(m.catseg.clip, o.startFrom.clip);
      },
    );
    if (random && o.startFrom) model.train();
  }
  const [m, training] = [model, model.training];
  return buildAndLoad(
    () => m,
    (x) => attachStableDiffusion(x, o),
  ).train(training);
}

/** Attaches the diffusion branch on `sd` (a folder it loads and owns, or components the caller owns). */
function attachStableDiffusion(model: DedosModel, o: CreateModelOptions): void {
  if (!o.sd) return;
  if (typeof o.sd !== "string") {
    model.attachDiffusion(new DiffusionBranch(o.sd, model.config.diffusion));
    return;
  }
  const folder = loadDiffusersFolder(o.sd, { device: o.device ?? "cpu" });
  try {
    model.attachDiffusion(new DiffusionBranch(folder, model.config.diffusion), {
      release: () => folder.dispose(),
    });
  } catch (e) {
    folder.dispose();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loading into a module that exists

export interface LoadWeightsOptions {
  /** Only keys under this prefix, with it removed (parity fixtures: `weights.`, `weights.visual.`). */
  prefix?: string;
  /** Name of the tensors' origin in errors (default the file name). */
  source?: string;
}

/**
 * Loads weights (a file, or tensors already read) into a module, strictly, with the key rules of the
 * module's family: DEDOS (its own files; or a CAT-Seg checkpoint into its CAT-Seg part), CAT-Seg, the
 * Aggregator alone, CLIP (whole, or one tower; OpenAI, CAT-Seg or fixture layouts), and the Stable
 * Diffusion UNet, VAE and text encoder.
 */
export function loadWeights(
  module: Module,
  weights: string | ReadonlyMap<string, Tensor>,
  o: LoadWeightsOptions = {},
): void {
  if (typeof weights === "string") {
    withCheckpoint(weights, (ckpt) =>
      loadWeights(module, ckpt.tensors, { ...o, source: o.source ?? weights }),
    );
    releaseMappings();
    return;
  }
  const source = o.source ?? "the state dict";
  if (module instanceof Aggregator) {
    loadAggregatorWeights(module, weights, { prefix: o.prefix ?? CATSEG_AGGREGATOR_PREFIX, source });
    return;
  }
  if (module instanceof ClipTextEncoder || module instanceof ClipVisionEncoder) {
    loadClipWeights(module, weights, { prefix: o.prefix ?? clipPrefixFor(module, weights, source), source });
    return;
  }
  const selected = o.prefix ? withoutPrefix(weights, o.prefix) : new Map(weights);
  if (module instanceof DedosModel) {
    const catseg = [...selected.keys()].some((k) => k.startsWith("sem_seg_head."));
    if (catseg) loadCatSegWeights(module.catseg, selected, source);
    else module.loadStateDict(selected, { strict: true, source });
  } else if (module instanceof CatSegModel) loadCatSegWeights(module, selected, source);
  else if (module instanceof UNet2DConditionModel) loadUNetWeights(module, selected, source);
  else if (module instanceof AutoencoderKL) loadVaeWeights(module, selected, source);
  else if (module instanceof ClipTextModel) loadTextEncoderWeights(module, selected, source);
  else throw new Error(`loadWeights: no weight layout known for ${module.constructor.name}`);
}

/** Where a CLIP module's keys sit in a checkpoint: its whole-CLIP prefix, plus `visual.` for the tower. */
function clipPrefixFor(module: Module, tensors: ReadonlyMap<string, Tensor>, source: string): string {
  const prefix = detectClipPrefix(tensors.keys(), source);
  return module instanceof ClipVisionEncoder ? `${prefix}visual.` : prefix;
}

function withoutPrefix(tensors: ReadonlyMap<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), t);
  return out;
}

/** Writes a DEDOS weights file (every tensor, config in the metadata), atomically. */
export function saveModel(model: DedosModel, file: string): void {
  saveSafetensors(file, model.stateDict(), dedosWeightsMetadata(model.config));
}

// ---------------------------------------------------------------------------------------------------------
// Configs

function readJsonFile(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: cannot read the ${what} (${(e as Error).message})`);
  }
}

/** A DedosConfig has `catseg` and `head`; a training run's config.json holds one under `model`. */
function asDedosConfig(v: unknown): DedosConfig | null {
  const o = v as Record<string, unknown> | null;
  if (o && typeof o === "object" && "catseg" in o && "head" in o) return o as unknown as DedosConfig;
  if (o && typeof o === "object" && "model" in o) return asDedosConfig(o.model);
  return null;
}

function isDedosConfig(c: CreateModelOptions["config"]): boolean {
  if (c === undefined) return false;
  if (typeof c === "string")
    return c.endsWith(".json") && asDedosConfig(readJsonFile(c, "model config")) !== null;
  return asDedosConfig(c) !== null;
}

/** A DEDOS config from a preset name, a JSON file (a config, or a run's config.json) or an object, checked. */
export function resolveDedosConfig(c: string | CatSegConfig | DedosConfig | ClipConfig): DedosConfig {
  let cfg: DedosConfig;
  let what = "Segmenter config";
  if (typeof c === "string") {
    if (!c.endsWith(".json")) return dedosPreset(c);
    what = c;
    const found = asDedosConfig(readJsonFile(c, "model config"));
    if (!found) throw new Error(`${c}: not a DEDOS config (no "catseg" and "head" fields)`);
    cfg = found;
  } else {
    const found = asDedosConfig(c);
    if (!found) throw new Error("createModel: a CAT-Seg config was given for a DEDOS model");
    cfg = found;
  }
  const upgraded = checkConfigShape(upgradeDedosConfig(cfg), dedosPreset("vitb_384"), what);
  validateDedosConfig(upgraded);
  return upgraded;
}

/** A CAT-Seg config from a preset name, a JSON file or an object (a DEDOS config's `catseg` part), checked. */
export function resolveCatSegConfig(c: string | CatSegConfig | DedosConfig | ClipConfig): CatSegConfig {
  if (typeof c === "string" && !c.endsWith(".json")) return catSegPreset(c);
  const raw = typeof c === "string" ? readJsonFile(c, "model config") : c;
  const cfg = asDedosConfig(raw)?.catseg ?? raw;
  return checkConfigShape(cfg, catSegPreset("vitb_384"), typeof c === "string" ? c : "CAT-Seg config");
}
