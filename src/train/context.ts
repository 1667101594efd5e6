// The set-up of a training run, everything the step and the hooks work on: the process's place in the
// group, the training set, the model with its trainable parameters, the optimizer, loss scaler and RNG, a
// resumed run's state, and the data loader. Closing it frees all of it.
import { join } from "node:path";
import { getBenchmark, loadClassNames } from "../data/benchmarks.js";
import * as dist from "../torch/distributed.js";
import { AdamW } from "../torch/optim.js";
import { dispose, Generator, noGrad, tidy } from "../torch/tensor.js";
import { type AttachedDiffusion, attachStableDiffusion, buildModel } from "./build-model.js";
import { type TrainConfig, validateTrainConfig } from "./config.js";
import { SegmentationDataset } from "./dataset.js";
import { saveEffectiveConfig } from "./hooks/config-log.js";
import { DataLoader, describeFailure, type LoaderState } from "./loader.js";
import { resumeTraining } from "./resume.js";
import { LossScaler, setupTrainable } from "./solver.js";
import type { StepContext } from "./step.js";
import type { TrainOptions } from "./trainer.js";

export interface TrainContext extends StepContext {
  rank: number;
  world: number;
  /** Stable Diffusion attached to the model, if the config needs it. */
  diffusion: AttachedDiffusion | null;
  /** Iterations completed before this run, and the checkpoint they were resumed from. */
  startIteration: number;
  resumedFrom: string | null;
}

/** Sets a run up (writing <out>/config.json on rank 0). Errors name the data, weights or setting at fault. */
export async function openTrainContext(o: TrainOptions): Promise<TrainContext> {
  const c = o.config;
  validateTrainConfig(c);
  const rank = dist.isInitialized() ? dist.getRank() : 0;
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const log = o.log ?? defaultTrainLog(rank);
  // Skipped samples are each rank's own: warned on every rank.
  const warn = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (c.data.batchSize % world !== 0)
    throw new Error(`data.batchSize ${c.data.batchSize} is not divisible by the ${world} processes`);
  if (rank === 0) saveEffectiveConfig(o.out, c);
  // Data first: a missing folder or label should fail before minutes of model building.
  const dataset =
    o.dataset ??
    SegmentationDataset.open({ root: o.dataRoot ?? ".", benchmark: c.data.dataset, split: c.data.split });
  const classNames = o.classNames ?? loadClassNames(getBenchmark(c.data.dataset));
  const m = buildTrainable(c, o, rank);
  let loader: DataLoader | null = null;
  try {
    let startIteration = 0;
    let resumedFrom: string | null = null;
    let loaderStart: LoaderState | undefined;
    if (o.resume) {
      const st = resumeTraining(checkpointsDir(o.out), { ...m, rank }, { fallback: o.resumeFallback, log });
      [startIteration, resumedFrom, loaderStart] = [st.iteration, st.folder, st.loader];
      log(`resumed from ${st.folder} at iteration ${st.iteration}`);
    }
    // The saved k rows of CLIP's packed attention must be the loaded ones.
    noGrad(() =>
      tidy(() => {
        for (const r of m.setup.frozenRows) r.saved.copy_(r.param.narrow(0, r.start, r.length));
      }),
    );
    if (world > 1) dist.broadcastParameters(m.model.parameters());
    loader = createLoader(c, dataset, rank, world, loaderStart, warn);
    // Frozen text tower: the training classes' embeddings once; a training one: every step, with gradients.
    const fixedText = m.model.textTowerTrains
      ? null
      : noGrad(() => m.model.textEmbeddings(classNames)).keep();
    return { ...m, config: c, rank, world, log, loader, classNames, fixedText, startIteration, resumedFrom };
  } catch (e) {
    await loader?.close();
    releaseTrainable(m);
    throw e;
  }
}

/** Console lines of a run: stderr, on rank 0 only. */
export function defaultTrainLog(rank: number): (line: string) => void {
  return (l: string) => {
    if (rank === 0) process.stderr.write(`${l}\n`);
  };
}

/** Frees everything the run set up (the loader's workers, the model, a Stable Diffusion folder it loaded). */
export async function closeTrainContext(ctx: TrainContext): Promise<void> {
  await ctx.loader.close();
  ctx.fixedText?.dispose();
  releaseTrainable(ctx);
}

/** Where a run's checkpoints go. */
export function checkpointsDir(out: string): string {
  return join(out, "checkpoints");
}

type Trainable = ReturnType<typeof buildTrainable>;

/** The model (with Stable Diffusion when needed) on its device, its trainable parameters and the solver. */
function buildTrainable(c: TrainConfig, o: TrainOptions, rank: number) {
  const model = buildModel(c, o);
  let diffusion: AttachedDiffusion | null = null;
  try {
    diffusion = attachStableDiffusion(model, c, o);
    const device = o.device ?? "cpu";
    const deviceKind: "cpu" | "cuda" = device.startsWith("cuda") ? "cuda" : "cpu";
    const amp = c.solver.amp;
    if (amp === "fp16" && deviceKind !== "cuda")
      throw new Error(
        "solver.amp=fp16 needs a CUDA device (float16 matmuls on CPU are slow and unscaled); use bf16",
      );
    const scaler = amp === "fp16" ? new LossScaler() : null;
    if (device !== "cpu") model.to(device);
    model.train();
    const setup = setupTrainable(model, c.solver);
    const optimizer = new AdamW(setup.groups);
    const generator = new Generator(c.train.seed + 7919 * rank);
    return { model, diffusion, device, deviceKind, scaler, setup, optimizer, generator };
  } catch (e) {
    model.dispose();
    diffusion?.release();
    throw e;
  }
}

function releaseTrainable(m: Pick<Trainable, "model" | "setup" | "diffusion">): void {
  dispose(m.setup.frozenRows.map((r) => r.saved));
  m.model.dispose();
  m.diffusion?.release();
}

function createLoader(
  c: TrainConfig,
  dataset: SegmentationDataset,
  rank: number,
  world: number,
  start: LoaderState | undefined,
  warn: (line: string) => void,
): DataLoader {
  return new DataLoader(dataset, {
    batchSize: c.data.batchSize / world,
    augment: {
      minSize: c.data.minSize,
      maxSize: 1333,
      crop: [c.data.crop, c.data.crop],
      singleCategoryMaxArea: c.data.singleCategoryMaxArea,
      colorAug: c.data.colorAug,
      flip: c.data.flip,
      padImage: 128,
      ignoreLabel: c.model.loss.ignoreLabel,
    },
    seed: c.train.seed,
    workers: c.data.workers,
    prefetch: c.data.prefetch,
    rank,
    worldSize: world,
    start,
    maxBadSamples: c.data.maxBadSamples,
    onSkip: (s) =>
      warn(
        `warning: skipped a training sample that failed to load: ${describeFailure(s.item, s.error)} ` +
          `(${s.bad} bad sample${s.bad > 1 ? "s" : ""} so far, data.maxBadSamples allows ${s.limit})`,
      ),
  });
}
