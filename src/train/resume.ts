// What a checkpoint holds beyond the weights and the optimizer so that a resumed run continues exactly: the
// data position, every rank's RNG states and the float16 loss scale; written by the checkpoint hook,
// read back by `resumeTraining`.

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
import { base64ToTensor, latestCheckpoint, loadCheckpointInto, tensorToBase64 } from "./checkpoint.js";
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

/**
 * Restores the newest checkpoint in `dir` into the run (weights, optimizer, loss scale, this rank's RNG
 * states); returns its folder, iteration and data position. An error if there is none.
 */
export function resumeTraining(
  dir: string,
  run: ResumableRun,
): { folder: string; iteration: number; loader: LoaderState } {
  const folder = latestCheckpoint(dir);
  if (!folder) throw new Error(`--resume: no checkpoint in ${dir}`);
  const st = loadCheckpointInto(folder, run.model, run.optimizer, run.setup.names);
  const extra = st.extra as unknown as TrainingExtra;
  if (run.scaler && extra.lossScale) {
    run.scaler.scale = extra.lossScale.scale;
    run.scaler.goodSteps = extra.lossScale.goodSteps;
  }
  restoreRng(run.generator, extra.generators[run.rank], extra.torch[run.rank], folder, run.rank);
  return { folder, iteration: st.iteration, loader: extra.loader };
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
    g.setState(base64ToTensor(mine));
    setDefaultGeneratorState(base64ToTensor(torch));
  });
}
