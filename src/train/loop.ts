// The training loop and its hooks (detectron2's TrainerBase and HookBase): the loop runs one step per
// iteration and calls every hook, in order, before training, after each step and after training.
// Everything but the step (checkpoints, evaluation, metrics, logging, the NaN guard) is a hook. Between two
// steps the loop asks `shouldStop` (a signal arrived): it then ends without the after-training hooks, the
// step and the hooks of the last iteration (a checkpoint being written) complete.
//
// Between two steps the loop also gives the event loop a turn (setImmediate). Without it a run would not
// see signals, nor fire timers, for many steps: each step awaits a batch that a loader worker's message
// resolves, and Node handles up to 1000 queued port messages (and everything their promises run) before it
// polls again; signals are read in that poll.

import { trimCache } from "../torch/tensor.js";

/** What one step reports. */
export interface StepOutput {
  /** The step's losses (averaged over the processes) and their sum, `total`. */
  losses: Record<string, number>;
  /** The learning rate of the step (the base rate times the schedule). */
  lr: number;
  /** Set when the step met non-finite values; its update was not applied. */
  nonFinite?: string;
}

/** A part of training run at fixed points of the loop; every method is optional. */
export interface Hook {
  /** Once, before the first step (also when a resumed run has no step left). */
  beforeTrain?(loop: TrainLoop): void | Promise<void>;
  /** After every step; `loop.iteration` counts the step just run (1-based). */
  afterStep?(loop: TrainLoop, step: StepOutput): void | Promise<void>;
  /** Once, after the last step, unless a step or a hook threw or the run was stopped (`shouldStop`). */
  afterTrain?(loop: TrainLoop): void | Promise<void>;
}

export interface TrainLoopOptions {
  /** Iterations completed before this run (a resumed checkpoint's). */
  start: number;
  /** The schedule's last iteration. */
  maxIter: number;
  /** Where this run stops (≤ maxIter). */
  stopAt: number;
  /** One iteration: `iteration` is the number completed before it (0-based). */
  step: (iteration: number) => Promise<StepOutput>;
  hooks: readonly Hook[];
  /** Asked before every step: true ends the run there (`stopped` is set). Must agree on all ranks. */
  shouldStop?: () => boolean;
}

export class TrainLoop {
  /** Iterations completed. */
  iteration: number;
  readonly startIteration: number;
  readonly maxIter: number;
  readonly stopAt: number;
  /** Set when `shouldStop` ended the run before `stopAt`. */
  stopped = false;

  constructor(private readonly o: TrainLoopOptions) {
    this.iteration = o.start;
    this.startIteration = o.start;
    this.maxIter = o.maxIter;
    this.stopAt = o.stopAt;
  }

  async run(): Promise<void> {
    for (const h of this.o.hooks) await h.beforeTrain?.(this);
    while (this.iteration < this.stopAt) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.o.shouldStop?.()) {
        this.stopped = true;
        return;
      }
      const out = await this.o.step(this.iteration);
      trimCache(); // the allocator keeps the blocks a step reuses, not every size it ever made
      this.iteration++;
      for (const h of this.o.hooks) await h.afterStep?.(this, out);
    }
    for (const h of this.o.hooks) await h.afterTrain?.(this);
  }
}
