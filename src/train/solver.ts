// Optimisation of DEDOS / CAT-Seg (spec §7): which parameters train, AdamW parameter groups, the cosine
// learning-rate schedule with optional linear warmup (detectron2 WarmupCosineLR), and CLIP's q/v-only
// attention fine-tuning on packed in_proj weights.

import type { DedosModel } from "../dedos/model.js";
import * as dist from "../torch/distributed.js";
import * as nn from "../torch/nn/layers.js";
import type { Module } from "../torch/nn/module.js";
import { type AdamW, type AdamWGroup, clipGradNorm } from "../torch/optim.js";
import { noGrad, type Tensor, tidy } from "../torch/tensor.js";

export interface SolverConfig {
  /** BASE_LR (2e-4). */
  lr: number;
  /** WEIGHT_DECAY (1e-4). */
  weightDecay: number;
  /** WEIGHT_DECAY_NORM: norm layers' weights and biases (0). */
  weightDecayNorm: number;
  /** WEIGHT_DECAY_EMBED: embeddings and learned query/position tables (0). */
  weightDecayEmbed: number;
  /** BACKBONE_MULTIPLIER: lr factor of CLIP's parameters (0.01). */
  clipLrMultiplier: number;
  betas: [number, number];
  eps: number;
  /** MAX_ITER (80k). */
  maxIter: number;
  /** WARMUP_ITERS (0) and WARMUP_FACTOR (0.001, linear warmup). */
  warmupIters: number;
  warmupFactor: number;
  /** CLIP_GRADIENTS full_model, CLIP_VALUE (0.01); 0 disables clipping. */
  gradClip: number;
  /**
   * Mixed precision: "off" (float32), "bf16" (autocast to bfloat16; CPU and CUDA) or "fp16" (autocast to
   * float16 with dynamic loss scaling; CUDA only).
   */
  amp: "off" | "bf16" | "fp16";
}

export const DEFAULT_SOLVER: Readonly<SolverConfig> = Object.freeze({
  lr: 2e-4,
  weightDecay: 1e-4,
  weightDecayNorm: 0,
  weightDecayEmbed: 0,
  clipLrMultiplier: 0.01,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  maxIter: 80000,
  warmupIters: 0,
  warmupFactor: 0.001,
  gradClip: 0.01,
  amp: "off",
});

/** detectron2 WarmupCosineLR: factor of the base lr at iteration `it` (0-based, before the step). */
export function cosineLrFactor(
  it: number,
  s: Pick<SolverConfig, "maxIter" | "warmupIters" | "warmupFactor">,
): number {
  let warm = 1;
  if (it < s.warmupIters) {
    const alpha = it / s.warmupIters;
    warm = s.warmupFactor * (1 - alpha) + alpha;
  }
  // Past maxIter the cosine would rise again; hold it at 0 as detectron2's scheduler does at the end.
  if (it >= s.maxIter) return 0;
  return warm * 0.5 * (1 + Math.cos((Math.PI * it) / s.maxIter));
}

/** Where CLIP lives in a DedosModel's state dict. */
export const CLIP_PARAM_PREFIX = "catseg.sem_seg_head.predictor.clip_model.";

/** Rows of a packed parameter that stay frozen although the tensor trains (CLIP's k projection). */
export interface FrozenRows {
  name: string;
  param: Tensor;
  start: number;
  length: number;
  /** The frozen values (restored after every optimizer step, so weight decay cannot move them). */
  saved: Tensor;
}

export interface TrainableSetup {
  /** AdamW groups: (clip | rest) × (decay | no decay), empty groups dropped. */
  groups: (AdamWGroup & { name: string; baseLr: number })[];
  /** Parameter names per group, same order as `groups[i].params`. */
  names: string[][];
  frozenRows: FrozenRows[];
  trainable: number;
  frozen: number;
}

const NORM_TYPES = [nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d];
/** Learned tables that are embeddings in all but type (no weight decay, as detectron2 treats nn.Embedding). */
const EMBED_NAME =
  /(^|\.)(\w*embed\w*|\w*kernel|query_feat|\w*pos\w*|relative_position_bias_table|pad_token\w*)$/;

/**
 * Sets requires_grad as spec §7 says and builds the optimizer groups:
 * - Stable Diffusion is not in the model; the CAT-Seg head (Aggregator, guidance upsampling) trains when its
 *   branch runs; every DEDOS module trains.
 * - CLIP with `clip.finetune = attention`: the q and v projections of every attention layer of the image
 *   tower, and of the text tower unless `clip.finetuneText = false`, as CAT-Seg's "attention" setting
 *   (its names `q_proj_weight` / `v_proj_weight`; biases, k, out_proj, MLPs, norms and embeddings frozen).
 *   This model holds the three projections packed in `in_proj_weight`: the tensor trains, its k rows get a
 *   zero gradient (`maskFrozenGradients`) and are restored after each step (`restoreFrozenRows`).
 */
export function setupTrainable(model: DedosModel, s: SolverConfig): TrainableSetup {
  model.requiresGrad_(false);
  const c = model.config;
  const train = (m: Module | null) => m?.requiresGrad_(true);
  train(model.proxy);
  train(model.injection);
  train(model.text_memory);
  train(model.mask_head);
  train(model.consistency);
  if (model.usesCostBranch) {
    train(model.catseg.aggregator);
    train(model.catseg.upsample1);
    train(model.catseg.upsample2);
  }
  const frozenRows: FrozenRows[] = [];
  if (c.clip.finetune === "attention") {
    const towers = ["visual.transformer.", ...(model.textTowerTrains ? ["transformer."] : [])];
    for (const [name, p] of model.catseg.clip.namedParameters()) {
      if (!towers.some((t) => name.startsWith(t)) || !name.endsWith(".attn.in_proj_weight")) continue;
      p.requiresGrad_(true);
      const D = p.size(1);
      frozenRows.push({
        name: CLIP_PARAM_PREFIX + name,
        param: p,
        start: D,
        length: D,
        saved: noGrad(() => p.narrow(0, D, D).clone()).keep(),
      });
    }
  }

  const noDecayNorm = new Set<Tensor>();
  for (const [, m] of model.namedModules())
    if (NORM_TYPES.some((T) => m instanceof T) || m instanceof nn.Embedding)
      for (const p of m.parameters()) noDecayNorm.add(p);

  const buckets = new Map<string, { params: Tensor[]; names: string[]; wd: number; lr: number }>();
  let trainable = 0;
  let frozen = 0;
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) {
      frozen += p.numel;
      continue;
    }
    trainable += p.numel;
    const clip = name.startsWith(CLIP_PARAM_PREFIX);
    const isNorm = noDecayNorm.has(p);
    const isEmbed = !isNorm && EMBED_NAME.test(name);
    const wd = isNorm ? s.weightDecayNorm : isEmbed ? s.weightDecayEmbed : s.weightDecay;
    const key = `${clip ? "clip" : "head"}${wd === s.weightDecay ? "" : `_wd${wd}`}`;
    let b = buckets.get(key);
    if (!b) {
      b = { params: [], names: [], wd, lr: s.lr * (clip ? s.clipLrMultiplier : 1) };
      buckets.set(key, b);
    }
    b.params.push(p);
    b.names.push(name);
  }
  const groups: TrainableSetup["groups"] = [];
  const names: string[][] = [];
  for (const [key, b] of buckets) {
    groups.push({
      name: key,
      params: b.params,
      lr: b.lr,
      baseLr: b.lr,
      weightDecay: b.wd,
      betas: s.betas,
      eps: s.eps,
    });
    names.push(b.names);
  }
  return { groups, names, frozenRows, trainable, frozen };
}

/** Zeroes the gradient of the frozen rows (call after backward, before clipping and the step). */
export function maskFrozenGradients(rows: readonly FrozenRows[]): void {
  noGrad(() =>
    tidy(() => {
      for (const r of rows) r.param.grad?.narrow(0, r.start, r.length).zero_();
    }),
  );
}

/** Puts the frozen rows back after an optimizer step (AdamW's decoupled weight decay moves them). */
export function restoreFrozenRows(rows: readonly FrozenRows[]): void {
  noGrad(() =>
    tidy(() => {
      for (const r of rows) r.param.narrow(0, r.start, r.length).copy_(r.saved);
    }),
  );
}

/** The training objective: the sum of the named losses, in name order (a fixed order: reproducible sums). */
export function totalLoss(losses: Record<string, Tensor>): Tensor {
  const names = Object.keys(losses).sort();
  if (names.length === 0) throw new Error("totalLoss: no losses");
  return tidy(() => {
    let total = losses[names[0]!]!;
    for (const n of names.slice(1)) total = total.add(losses[n]!);
    return total;
  });
}

/**
 * Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler's rule): the loss is multiplied by
 * `scale` before backward; gradients are divided by it before clipping; a step whose gradients are not
 * finite is skipped and halves the scale; `growthInterval` finite steps in a row double it.
 */
export class LossScaler {
  constructor(
    public scale = 65536,
    public goodSteps = 0,
    readonly growthInterval = 2000,
  ) {}

  /** Divides the gradients by the scale; false when any is NaN / ±Inf (then the step must be skipped). */
  unscale(params: readonly Tensor[]): boolean {
    return noGrad(() =>
      tidy(() => {
        let finite = true;
        for (const p of params) {
          const g = p.grad;
          if (!g) continue;
          g.mul_(1 / this.scale);
          if (finite && !g.isfinite().all().item()) finite = false;
        }
        return finite;
      }),
    );
  }

  update(finite: boolean): void {
    if (!finite) {
      this.scale /= 2;
      this.goodSteps = 0;
    } else if (++this.goodSteps >= this.growthInterval) {
      this.scale *= 2;
      this.goodSteps = 0;
    }
  }
}

/**
 * The update after `backward()`: gradients averaged over the process group (when one is initialised),
 * unscaled (float16 loss scaling; a non-finite step is skipped, returning false), CLIP's frozen k rows
 * masked, full-model clipping, the AdamW step, the frozen rows restored.
 */
export function applyUpdate(
  setup: TrainableSetup,
  optimizer: AdamW,
  gradClip: number,
  scaler: LossScaler | null = null,
): boolean {
  const params = setup.groups.flatMap((g) => g.params);
  if (dist.isInitialized() && dist.getWorldSize() > 1) dist.allReduceGradients(params, { average: true });
  if (scaler) {
    const finite = scaler.unscale(params);
    scaler.update(finite);
    if (!finite) {
      optimizer.zeroGrad();
      return false;
    }
  }
  maskFrozenGradients(setup.frozenRows);
  if (gradClip > 0) clipGradNorm(params, gradClip);
  optimizer.step();
  restoreFrozenRows(setup.frozenRows);
  return true;
}
