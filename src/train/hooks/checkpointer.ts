// Checkpointing: every `checkpointEvery` iterations and at the schedule's end, and when the run stops
// early between two of them; the newest `keep` are kept (checkpoint.ts writes them atomically). At the
// schedule's end the trained model is also written as model_final.safetensors.

import * as dist from "../../torch/distributed.js";
import type { Module } from "../../torch/nn/module.js";
import type { AdamW } from "../../torch/optim.js";
import { saveCheckpoint } from "../checkpoint.js";
import type { Hook, TrainLoop } from "../loop.js";
import { writingFile } from "../run-folder.js";

export interface CheckpointerOptions {
  /** The checkpoints folder. */
  dir: string;
  every: number;
  /** Checkpoints kept (0 = all). */
  keep: number;
  rank: number;
  world: number;
  model: Module;
  optimizer: AdamW;
  /** Parameter names of the optimizer's groups. */
  paramNames: string[][];
  /** Saved with every checkpoint. */
  config: unknown;
  /** The run state besides weights and optimizer; a collective (every rank calls it). */
  extra: () => Record<string, unknown>;
  /** The checkpoint a resumed run started from. */
  resumedFrom: string | null;
  /** Writes the trained model at the schedule's end (rank 0), then logs it. */
  final: { file: string; save: (file: string) => void; log: (line: string) => void };
}

export class Checkpointer implements Hook {
  /** The newest checkpoint folder (written by this run or resumed from), on rank 0. */
  latest: string | null;

  constructor(private readonly o: CheckpointerOptions) {
    this.latest = o.resumedFrom;
  }

  afterStep(loop: TrainLoop): void {
    if (loop.iteration % this.o.every === 0 || loop.iteration === loop.maxIter) this.save(loop.iteration);
  }

  afterTrain(loop: TrainLoop): void {
    const it = loop.iteration;
    if (it === loop.stopAt && it !== loop.maxIter && it % this.o.every !== 0) this.save(it);
    if (it === loop.maxIter && this.o.rank === 0) {
      writingFile(this.o.final.file, () => this.o.final.save(this.o.final.file), "model");
      this.o.final.log(`done: ${this.o.final.file}`);
    }
  }

  private save(iteration: number): void {
    const o = this.o;
    const extra = o.extra();
    if (o.rank === 0) {
      try {
        this.latest = saveCheckpoint({
          dir: o.dir,
          model: o.model,
          optimizer: o.optimizer,
          paramNames: o.paramNames,
          state: { iteration, extra },
          config: o.config,
          keep: o.keep,
        });
      } catch (e) {
        const err = e as Error;
        err.message += this.latest
          ? `; the previous checkpoint ${this.latest} is intact`
          : "; no checkpoint was written yet";
        throw err;
      }
    }
    if (o.world > 1) dist.barrier();
  }
}
