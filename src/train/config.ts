// The training run's configuration: the model config, the solver, data and bookkeeping, as one plain object
// that is printed at start, saved with every checkpoint, and overridden from the command line with
// `--set path.to.field=value` (the value is parsed as the type the field already has).

import { type DedosConfig, dedosPreset, upgradeDedosConfig, validateDedosConfig } from "../dedos/config.js";
import { DEFAULT_SOLVER, type SolverConfig } from "./solver.js";

export interface TrainDataConfig {
  /** Prepared benchmark used as the training set (cocostuff171) and its split. */
  dataset: string;
  split: string;
  /** Images per step over all processes (batch 4 in the paper); each of N processes takes batch / N. */
  batchSize: number;
  /** ResizeShortestEdge (384 ViT-B, 512 ViT-L) and the square random crop. */
  minSize: number;
  crop: number;
  /** RandomCrop_CategoryAreaConstraint single_category_max_area (1.0 = off). */
  singleCategoryMaxArea: number;
  colorAug: boolean;
  flip: boolean;
  /** Background decoding workers per process, and batches decoded ahead. */
  workers: number;
  prefetch: number;
  /**
   * Training samples that may fail to load (a corrupt image or label) before the run stops: a failed sample
   * is skipped with a warning naming its file and replaced by the next good one of the dataset. A count of
   * distinct samples (an integer ≥ 1), or a fraction of the training set (between 0 and 1, e.g. 0.001); 0
   * stops at the first. Default {@link DEFAULT_MAX_BAD_SAMPLES}.
   */
  maxBadSamples: number;
}

/** Distinct corrupt training samples a run skips before it stops (data.maxBadSamples). */
export const DEFAULT_MAX_BAD_SAMPLES = 10;

export interface TrainLoopConfig {
  /** Seed of the data order, augmentation and point sampling. */
  seed: number;
  /** Save a checkpoint every N iterations (and at the end). */
  checkpointEvery: number;
  /** Checkpoints kept. */
  keepCheckpoints: number;
  /** Console and JSONL metrics every N iterations. */
  logEvery: number;
  /** Evaluate every N iterations (0 = never) on `evalDataset` (first `evalLimit` images, 0 = all). */
  evalEvery: number;
  evalDataset: string;
  evalLimit: number;
}

export interface TrainConfig {
  /** The preset the model config started from (informational). */
  preset: string;
  model: DedosConfig;
  solver: SolverConfig;
  data: TrainDataConfig;
  train: TrainLoopConfig;
}

/**
 * The paper's recipe for a preset (spec §7), with `overrides` (`--set path=value`) applied. The model's own
 * overrides are applied first, so that the parts of the recipe that depend on the model follow them: with
 * `model.enabled = false` the recipe is CAT-Seg's own (short side and crop 384 for both presets; DEDOS
 * trains ViT-L at 512).
 */
export function trainPreset(name: string, overrides: readonly string[] = []): TrainConfig {
  const model = dedosPreset(name);
  applyOverrides(
    { model },
    overrides.filter((o) => o.startsWith("model.")),
  );
  const size = model.enabled && name === "vitl_336" ? 512 : 384;
  const config: TrainConfig = {
    preset: name,
    model,
    solver: { ...DEFAULT_SOLVER, betas: [...DEFAULT_SOLVER.betas] },
    data: {
      dataset: "cocostuff171",
      split: "train",
      batchSize: 4,
      minSize: size,
      crop: size,
      singleCategoryMaxArea: 1.0,
      colorAug: true,
      flip: true,
      workers: 2,
      prefetch: 2,
      maxBadSamples: DEFAULT_MAX_BAD_SAMPLES,
    },
    train: {
      seed: 0,
      checkpointEvery: 5000,
      keepCheckpoints: 3,
      logEvery: 20,
      evalEvery: 0,
      evalDataset: "ade150",
      evalLimit: 0,
    },
  };
  return applyOverrides(config, overrides);
}

/**
 * A training config saved by an earlier version, brought to the current fields: the model's upgrade
 * (`upgradeDedosConfig`) and the defaults of fields added since (data.maxBadSamples). Anything that is not
 * an object is returned as it is (the shape check names it).
 */
export function upgradeTrainConfig(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return raw;
  const c = structuredClone(raw) as Record<string, unknown>;
  if (typeof c.model === "object" && c.model !== null && !Array.isArray(c.model))
    c.model = upgradeDedosConfig(c.model as DedosConfig);
  const data = c.data;
  if (typeof data === "object" && data !== null && !Array.isArray(data) && !("maxBadSamples" in data))
    (data as Record<string, unknown>).maxBadSamples = DEFAULT_MAX_BAD_SAMPLES;
  return c;
}

/** Applies `path=value` overrides in place; the value is parsed as the type of the existing field. */
export function applyOverrides<T extends object>(config: T, overrides: readonly string[]): T {
  for (const o of overrides) {
    const eq = o.indexOf("=");
    if (eq <= 0) throw new Error(`--set ${o}: expected path.to.field=value`);
    const path = o.slice(0, eq).split(".");
    const raw = o.slice(eq + 1);
    let node: Record<string, unknown> = config as Record<string, unknown>;
    for (const [i, key] of path.entries()) {
      if (!(key in node)) {
        const here = path.slice(0, i).join(".") || "the config";
        throw new Error(
          `--set ${o}: ${here} has no field "${key}" (fields: ${Object.keys(node).join(", ")})`,
        );
      }
      if (i === path.length - 1) node[key] = parseLike(node[key], raw, o);
      else {
        const next = node[key];
        if (typeof next !== "object" || next === null || Array.isArray(next))
          throw new Error(`--set ${o}: ${path.slice(0, i + 1).join(".")} is not a group of fields`);
        node = next as Record<string, unknown>;
      }
    }
  }
  return config;
}

function parseLike(current: unknown, raw: string, what: string): unknown {
  const fail = (type: string): never => {
    throw new Error(`--set ${what}: "${raw}" is not a ${type}`);
  };
  if (typeof current === "number") {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n)) fail("number");
    return n;
  }
  if (typeof current === "boolean") {
    if (raw === "true") return true;
    if (raw === "false") return false;
    return fail("boolean (true or false)");
  }
  if (typeof current === "string") return raw;
  if (Array.isArray(current)) {
    let v: unknown;
    try {
      v = JSON.parse(raw.startsWith("[") ? raw : `[${raw}]`);
    } catch {
      return fail("list (e.g. 50,100,200 or [50,100,200])");
    }
    const sample = current[0];
    if (!Array.isArray(v) || (sample !== undefined && v.some((x) => typeof x !== typeof sample)))
      fail(`list of ${typeof sample}`);
    return v;
  }
  return fail(`value for a field of type ${typeof current}`);
}

/** Throws naming the field when the run's config cannot work. */
export function validateTrainConfig(c: TrainConfig): void {
  validateDedosConfig(c.model);
  const bad = (m: string): never => {
    throw new Error(`TrainConfig: ${m}`);
  };
  if (!(c.solver.lr > 0)) bad(`solver.lr must be > 0, got ${c.solver.lr}`);
  if (!Number.isInteger(c.solver.maxIter) || c.solver.maxIter <= 0)
    bad(`solver.maxIter must be a positive integer`);
  if (!Number.isInteger(c.data.batchSize) || c.data.batchSize <= 0)
    bad(`data.batchSize must be a positive integer`);
  if (!Number.isInteger(c.data.crop) || c.data.crop <= 0) bad(`data.crop must be a positive integer`);
  const m = c.data.maxBadSamples;
  if (!(Number.isFinite(m) && m >= 0 && (m < 1 || Number.isInteger(m))))
    bad(
      `data.maxBadSamples must be a count (0, 1, 2, …) or a fraction of the training set between 0 and 1, got ${m}`,
    );
  if (c.train.checkpointEvery <= 0) bad(`train.checkpointEvery must be > 0`);
  if (c.train.logEvery <= 0) bad(`train.logEvery must be > 0`);
}
