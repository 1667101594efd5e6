// One training iteration: the learning rate of the schedule, the next batch, DEDOS's training losses (under
// autocast with mixed precision), their values averaged over the processes, backward (scaled for float16),
// then the update (gradients all-reduced, unscaled, clipped, the AdamW step). A non-finite loss, or a
// forward pass failing on NaN / Infinity, skips backward and update and is reported in the output (the NaN
// guard hook stops the run).
import type { DedosModel } from "../dedos/model.js";
import * as dist from "../torch/distributed.js";
import type { AdamW } from "../torch/optim.js";
import { autocast, dispose, type Generator, type Tensor, tidy } from "../torch/tensor.js";
import type { TrainConfig } from "./config.js";
import type { Batch, DataLoader } from "./loader.js";
import type { StepOutput } from "./loop.js";
import { applyUpdate, cosineLrFactor, type LossScaler, type TrainableSetup, totalLoss } from "./solver.js";

/** What a step works on. */
export interface StepContext {
  config: TrainConfig;
  model: DedosModel;
  setup: TrainableSetup;
  optimizer: AdamW;
  scaler: LossScaler | null;
  generator: Generator;
  loader: DataLoader;
  /** Where the batch goes ("cpu", "cuda:0"), and its kind for autocast. */
  device: string;
  deviceKind: "cpu" | "cuda";
  classNames: string[];
  /** The training classes' text embeddings when the text tower is frozen (else computed every step). */
  fixedText: Tensor | null;
  log: (line: string) => void;
}

/** Runs iteration `iteration + 1` (`iteration` completed before it). */
export async function trainStep(ctx: StepContext, iteration: number): Promise<StepOutput> {
  const { config: c, optimizer, setup, scaler } = ctx;
  const factor = cosineLrFactor(iteration, c.solver);
  setup.groups.forEach((g, i) => {
    optimizer.setLr(i, g.baseLr * factor);
  });
  const batch = await ctx.loader.next();
  let out: Omit<StepOutput, "lr">;
  try {
    out = tidy(() => lossesAndBackward(ctx, batch));
  } finally {
    dispose([batch.images, batch.labels]);
  }
  if (out.nonFinite === undefined && !applyUpdate(setup, optimizer, c.solver.gradClip, scaler))
    ctx.log(
      `iteration ${iteration + 1}: float16 gradients overflowed; step skipped, loss scale now ${scaler!.scale}`,
    );
  return { ...out, lr: c.solver.lr * factor };
}

function lossesAndBackward(ctx: StepContext, batch: Batch): Omit<StepOutput, "lr"> {
  const { model, scaler } = ctx;
  const text = ctx.fixedText ?? model.textEmbeddings(ctx.classNames, { cache: false });
  let losses: Record<string, Tensor>;
  try {
    losses = forward(ctx, batch, text);
  } catch (e) {
    // Diverged weights surface inside the forward first (e.g. the matcher refuses NaN costs).
    const msg = (e as Error).message;
    if (/\b(NaN|Infinity)\b/.test(msg))
      return { losses: {}, nonFinite: `non-finite values in the forward pass (${msg})` };
    throw e;
  }
  const names = Object.keys(losses).sort();
  const total = totalLoss(losses);
  // The batch's loss over all ranks: every term is normalised globally (mask counts, class-weight sums,
  // equal per-rank pixel counts), so the mean over ranks is the whole batch's value. All ranks therefore
  // see the same numbers and stop together on a NaN.
  const numbers = dist.allReduceNumbers([...names.map((n) => losses[n]!.item()), total.item()], "avg");
  const v: Record<string, number> = {};
  names.forEach((n, i) => {
    v[n] = numbers[i]!;
  });
  v.total = numbers[names.length]!;
  if (!Number.isFinite(v.total)) {
    const bad = names.filter((n) => !Number.isFinite(v[n]!));
    return { losses: v, nonFinite: `loss is ${v.total} (${bad.join(", ")})` };
  }
  ctx.optimizer.zeroGrad();
  (scaler ? total.mul(scaler.scale) : total).backward();
  return { losses: v };
}

function forward(ctx: StepContext, batch: Batch, text: Tensor): Record<string, Tensor> {
  const amp = ctx.config.solver.amp;
  const images = batch.images.to(ctx.device);
  const labels = batch.labels.to(ctx.device);
  const run = () => ctx.model.trainingLosses(images, labels, text, { generator: ctx.generator });
  return amp === "off" ? run() : autocast(ctx.deviceKind, amp === "bf16" ? "bfloat16" : "float16", run);
}
