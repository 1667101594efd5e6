// The training run (spec §7): data in background workers, DEDOS's training losses, AdamW with the cosine
// schedule and full-model gradient clipping, gradients all-reduced over c10d when several processes run,
// atomic checkpoints that resume exactly (weights, optimizer, schedule, RNG and data position), console
// progress and a JSONL metrics log.
//
// `train` assembles the parts: the set-up (context.ts), the step (step.ts) and the hooks (hooks/), run by
// the loop (loop.ts).
//
//   <out>/config.json          the effective config (also inside every checkpoint)
//   <out>/metrics.jsonl        one line per logged iteration (and per evaluation)
//   <out>/checkpoints/…        see checkpoint.ts
//   <out>/model_final.safetensors  the trained model (a DEDOS weights file)
//   <out>/.lock                while a run uses the folder (run-folder.ts)
//
// Faults: a second run into the same folder is refused (the lock); what killed writes left behind is
// removed at start; SIGINT / SIGTERM (with `handleSignals`) stop the run between two steps; a corrupt
// training sample is skipped (data.maxBadSamples); a failed write (disk full) ends the run naming the file,
// with the previous checkpoint intact; a damaged latest checkpoint is named on --resume (resume.ts).

import { join } from "node:path";
import type { DiffusionComponents } from "../diffusion/branch.js";
import * as dist from "../torch/distributed.js";
import { saveTrainedModel } from "./build-model.js";
import type { TrainConfig } from "./config.js";
import {
  checkpointsDir,
  closeTrainContext,
  defaultTrainLog,
  openTrainContext,
  type TrainContext,
} from "./context.js";
import type { SegmentationDataset } from "./dataset.js";
import { Checkpointer } from "./hooks/checkpointer.js";
import { ConfigLogger } from "./hooks/config-log.js";
import { PeriodicEvaluator } from "./hooks/evaluator.js";
import { MetricsWriter } from "./hooks/metrics.js";
import { NanGuard } from "./hooks/nan-guard.js";
import { StopRequests, type StopSignal, signalCode, signalOfCode } from "./interrupt.js";
import { type Hook, TrainLoop } from "./loop.js";
import { trainingExtra } from "./resume.js";
import { acquireRunLock, type RunLock, removeStaleTemporaries } from "./run-folder.js";
import { trainStep } from "./step.js";

export { NonFiniteLossError } from "./hooks/nan-guard.js";
export { SIGNAL_EXIT_CODES, type StopSignal } from "./interrupt.js";

export interface TrainOptions {
  config: TrainConfig;
  /** Run folder (config, metrics, checkpoints, final weights). */
  out: string;
  /** Datasets root holding the prepared training set (ignored when `dataset` is given). */
  dataRoot?: string;
  dataset?: SegmentationDataset;
  /** Datasets root of the periodic evaluation's benchmark (default `dataRoot`). */
  evalRoot?: string;
  /** Training class names (default: the benchmark's class list). */
  classNames?: string[];
  /** Continue from the newest checkpoint in `<out>/checkpoints` (an error if there is none). */
  resume?: boolean;
  /** With `resume`: when the latest checkpoint is damaged, continue from the newest intact one. */
  resumeFallback?: boolean;
  /** Starting weights: a DEDOS weights file, a CAT-Seg checkpoint, and / or OpenAI CLIP. */
  weights?: { dedos?: string; catseg?: string; clip?: string };
  /** Stable Diffusion: a diffusers folder or in-memory components (needed by diffusion conditioning / L_consist). */
  diffusion?: string | DiffusionComponents;
  /** Seed of freshly initialised weights (default config.train.seed). */
  initSeed?: number;
  /** "cpu" (default) or "cuda[:N]"; the data is moved there batch by batch. */
  device?: string;
  /** Stop after this many iterations of this run (tests; an interrupted run). */
  stopAfter?: number;
  /** Console lines (default: stderr on rank 0; warnings about skipped samples on every rank). */
  log?: (line: string) => void;
  /**
   * Install SIGINT / SIGTERM handlers for the run's duration: a signal stops the run between two steps and
   * the result says which (`interrupted`). Off by default (a library should not take a process's signals).
   */
  handleSignals?: boolean;
}

export interface TrainResult {
  iteration: number;
  /** Last logged losses. */
  losses: Record<string, number>;
  /** Newest checkpoint folder, if any was written. */
  checkpoint: string | null;
  /** Share of the steady-state time the model waited for data. */
  dataIdleShare: number;
  /** Training samples skipped because they failed to load (each time one was met; this process's). */
  skippedSamples: number;
  /** The signal that stopped the run before its end (with `handleSignals`), else null. */
  interrupted: StopSignal | null;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const rank = dist.isInitialized() ? dist.getRank() : 0;
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const log = o.log ?? defaultTrainLog(rank);
  const stop = o.handleSignals ? new StopRequests(log) : null;
  let lock: RunLock | null = null;
  try {
    // Rank 0 owns the run folder: the lock first, then what interrupted writes of earlier runs left.
    if (rank === 0) {
      lock = acquireRunLock(o.out, log);
      const removed = removeStaleTemporaries(o.out, checkpointsDir(o.out));
      if (removed.length > 0) log(`note: removed what interrupted writes left behind: ${removed.join(", ")}`);
    }
    const ctx = await openTrainContext(o);
    try {
      const max = ctx.config.solver.maxIter;
      const start = ctx.startIteration;
      const stopAt = Math.min(max, o.stopAfter !== undefined ? start + o.stopAfter : max);
      const { hooks, checkpointer, metrics } = buildHooks(ctx, o);
      let interrupted: StopSignal | null = null;
      // All ranks must stop at the same step (the next one all-reduces): they agree on the signal first.
      const shouldStop = stop
        ? () => {
            const code = signalCode(stop.signal);
            interrupted = signalOfCode(world > 1 ? dist.allReduceNumbers([code], "max")[0]! : code);
            return interrupted !== null;
          }
        : undefined;
      const loop = new TrainLoop({
        start,
        maxIter: max,
        stopAt,
        step: (i) => trainStep(ctx, i),
        hooks,
        shouldStop,
      });
      await loop.run();
      return {
        iteration: loop.iteration,
        losses: metrics.last,
        checkpoint: checkpointer.latest,
        dataIdleShare: ctx.loader.stats().idleShare,
        skippedSamples: ctx.loader.stats().skipped,
        interrupted: loop.stopped ? interrupted : null,
      };
    } finally {
      await closeTrainContext(ctx);
    }
  } finally {
    lock?.release();
    stop?.remove();
  }
}

/**
 * The hooks of a run, in the order they run: the config log, the NaN guard (first after a step, so that
 * nothing records a diverged step), metrics, checkpoints, periodic evaluation.
 */
function buildHooks(
  ctx: TrainContext,
  o: TrainOptions,
): { hooks: Hook[]; checkpointer: Checkpointer; metrics: MetricsWriter } {
  const { config: c, rank, world, log, model } = ctx;
  const metricsFile = join(o.out, "metrics.jsonl");
  const checkpointer = new Checkpointer({
    dir: checkpointsDir(o.out),
    every: c.train.checkpointEvery,
    keep: c.train.keepCheckpoints,
    rank,
    world,
    model,
    optimizer: ctx.optimizer,
    paramNames: ctx.setup.names,
    config: c,
    extra: () => trainingExtra(ctx.loader, ctx.generator, ctx.scaler),
    resumedFrom: ctx.resumedFrom,
    final: { file: join(o.out, "model_final.safetensors"), save: (f) => saveTrainedModel(model, f), log },
  });
  const metrics = new MetricsWriter({
    file: metricsFile,
    every: c.train.logEvery,
    rank,
    log,
    dataIdleShare: () => ctx.loader.stats().idleShare,
    // A collective: MetricsWriter asks on every rank at the same iterations.
    skippedSamples: () => dist.allReduceNumbers([ctx.loader.stats().skipped], "sum")[0]!,
  });
  const params = {
    trainable: ctx.setup.trainable,
    frozen: ctx.setup.frozen,
    diffusion: ctx.diffusion?.params ?? null,
  };
  const hooks: Hook[] = [
    new ConfigLogger({ config: c, rank, world, params, log }),
    new NanGuard(() => checkpointer.latest),
    metrics,
    checkpointer,
    new PeriodicEvaluator({
      every: c.train.evalEvery,
      dataset: c.train.evalDataset,
      root: o.evalRoot ?? o.dataRoot ?? ".",
      limit: c.train.evalLimit > 0 ? c.train.evalLimit : undefined,
      model,
      metricsFile,
      rank,
      world,
      log,
    }),
  ];
  return { hooks, checkpointer, metrics };
}
