// The NaN guard: the first step with a non-finite loss (its update was not applied) stops the run with a
// clear message naming the newest checkpoint, which is the last good state.
import type { Hook, StepOutput, TrainLoop } from "../loop.js";

/** NaN / Inf loss: stops the run; the newest checkpoint is the last good state. */
export class NonFiniteLossError extends Error {}

export class NanGuard implements Hook {
  /** `lastCheckpoint`: the newest checkpoint folder written (or resumed from), if any. */
  constructor(private readonly lastCheckpoint: () => string | null) {}

  afterStep(loop: TrainLoop, step: StepOutput): void {
    if (step.nonFinite === undefined) return;
    const checkpoint = this.lastCheckpoint();
    throw new NonFiniteLossError(
      `${step.nonFinite} at iteration ${loop.iteration}; stopped. ` +
        (checkpoint ? `The last good checkpoint is ${checkpoint}` : "No checkpoint was written yet") +
        "; lower solver.lr or check the data",
    );
  }
}
