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

import { join } from "node:path";
import type { DiffusionComponents } from "../diffusion/branch.js";
import { saveTrainedModel } from "./build-model.js";
import type { TrainConfig } from "./config.js";
import { checkpointsDir, closeTrainContext, openTrainContext, type TrainContext } from "./context.js";
import type { SegmentationDataset } from "./dataset.js";
import { Checkpointer } from "./hooks/checkpointer.js";
import { ConfigLogger } from "./hooks/config-log.js";
import { PeriodicEvaluator } from "./hooks/evaluator.js";
import { MetricsWriter } from "./hooks/metrics.js";
import { NanGuard } from "./hooks/nan-guard.js";
import { type Hook, TrainLoop } from "./loop.js";
import { trainingExtra } from "./resume.js";
import { trainStep } from "./step.js";

export { NonFiniteLossError } from "./hooks/nan-guard.js";

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
  /** Console lines (default: stderr on rank 0). */
  log?: (line: string) => void;
}

export interface TrainResult {
  iteration: number;
  /** Last logged losses. */
  losses: Record<string, number>;
  /** Newest checkpoint folder, if any was written. */
  checkpoint: string | null;
  /** Share of the steady-state time the model waited for data. */
  dataIdleShare: number;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const ctx = await openTrainContext(o);
  try {
    const max = ctx.config.solver.maxIter;
    const start = ctx.startIteration;
    const stopAt = Math.min(max, o.stopAfter !== undefined ? start + o.stopAfter : max);
    const { hooks, checkpointer, metrics } = buildHooks(ctx, o);
    const loop = new TrainLoop({ start, maxIter: max, stopAt, step: (i) => trainStep(ctx, i), hooks });
    await loop.run();
    return {
      iteration: loop.iteration,
      losses: metrics.last,
      checkpoint: checkpointer.latest,
      dataIdleShare: ctx.loader.stats().idleShare,
    };
  } finally {
    await closeTrainContext(ctx);
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
