// Set criterion of the mask-classification head (DEDOS-SPEC §6; Mask2Former's SetCriterion): semantic
// ground truth → one binary mask per present class, Hungarian matching per decoder layer, then CE over the
// K classes + "other", a focal or BCE mask loss and a dice loss, on importance-sampled points or full masks.

import * as dist from "../torch/distributed.js";
import * as F from "../torch/functional.js";
import { bincount, cat, type Generator, noGrad, type Tensor, tensor, tidy, where } from "../torch/tensor.js";
import type { LossConfig } from "./config.js";
import {
  HungarianMatcher,
  type MaskTarget,
  type MatchIndices,
  pointSample,
  randomPoints,
} from "./matcher.js";

/** One image's semantic targets: the classes present (increasing) and their masks (M, H, W) float 0/1. */
export interface SemanticTarget extends MaskTarget {
  labels: Int32Array;
  masks: Tensor;
}

/**
 * Mask2Former's semantic dataset mapper on a batch of label maps `gt` (B, H, W) (any integer type): for
 * each image, every class present except `ignoreLabel`, in increasing order, with its binary mask. Ignored
 * pixels are 0 in every mask. Labels outside [0, numClasses) other than `ignoreLabel` throw.
 */
export function semanticTargets(gt: Tensor, ignoreLabel: number, numClasses: number): SemanticTarget[] {
  if (gt.ndim !== 3) throw new Error(`semanticTargets: gt must be (B, H, W), got [${gt.shape}]`);
  return noGrad(() =>
    tidy(() => {
      const g = gt.long();
      const valid = g.ne(ignoreLabel);
      const labels = g.mul(valid.long()); // ignored → 0 for the range check
      if (g.numel > 0) {
        const lo = labels.min().item();
        const hi = labels.max().item();
        if (lo < 0 || hi >= numClasses)
          throw new Error(
            `semanticTargets: label ${lo < 0 ? lo : hi} is outside 0..${numClasses - 1} (ignore label ${ignoreLabel})`,
          );
      }
      const binned = where(valid, g, numClasses); // ignored → bin numClasses
      const out: SemanticTarget[] = [];
      for (let b = 0; b < gt.size(0); b++) {
        const counts = bincount(binned.select(0, b).flatten(), numClasses + 1)
          .to({ dtype: "float64", device: "cpu" })
          .toTypedArray();
        const present: number[] = [];
        for (let k = 0; k < numClasses; k++) if (counts[k]! > 0) present.push(k);
        const cls = Int32Array.from(present);
        const ids = tensor(cls, [cls.length]).to({ dtype: "int64", device: gt.device });
        const masks = g
          .select(0, b)
          .unsqueeze(0)
          .eq(ids.view(cls.length, 1, 1))
          .float();
        out.push({ labels: cls, masks });
      }
      return out;
    }),
  );
}

/**
 * PointRend's `get_uncertain_point_coords_with_randomness` with uncertainty −|logit| (Mask2Former):
 * ⌊points·oversampleRatio⌋ uniform points per mask, the ⌊importanceSampleRatio·points⌋ most uncertain kept,
 * the rest new uniform points. `logits` (R, 1, h, w) → coordinates (R, points, 2) in [0, 1]². No gradients.
 */
export function uncertainPointCoords(
  logits: Tensor,
  points: number,
  oversampleRatio: number,
  importanceSampleRatio: number,
  generator?: Generator,
): Tensor {
  if (!(oversampleRatio >= 1))
    throw new Error(`uncertainPointCoords: oversampleRatio ${oversampleRatio} < 1`);
  if (!(importanceSampleRatio >= 0 && importanceSampleRatio <= 1))
    throw new Error(`uncertainPointCoords: importanceSampleRatio ${importanceSampleRatio} is not in [0, 1]`);
  if (logits.ndim !== 4 || logits.size(1) !== 1)
    throw new Error(`uncertainPointCoords: logits must be (R, 1, h, w), got [${logits.shape}]`);
  return noGrad(() =>
    tidy(() => {
      const R = logits.size(0);
      const sampled = Math.trunc(points * oversampleRatio);
      const nUncertain = Math.trunc(importanceSampleRatio * points);
      const nRandom = points - nUncertain;
      const coords = randomPoints([R, sampled], logits.device, generator);
      const uncertainty = pointSample(logits, coords).select(1, 0).abs().neg(); // (R, sampled)
      const [, idx] = uncertainty.topk(nUncertain, 1);
      let chosen = coords.gather(1, idx.unsqueeze(2).expand(R, nUncertain, 2));
      if (nRandom > 0) chosen = cat([chosen, randomPoints([R, nRandom], logits.device, generator)], 1);
      return chosen;
    }),
  );
}

/** One decoder layer's prediction: class logits (B, N, K+1) and mask logits (B, N, h, w). */
export interface MaskPrediction {
  classLogits: Tensor;
  masks: Tensor;
}

export interface CriterionOptions {
  /** Draws the matcher's and the importance sampling's points (the default generator without one). */
  generator?: Generator;
  /**
   * The mask count the mask and dice losses are divided by (then clamped to ≥ 1): a number, or a function
   * of the local count (the target masks of this batch, Σ M_b). Default: the local count, averaged over the ranks
   * (all-reduce) when a process group is initialised, as Mask2Former.
   */
  numMasks?: number | ((localCount: number) => number);
  /**
   * The class-weight sum the cross entropy is divided by: PyTorch's weighted mean divides by the local
   * Σ weight[target]; a function of that local sum replaces it. Default: the local sum averaged over the
   * ranks when a process group is initialised, so that N processes average to exactly one process's loss
   * over the whole batch (as `numMasks`).
   */
  classWeightSum?: (localSum: number) => number;
}

/** The local mask count averaged over the ranks of the process group (the local count without one). */
export function globalNumMasks(localCount: number): number {
  if (!dist.isInitialized()) return localCount;
  return tidy(() => dist.allReduce(tensor([localCount], [1]), "avg").item());
}

/** The unweighted loss terms of one prediction. */
export interface MaskLosses {
  ce: Tensor;
  mask: Tensor;
  dice: Tensor;
}

/**
 * Mask2Former's SetCriterion with MaskFormer's focal option (LossConfig): `forward` returns the named
 * scalar losses, each already multiplied by its weight: `loss_ce`, `loss_mask`, `loss_dice` for the final
 * (last) prediction and `loss_ce_{i}`, `loss_mask_{i}`, `loss_dice_{i}` for the earlier ones (deep
 * supervision). Each prediction is matched on its own.
 */
export class SetCriterion {
  readonly matcher: HungarianMatcher;

  constructor(
    readonly config: LossConfig,
    matcher?: HungarianMatcher,
  ) {
    this.matcher = matcher ?? HungarianMatcher.fromLossConfig(config);
  }

  /**
   * `predictions`: decoder layers in order (last = final); `gt`: label maps (B, H, W) with
   * config.ignoreLabel, or ready targets. The class count K is classLogits.size(-1) − 1.
   */
  forward(
    predictions: MaskPrediction[],
    gt: Tensor | MaskTarget[],
    opts: CriterionOptions = {},
  ): Record<string, Tensor> {
    if (predictions.length === 0) throw new Error("SetCriterion: no predictions");
    const final = predictions[predictions.length - 1]!;
    const K = final.classLogits.size(-1) - 1;
    return tidy(() => {
      const targets = Array.isArray(gt) ? gt : semanticTargets(gt, this.config.ignoreLabel, K);
      const local = targets.reduce((s, t) => s + t.masks.size(0), 0);
      const n =
        typeof opts.numMasks === "number"
          ? opts.numMasks
          : opts.numMasks
            ? opts.numMasks(local)
            : globalNumMasks(local);
      const numMasks = Math.max(n, 1);
      const c = this.config;
      const out: Record<string, Tensor> = {};
      const add = (p: MaskPrediction, suffix: string) => {
        const indices = this.matcher.match(p.classLogits, p.masks, targets, opts.generator);
        const l = this.losses(p, targets, indices, numMasks, opts.generator, opts.classWeightSum);
        out[`loss_ce${suffix}`] = l.ce.mul(c.classWeight);
        out[`loss_mask${suffix}`] = l.mask.mul(c.maskWeight);
        out[`loss_dice${suffix}`] = l.dice.mul(c.diceWeight);
      };
      add(final, "");
      if (c.deepSupervision) for (let i = 0; i < predictions.length - 1; i++) add(predictions[i]!, `_${i}`);
      return out;
    });
  }

  /** The unweighted CE, mask and dice losses of one prediction under a given matching. */
  losses(
    p: MaskPrediction,
    targets: MaskTarget[],
    indices: MatchIndices[],
    numMasks: number,
    generator?: Generator,
    classWeightSum?: (localSum: number) => number,
  ): MaskLosses {
    return tidy(() => ({
      ce: this.classLoss(p.classLogits, targets, indices, classWeightSum),
      ...this.maskLosses(p.masks, targets, indices, numMasks, generator),
    }));
  }

  /** Cross entropy over K + 1 classes, weight otherClassWeight on "other"; unmatched queries are "other". */
  classLoss(
    classLogits: Tensor,
    targets: MaskTarget[],
    indices: MatchIndices[],
    weightSum: (localSum: number) => number = globalNumMasks,
  ): Tensor {
    return tidy(() => {
      const [B, N, K1] = classLogits.shape as [number, number, number];
      const cls = new Int32Array(B * N).fill(K1 - 1);
      for (let b = 0; b < B; b++) {
        const lab = labelsOf(targets[b]!.labels);
        const { pred, target } = indices[b]!;
        for (let k = 0; k < pred.length; k++) cls[b * N + pred[k]!] = lab[target[k]!]!;
      }
      const device = classLogits.device;
      const weight = new Float32Array(K1).fill(1);
      weight[K1 - 1] = this.config.otherClassWeight;
      let local = 0;
      for (const k of cls) local += weight[k]!;
      const sum = F.crossEntropy(
        (classLogits.dtype === "float64" ? classLogits : classLogits.float()).transpose(1, 2),
        tensor(cls, [B, N]).to({ dtype: "int64", device }),
        { weight: tensor(weight, [K1]).to(device), reduction: "sum" },
      );
      return sum.div(weightSum(local));
    });
  }

  /** Mask (focal or BCE) and dice losses of the matched masks, each summed over masks / numMasks. */
  maskLosses(
    masks: Tensor,
    targets: MaskTarget[],
    indices: MatchIndices[],
    numMasks: number,
    generator?: Generator,
  ): { mask: Tensor; dice: Tensor } {
    return tidy(() => {
      const N = masks.size(1);
      const src: number[] = [];
      const tgts: Tensor[] = [];
      indices.forEach(({ pred, target }, b) => {
        for (const q of pred) src.push(b * N + q);
        if (target.length > 0)
          tgts.push(
            targets[b]!.masks.indexSelect(
              0,
              tensor(target, [target.length]).to({ dtype: "int64", device: masks.device }),
            ),
          );
      });
      if (src.length === 0) {
        // 0 connected to the graph (every parameter gets a gradient); + 0 turns −0 into 0.
        const zero = masks.sum().mul(0).add(0);
        return { mask: zero, dice: zero.clone() };
      }
      const logitsAll = masks.dtype === "float64" ? masks : masks.float();
      const srcMasks = logitsAll
        .flatten(0, 1)
        .indexSelect(
          0,
          tensor(Int32Array.from(src), [src.length]).to({ dtype: "int64", device: masks.device }),
        )
        .unsqueeze(1); // (M, 1, h, w)
      const tgtMasks = cat(tgts, 0).to(srcMasks.dtype).unsqueeze(1); // (M, 1, H, W)
      const c = this.config;
      let logits: Tensor;
      let labels: Tensor;
      if (c.points > 0) {
        const coords = uncertainPointCoords(
          srcMasks.detach(),
          c.points,
          c.oversampleRatio,
          c.importanceSampleRatio,
          generator,
        );
        labels = noGrad(() => pointSample(tgtMasks, coords).squeeze(1));
        logits = pointSample(srcMasks, coords).squeeze(1); // (M, P)
      } else {
        const [H, W] = [tgtMasks.size(2), tgtMasks.size(3)];
        const up =
          srcMasks.size(2) === H && srcMasks.size(3) === W
            ? srcMasks
            : F.interpolate(srcMasks, { size: [H, W], mode: "bilinear", alignCorners: false });
        logits = up.flatten(1);
        labels = tgtMasks.flatten(1);
      }
      const perPoint =
        c.maskLoss === "focal"
          ? F.sigmoidFocalLoss(logits, labels, { alpha: 0.25, gamma: 2, reduction: "none" })
          : F.binaryCrossEntropyWithLogits(logits, labels, { reduction: "none" });
      return {
        mask: perPoint.mean(1).sum().div(numMasks),
        dice: F.diceLoss(logits, labels).sum().div(numMasks),
      };
    });
  }
}

function labelsOf(l: Int32Array | Tensor): ArrayLike<number> {
  return l instanceof Int32Array ? l : (l.to({ dtype: "int32", device: "cpu" }).toTypedArray() as Int32Array);
}
