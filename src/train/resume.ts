// What a checkpoint holds beyond the weights and the optimizer so that a resumed run continues exactly: the
// data position, every rank's RNG states and the float16 loss scale; written by the checkpoint hook,
// read back by `resumeTraining`.

import { existsSync, renameSync } from "node:fs";
import { basename, join } from "node:path";
import type { DedosModel } from "../dedos/model.js";
import * as dist from "../torch/distributed.js";
import type { AdamW } from "../torch/optim.js";
import {
  defaultGeneratorState,
  type Generator,
  setDefaultGeneratorState,
  type Tensor,
  tidy,
} from "../torch/tensor.js";
import {
  base64ToTensor,
  DamagedCheckpointError,
  loadCheckpointInto,
  resumeCandidates,
  tensorToBase64,
} from "./checkpoint.js";
import type { DataLoader, LoaderState } from "./loader.js";
import type { LossScaler, TrainableSetup } from "./solver.js";

/** The `extra` of a training checkpoint. */
export type TrainingExtra = {
  loader: LoaderState;
  /** Per rank (rank order): the training generator's and libtorch's default generator's states. */
  generators: string[];
  torch: string[];
  lossScale?: { scale: number; goodSteps: number } | null;
};

/** The run state to save now. A collective: every rank must call it (the RNG states are gathered). */
export function trainingExtra(
  loader: DataLoader,
  generator: Generator,
  scaler: LossScaler | null,
): TrainingExtra {
  return {
    loader: loader.state(),
    generators: dist.gatherStrings(tensorState(generator.getState())),
    torch: dist.gatherStrings(tensorState(defaultGeneratorState())),
    lossScale: scaler ? { scale: scaler.scale, goodSteps: scaler.goodSteps } : null,
  };
}

/** The parts of a run a checkpoint restores. */
export interface ResumableRun {
  model: DedosModel;
  optimizer: AdamW;
  setup: TrainableSetup;
  scaler: LossScaler | null;
  generator: Generator;
  rank: number;
}

export interface ResumeOptions {
  /**
   * When the latest checkpoint is damaged, continue from the newest intact one (the damaged newer ones are
   * renamed `<name>.damaged`, so that they are neither resumed from nor pruned). Without it, a damaged
   * latest checkpoint is an error naming the file and the newest intact one.
   */
  fallback?: boolean;
  /** Notes (the fallback taken); rank 0's. */
  log?: (line: string) => void;
}

/**
 * Restores the newest checkpoint in `dir` into the run (weights, optimizer, loss scale, this rank's RNG
 * states); returns its folder, iteration and data position. An error if there is none, or if the latest is
 * damaged (unreadable or invalid state.json, a missing, truncated or wrongly sized model or optimizer file)
 * and `fallback` is not set.
 */
export function resumeTraining(
  dir: string,
  run: ResumableRun,
  o: ResumeOptions = {},
): { folder: string; iteration: number; loader: LoaderState } {
  const candidates = resumeCandidates(dir);
  if (candidates.length === 0) throw new Error(`--resume: no checkpoint in ${dir}`);
  const damaged: DamagedCheckpointError[] = [];
  for (const folder of candidates) {
    try {
      const r = restoreFrom(folder, run);
      if (damaged.length === 0) return r;
      if (!o.fallback) throw damagedLatestError(candidates[0]!, damaged[0]!, folder);
      const aside = candidates.slice(0, damaged.length).map(damagedName);
      if (run.rank === 0)
        candidates.slice(0, damaged.length).forEach((f, i) => {
          renameSync(f, aside[i]!);
        });
      o.log?.(
        `--resume-fallback: the latest checkpoint ${candidates[0]} is damaged (${damaged[0]!.message}); ` +
          `continuing from ${folder}, the newest intact one` +
          (damaged.length > 1 ? ` (${damaged.length} damaged checkpoints skipped)` : "") +
          `; the damaged ones are kept as ${aside.map((f) => basename(f)).join(", ")}`,
      );
      return r;
    } catch (e) {
      if (!(e instanceof DamagedCheckpointError)) throw e;
      damaged.push(e);
    }
  }
  throw damagedLatestError(candidates[0]!, damaged[0]!, null);
}

/** Where a damaged checkpoint folder is kept: `<name>.damaged` (`.damaged-2`, … if that exists). */
function damagedName(folder: string): string {
  for (let k = 1; ; k++) {
    const name = k === 1 ? `${folder}.damaged` : `${folder}.damaged-${k}`;
    if (!existsSync(name)) return name;
  }
}

/** The latest checkpoint is damaged (and no fallback was asked for, or none is intact). */
export class DamagedLatestCheckpointError extends Error {
  constructor(
    readonly latest: string,
    readonly damage: DamagedCheckpointError,
    readonly intact: string | null,
  ) {
    super(
      `--resume: the latest checkpoint ${latest} is damaged: ${damage.message}. ` +
        (intact
          ? `The newest intact checkpoint is ${intact}; pass --resume-fallback to continue from it`
          : "No older checkpoint is intact either: repair the file, or start a new run without --resume"),
    );
    this.name = "DamagedLatestCheckpointError";
  }
}

function damagedLatestError(latest: string, e: DamagedCheckpointError, intact: string | null): Error {
  return new DamagedLatestCheckpointError(latest, e, intact);
}

/** Restores one checkpoint folder; a DamagedCheckpointError names the file at fault. */
function restoreFrom(
  folder: string,
  run: ResumableRun,
): { folder: string; iteration: number; loader: LoaderState } {
  const st = loadCheckpointInto(folder, run.model, run.optimizer, run.setup.names);
  const stateFile = join(folder, "state.json");
  const extra = st.extra as Partial<TrainingExtra>;
  const loader = extra.loader;
  if (
    typeof loader !== "object" ||
    loader === null ||
    !Number.isSafeInteger(loader.epoch) ||
    !Number.isSafeInteger(loader.position) ||
    loader.epoch < 0 ||
    loader.position < 0
  )
    throw new DamagedCheckpointError(stateFile, `"extra.loader" is not a data position {epoch, position}`);
  if (!Array.isArray(extra.generators) || !Array.isArray(extra.torch))
    throw new DamagedCheckpointError(
      stateFile,
      `"extra.generators" / "extra.torch" (RNG states) are missing`,
    );
  if (run.scaler && extra.lossScale) {
    run.scaler.scale = extra.lossScale.scale;
    run.scaler.goodSteps = extra.lossScale.goodSteps;
  }
  restoreRng(run.generator, extra.generators[run.rank], extra.torch[run.rank], folder, run.rank);
  return { folder, iteration: st.iteration, loader: { epoch: loader.epoch, position: loader.position } };
}

function tensorState(t: Tensor): string {
  try {
    return tensorToBase64(t);
  } finally {
    t.dispose();
  }
}

function restoreRng(
  g: Generator,
  mine: string | undefined,
  torch: string | undefined,
  folder: string,
  rank: number,
): void {
  if (mine === undefined || torch === undefined)
    throw new Error(
      `${folder}: no RNG state for rank ${rank} (the checkpoint was written by fewer processes)`,
    );
  tidy(() => {
    try {
      g.setState(base64ToTensor(mine));
      setDefaultGeneratorState(base64ToTensor(torch));
    } catch (e) {
      throw new DamagedCheckpointError(join(folder, "state.json"), `bad RNG state (${(e as Error).message})`);
    }
  });
}
