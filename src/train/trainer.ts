// The training loop (spec §7): data in background workers, DEDOS's training losses, AdamW with the cosine
// schedule and full-model gradient clipping, gradients all-reduced over c10d when several processes run,
// atomic checkpoints that resume exactly (weights, optimizer, schedule, RNG and data position), console
// progress and a JSONL metrics log.
//
//   <out>/config.json          the effective config (also inside every checkpoint)
//   <out>/metrics.jsonl        one line per logged iteration (and per evaluation)
//   <out>/checkpoints/…        see checkpoint.ts
//   <out>/model_final.safetensors  the trained model (DedosModel.fromFile reads it)

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Segmenter } from "../api/segmenter.js";
import { getBenchmark, loadClassNames } from "../data/benchmarks.js";
import { DedosModel } from "../dedos/model.js";
import { DiffusionBranch, type DiffusionComponents, loadDiffusersFolder } from "../diffusion/pipeline.js";
import { evaluateShard } from "../eval/evaluate.js";
import { computeMetrics } from "../eval/semseg-metrics.js";
import * as dist from "../torch/distributed.js";
import type { Device } from "../torch/dtype.js";
import { AdamW } from "../torch/optim.js";
import {
  autocast,
  defaultGeneratorState,
  dispose,
  Generator,
  noGrad,
  setDefaultGeneratorState,
  type Tensor,
  tensor,
  tidy,
} from "../torch/tensor.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { formatSeconds } from "../util/progress.js";
import {
  base64ToTensor,
  latestCheckpoint,
  loadCheckpointInto,
  saveCheckpoint,
  tensorToBase64,
} from "./checkpoint.js";
import { type TrainConfig, validateTrainConfig } from "./config.js";
import { SegmentationDataset } from "./dataset.js";
import { DataLoader, type LoaderState } from "./loader.js";
import { applyUpdate, cosineLrFactor, LossScaler, setupTrainable, totalLoss } from "./solver.js";

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

/** NaN / Inf loss: stops the run; the newest checkpoint is the last good state. */
export class NonFiniteLossError extends Error {}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const c = o.config;
  validateTrainConfig(c);
  const rank = dist.isInitialized() ? dist.getRank() : 0;
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const log = o.log ?? ((l: string) => rank === 0 && process.stderr.write(`${l}\n`));
  if (c.data.batchSize % world !== 0)
    throw new Error(`data.batchSize ${c.data.batchSize} is not divisible by the ${world} processes`);
  const ckptDir = join(o.out, "checkpoints");
  if (rank === 0) {
    mkdirSync(o.out, { recursive: true });
    writeFileAtomicSync(join(o.out, "config.json"), Buffer.from(`${JSON.stringify(c, null, 2)}\n`));
  }

  // Data first: a missing folder or label should fail before minutes of model building.
  const dataset =
    o.dataset ??
    SegmentationDataset.open({
      root: o.dataRoot ?? ".",
      benchmark: c.data.dataset,
      split: c.data.split,
    });
  const classNames = o.classNames ?? loadClassNames(getBenchmark(c.data.dataset));

  // The model, its weights and the frozen diffusion branch.
  const model = buildModel(c, o);
  let diffusion: DiffusionComponents | null = null;
  const needSd =
    c.model.enabled && (c.model.proxy.conditioning === "diffusion" || c.model.consistency.enabled);
  if (needSd) {
    if (!o.diffusion)
      throw new Error(
        "training needs Stable Diffusion (proxy.conditioning = diffusion or consistency.enabled): pass --sd <diffusers folder>",
      );
    diffusion =
      typeof o.diffusion === "string"
        ? loadDiffusersFolder(o.diffusion, { device: (o.device ?? "cpu") as Device })
        : o.diffusion;
    model.attachDiffusion(new DiffusionBranch(diffusion, c.model.diffusion));
  }
  const device = o.device ?? "cpu";
  const deviceKind = device.startsWith("cuda") ? "cuda" : "cpu";
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

  let iteration = 0;
  let loaderStart: LoaderState | undefined;
  let checkpoint: string | null = null;
  if (o.resume) {
    const folder = latestCheckpoint(ckptDir);
    if (!folder) throw new Error(`--resume: no checkpoint in ${ckptDir}`);
    const st = loadCheckpointInto(folder, model, optimizer, setup.names);
    iteration = st.iteration;
    const extra = st.extra as {
      loader: LoaderState;
      generators: string[];
      torch: string[];
      lossScale?: { scale: number; goodSteps: number } | null;
    };
    loaderStart = extra.loader;
    if (scaler && extra.lossScale) {
      scaler.scale = extra.lossScale.scale;
      scaler.goodSteps = extra.lossScale.goodSteps;
    }
    restoreRng(generator, extra.generators[rank], extra.torch[rank], folder, rank);
    checkpoint = folder;
    log(`resumed from ${folder} at iteration ${iteration}`);
  }
  // The saved k rows of CLIP's packed attention must be the loaded ones.
  noGrad(() =>
    tidy(() => {
      for (const r of setup.frozenRows) r.saved.copy_(r.param.narrow(0, r.start, r.length));
    }),
  );
  if (world > 1) dist.broadcastParameters(model.parameters());

  if (rank === 0) {
    log(`effective config:\n${JSON.stringify(c, null, 2)}`);
    log(
      `parameters: ${(setup.trainable / 1e6).toFixed(2)} M trainable, ${(setup.frozen / 1e6).toFixed(2)} M frozen ` +
        `(+ Stable Diffusion ${diffusion ? (countParams(diffusion) / 1e6).toFixed(1) : "0"} M frozen); ` +
        `${world} process${world > 1 ? "es" : ""}, batch ${c.data.batchSize / world} each`,
    );
  }
  const metricsFile = join(o.out, "metrics.jsonl");
  if (rank === 0) truncateMetrics(metricsFile, iteration);

  const loader = new DataLoader(dataset, {
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
    start: loaderStart,
  });

  // Frozen text tower: the training classes' embeddings once; a training one: every step, with gradients.
  const fixedText = model.textTowerTrains ? null : noGrad(() => model.textEmbeddings(classNames)).keep();
  const max = c.solver.maxIter;
  const stopAt = Math.min(max, o.stopAfter !== undefined ? iteration + o.stopAfter : max);
  const t0 = performance.now();
  const startIter = iteration;
  let lastLosses: Record<string, number> = {};
  let pending: Record<string, number[]> = {};
  const saveNow = () => {
    const extra = {
      loader: loader.state(),
      generators: gatherStrings(tensorState(generator.getState())),
      torch: gatherStrings(tensorState(defaultGeneratorState())),
      lossScale: scaler ? { scale: scaler.scale, goodSteps: scaler.goodSteps } : null,
    };
    if (rank === 0)
      checkpoint = saveCheckpoint({
        dir: ckptDir,
        model,
        optimizer,
        paramNames: setup.names,
        state: { iteration, extra },
        config: c,
        keep: c.train.keepCheckpoints,
      });
    if (world > 1) dist.barrier();
  };

  // Periodic evaluation on a prepared benchmark (rank 0; the others wait), logged with the iteration.
  const evaluateNow = async () => {
    if (rank === 0) {
      model.eval();
      const seg = Segmenter.fromModel(model);
      try {
        const t = performance.now();
        const limit = c.train.evalLimit > 0 ? c.train.evalLimit : undefined;
        const shard = await evaluateShard(seg, c.train.evalDataset, o.evalRoot ?? o.dataRoot ?? ".", {
          limit,
        });
        const m = computeMetrics(shard.conf);
        appendMetrics(metricsFile, {
          iteration,
          eval: {
            dataset: c.train.evalDataset,
            images: shard.images,
            mIoU: m.mIoU,
            fwIoU: m.fwIoU,
            mACC: m.mACC,
            pACC: m.pACC,
            seconds: (performance.now() - t) / 1000,
          },
        });
        log(
          `eval ${c.train.evalDataset} at iteration ${iteration}: ${shard.images} image(s), mIoU ${m.mIoU.toFixed(2)}, ` +
            `pACC ${m.pACC.toFixed(2)}${shard.failed.length ? `, ${shard.failed.length} failed` : ""}`,
        );
      } finally {
        model.train();
      }
    }
    if (world > 1) dist.barrier();
  };

  try {
    while (iteration < stopAt) {
      const factor = cosineLrFactor(iteration, c.solver);
      setup.groups.forEach((g, i) => {
        optimizer.setLr(i, g.baseLr * factor);
      });
      const batch = await loader.next();
      const stopped = (what: string) =>
        new NonFiniteLossError(
          `${what} at iteration ${iteration + 1}; stopped. ` +
            (checkpoint ? `The last good checkpoint is ${checkpoint}` : "No checkpoint was written yet") +
            "; lower solver.lr or check the data",
        );
      const values = tidy(() => {
        const text = fixedText ?? model.textEmbeddings(classNames, { cache: false });
        let losses: Record<string, Tensor>;
        try {
          const images = batch.images.to(device);
          const labels = batch.labels.to(device);
          const forward = () => model.trainingLosses(images, labels, text, { generator });
          losses =
            amp === "off"
              ? forward()
              : autocast(deviceKind, amp === "bf16" ? "bfloat16" : "float16", forward);
        } catch (e) {
          // Diverged weights surface inside the forward first (e.g. the matcher refuses NaN costs).
          const msg = (e as Error).message;
          if (/\b(NaN|Infinity)\b/.test(msg)) throw stopped(`non-finite values in the forward pass (${msg})`);
          throw e;
        }
        const names = Object.keys(losses).sort();
        const total = totalLoss(losses);
        // The batch's loss over all ranks: every term is normalised globally (mask counts, class-weight
        // sums, equal per-rank pixel counts), so the mean over ranks is the whole batch's value. All ranks
        // therefore see the same numbers and stop together on a NaN.
        let numbers = [...names.map((n) => losses[n]!.item()), total.item()];
        if (world > 1)
          numbers = Array.from(
            dist.allReduce(tensorFromNumbers(numbers), "avg").toTypedArray() as Float64Array,
          );
        const v: Record<string, number> = {};
        names.forEach((n, i) => {
          v[n] = numbers[i]!;
        });
        v.total = numbers[names.length]!;
        if (!Number.isFinite(v.total)) {
          const bad = names.filter((n) => !Number.isFinite(v[n]!));
          throw stopped(`loss is ${v.total} (${bad.join(", ")})`);
        }
        optimizer.zeroGrad();
        (scaler ? total.mul(scaler.scale) : total).backward();
        return v;
      });
      dispose([batch.images, batch.labels]);
      if (!applyUpdate(setup, optimizer, c.solver.gradClip, scaler))
        log(
          `iteration ${iteration + 1}: float16 gradients overflowed; step skipped, loss scale now ${scaler!.scale}`,
        );
      iteration++;

      for (const [k, v] of Object.entries(values)) {
        pending[k] ??= [];
        pending[k].push(v);
      }
      if (iteration % c.train.logEvery === 0 || iteration === stopAt) {
        lastLosses = Object.fromEntries(
          Object.entries(pending).map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length]),
        );
        pending = {};
        const elapsed = (performance.now() - t0) / 1000;
        const itps = (iteration - startIter) / elapsed;
        const idle = loader.stats().idleShare;
        if (rank === 0) {
          appendMetrics(metricsFile, {
            iteration,
            lr: c.solver.lr * factor,
            ...lastLosses,
            it_per_s: itps,
            data_idle: idle,
            time_s: elapsed,
          });
          const parts = Object.entries(lastLosses)
            .filter(([k]) => k !== "total" && !/_\d+$/.test(k))
            .map(([k, v]) => `${k.replace(/^loss_/, "")} ${v.toFixed(3)}`);
          log(
            `iter ${iteration}/${max}  loss ${lastLosses.total!.toFixed(4)} (${parts.join(", ")})  ` +
              `lr ${(c.solver.lr * factor).toExponential(2)}  ${itps.toFixed(2)} it/s  ` +
              `ETA ${formatSeconds((max - iteration) / Math.max(itps, 1e-9))}  data idle ${(idle * 100).toFixed(1)}%`,
          );
        }
      }
      if (iteration % c.train.checkpointEvery === 0 || iteration === max) saveNow();
      if (c.train.evalEvery > 0 && iteration % c.train.evalEvery === 0) await evaluateNow();
    }
    if (iteration === stopAt && iteration !== max && iteration % c.train.checkpointEvery !== 0) saveNow();
    if (iteration === max && rank === 0) {
      model.save(join(o.out, "model_final.safetensors"));
      log(`done: ${join(o.out, "model_final.safetensors")}`);
    }
    return { iteration, losses: lastLosses, checkpoint, dataIdleShare: loader.stats().idleShare };
  } finally {
    await loader.close();
    fixedText?.dispose();
    dispose(setup.frozenRows.map((r) => r.saved));
    model.dispose();
    if (diffusion && typeof o.diffusion === "string") (diffusion as { dispose?: () => void }).dispose?.();
  }
}

function buildModel(c: TrainConfig, o: TrainOptions): DedosModel {
  const w = o.weights ?? {};
  if (w.dedos) {
    const m = DedosModel.fromFile(w.dedos, { config: c.model });
    return m;
  }
  const init = { generator: new Generator(o.initSeed ?? c.train.seed) };
  const model = w.catseg ? DedosModel.fromCatSeg(w.catseg, c.model, init) : new DedosModel(c.model, init);
  if (w.clip) model.loadClip(w.clip);
  return model;
}

function countParams(d: DiffusionComponents): number {
  return d.unet.numParameters() + d.vae.numParameters();
}

function tensorState(t: Tensor): string {
  try {
    return tensorToBase64(t);
  } finally {
    t.dispose();
  }
}

/** Every rank's string, in rank order (RNG states differ per rank). */
function gatherStrings(mine: string): string[] {
  if (!dist.isInitialized() || dist.getWorldSize() === 1) return [mine];
  // Fixed-size all-reduce: each rank writes its bytes into its own slot.
  const world = dist.getWorldSize();
  const rank = dist.getRank();
  const bytes = Buffer.from(mine, "utf8");
  const len = tidy(() => dist.allReduce(tensorFromNumbers([bytes.length]), "max").item());
  return tidy(() => {
    const buf = new Float64Array(world * (len + 1));
    buf[rank * (len + 1)] = bytes.length;
    for (let i = 0; i < bytes.length; i++) buf[rank * (len + 1) + 1 + i] = bytes[i]!;
    const all = dist.allReduce(tensorFromNumbers(Array.from(buf)), "sum").toTypedArray() as Float64Array;
    const out: string[] = [];
    for (let r = 0; r < world; r++) {
      const n = all[r * (len + 1)]!;
      out.push(
        Buffer.from(Array.from(all.subarray(r * (len + 1) + 1, r * (len + 1) + 1 + n))).toString("utf8"),
      );
    }
    return out;
  });
}

/** A float64 tensor (exact for bytes and lengths). */
function tensorFromNumbers(v: number[]): Tensor {
  return tensor(Float64Array.from(v), [v.length]);
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

function appendMetrics(file: string, record: Record<string, unknown>): void {
  const prev = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
  writeFileAtomicSync(file, Buffer.concat([prev, Buffer.from(`${JSON.stringify(record)}\n`)]));
}

/** After a resume, drop log lines of iterations past the checkpoint (they will be run again). */
function truncateMetrics(file: string, iteration: number): void {
  if (!existsSync(file)) return;
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  const keep = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { iteration: number }).iteration <= iteration;
    } catch {
      return false;
    }
  });
  writeFileAtomicSync(file, Buffer.from(keep.map((l) => `${l}\n`).join("")));
}
