// Hungarian matching of the mask-classification head (DEDOS-SPEC §6): an exact rectangular linear-sum
// assignment solver, PointRend/Mask2Former point sampling (bilinear, align_corners = False, zero padding)
// built from gather, and the matcher whose cost is −class probability + mask BCE + mask dice.

import * as F from "../torch/functional.js";
import {
  type Generator,
  noGrad,
  onesLike,
  rand,
  stack,
  Tensor,
  tensor,
  tidy,
  zerosLike,
} from "../torch/tensor.js";
import type { LossConfig } from "./config.js";

// ---------------------------------------------------------------------------------------------------------
// Linear sum assignment

/** A minimum-cost assignment: row `rows[k]` is matched to column `cols[k]`, rows in increasing order. */
export interface Assignment {
  rows: Int32Array;
  cols: Int32Array;
}

/**
 * Exact minimum-cost assignment of a row-major `rows × cols` cost matrix, as
 * scipy.optimize.linear_sum_assignment: min(rows, cols) pairs, each row and column used at most once, the
 * pairs sorted by row. Shortest augmenting paths with dual variables (Jonker–Volgenant style), O(n²·m).
 * Negative costs are fine; NaN or ±Infinity throws naming the entry.
 */
export function linearSumAssignment(cost: ArrayLike<number>, rows: number, cols: number): Assignment {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0)
    throw new Error(`linearSumAssignment: bad shape ${rows}×${cols}`);
  if (cost.length !== rows * cols)
    throw new Error(`linearSumAssignment: ${cost.length} costs for a ${rows}×${cols} matrix`);
  for (let k = 0; k < cost.length; k++) {
    const c = cost[k]!;
    if (!Number.isFinite(c))
      throw new Error(
        `linearSumAssignment: cost[${Math.floor(k / cols)}][${k % cols}] is ${c} (costs must be finite)`,
      );
  }
  if (rows === 0 || cols === 0) return { rows: new Int32Array(0), cols: new Int32Array(0) };
  // Solve with no more rows than columns; transpose otherwise.
  const transpose = rows > cols;
  const nr = transpose ? cols : rows;
  const nc = transpose ? rows : cols;
  const c = new Float64Array(nr * nc);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const v = cost[i * cols + j]!;
      if (transpose) c[j * nc + i] = v;
      else c[i * nc + j] = v;
    }
  const col4row = solveRowsLeCols(c, nr, nc);
  const n = nr;
  const outRows = new Int32Array(n);
  const outCols = new Int32Array(n);
  if (!transpose) {
    for (let i = 0; i < n; i++) {
      outRows[i] = i;
      outCols[i] = col4row[i]!;
    }
  } else {
    // Row i of the transposed problem is original column i; sort the pairs by original row.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => col4row[a]! - col4row[b]!);
    order.forEach((i, k) => {
      outRows[k] = col4row[i]!;
      outCols[k] = i;
    });
  }
  return { rows: outRows, cols: outCols };
}

/** Assigns every row of an nr × nc (nr ≤ nc) matrix; returns the column of each row. */
function solveRowsLeCols(c: Float64Array, nr: number, nc: number): Int32Array {
  const u = new Float64Array(nr);
  const v = new Float64Array(nc);
  const dist = new Float64Array(nc);
  const path = new Int32Array(nc).fill(-1);
  const col4row = new Int32Array(nr).fill(-1);
  const row4col = new Int32Array(nc).fill(-1);
  const inSR = new Uint8Array(nr);
  const inSC = new Uint8Array(nc);
  const remaining = new Int32Array(nc);

  for (let cur = 0; cur < nr; cur++) {
    // Dijkstra over reduced costs from row `cur` to the nearest unassigned column.
    let minVal = 0;
    let i = cur;
    let nRemaining = nc;
    for (let j = 0; j < nc; j++) remaining[j] = nc - 1 - j;
    inSR.fill(0);
    inSC.fill(0);
    dist.fill(Number.POSITIVE_INFINITY);
    let sink = -1;
    while (sink === -1) {
      let index = -1;
      let lowest = Number.POSITIVE_INFINITY;
      inSR[i] = 1;
      const base = i * nc;
      for (let it = 0; it < nRemaining; it++) {
        const j = remaining[it]!;
        const r = minVal + c[base + j]! - u[i]! - v[j]!;
        if (r < dist[j]!) {
          path[j] = i;
          dist[j] = r;
        }
        // Ties prefer a free column (shorter augmenting path).
        if (dist[j]! < lowest || (dist[j] === lowest && row4col[j] === -1)) {
          lowest = dist[j]!;
          index = it;
        }
      }
      minVal = lowest;
      if (index < 0 || !Number.isFinite(minVal))
        throw new Error("linearSumAssignment: infeasible cost matrix");
      const j = remaining[index]!;
      if (row4col[j] === -1) sink = j;
      else i = row4col[j]!;
      inSC[j] = 1;
      remaining[index] = remaining[--nRemaining]!;
    }
    // Dual update.
    u[cur] = u[cur]! + minVal;
    for (let r = 0; r < nr; r++) if (inSR[r] && r !== cur) u[r] = u[r]! + minVal - dist[col4row[r]!]!;
    for (let j = 0; j < nc; j++) if (inSC[j]) v[j] = v[j]! - (minVal - dist[j]!);
    // Augment along the path back to `cur`.
    let j = sink;
    for (;;) {
      const r = path[j]!;
      row4col[j] = r;
      const prev = col4row[r]!;
      col4row[r] = j;
      j = prev;
      if (r === cur) break;
    }
  }
  return col4row;
}

// ---------------------------------------------------------------------------------------------------------
// Point sampling

/**
 * PointRend's `point_sample` (detectron2): bilinear values of `input` (N, C, H, W) at `coords` (N or 1, P, 2)
 * given as (x, y) in [0, 1]² — F.grid_sample(input, 2·coords − 1, align_corners = False) with zero padding.
 * Returns (N, C, P); differentiable with respect to `input` (a gather of the four neighbours).
 */
export function pointSample(input: Tensor, coords: Tensor): Tensor {
  if (input.ndim !== 4) throw new Error(`pointSample: input must be (N, C, H, W), got [${input.shape}]`);
  if (coords.ndim !== 3 || coords.size(2) !== 2)
    throw new Error(`pointSample: coords must be (N, P, 2), got [${coords.shape}]`);
  const [N, C, H, W] = input.shape as [number, number, number, number];
  const Nc = coords.size(0);
  if (Nc !== N && Nc !== 1) throw new Error(`pointSample: ${Nc} coordinate sets for ${N} inputs`);
  const P = coords.size(1);
  return tidy(() => {
    const xy = coords.to(input.dtype === "float64" ? "float64" : "float32");
    const ix = xy.select(2, 0).mul(W).sub(0.5); // (Nc, P) pixel coordinates, centres at integers
    const iy = xy.select(2, 1).mul(H).sub(0.5);
    const x0 = ix.floor();
    const y0 = iy.floor();
    const wx1 = ix.sub(x0);
    const wy1 = iy.sub(y0);
    const wx0 = wx1.rsub(1);
    const wy0 = wy1.rsub(1);
    const x1 = x0.add(1);
    const y1 = y0.add(1);
    const corners: [Tensor, Tensor, Tensor][] = [
      [x0, y0, wx0.mul(wy0)],
      [x1, y0, wx1.mul(wy0)],
      [x0, y1, wx0.mul(wy1)],
      [x1, y1, wx1.mul(wy1)],
    ];
    const idx: Tensor[] = [];
    const wts: Tensor[] = [];
    for (const [x, y, w] of corners) {
      const inside = x
        .ge(0)
        .logicalAnd(x.le(W - 1))
        .logicalAnd(y.ge(0))
        .logicalAnd(y.le(H - 1));
      idx.push(
        y
          .clamp(0, H - 1)
          .mul(W)
          .add(x.clamp(0, W - 1))
          .long(),
      );
      wts.push(w.mul(inside.to(w.dtype)));
    }
    const index = stack(idx, 1)
      .view(Nc, 1, 4 * P)
      .expand(N, C, 4 * P); // (N, C, 4P)
    const weight = stack(wts, 1).to(input.dtype).view(Nc, 1, 4, P);
    const vals = input
      .reshape(N, C, H * W)
      .gather(2, index)
      .view(N, C, 4, P);
    return vals.mul(weight).sum(2);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Matcher

/** Ground truth of one image: class ids (M) and binary masks (M, H, W) as float 0/1. */
export interface MaskTarget {
  labels: Int32Array | Tensor;
  masks: Tensor;
}

/** Matched pairs of one image: prediction (query) `pred[k]` ↔ target `target[k]`, queries increasing. */
export interface MatchIndices {
  pred: Int32Array;
  target: Int32Array;
}

export interface MatcherOptions {
  costClass: number;
  costMask: number;
  costDice: number;
  /** Points sampled uniformly per image (shared by predictions and targets); 0 = full masks. */
  points: number;
}

/** The labels as an int64 tensor on `device`. */
export function labelTensor(labels: Int32Array | Tensor, device: string): Tensor {
  if (labels instanceof Tensor) return labels.to({ dtype: "int64", device });
  return tidy(() => tensor(labels, [labels.length]).to({ dtype: "int64", device }));
}

/** Mask2Former's `batch_sigmoid_ce_loss`: mean over points of BCE(pred n, target m) → (N, M). */
export function batchSigmoidCeCost(logits: Tensor, targets: Tensor): Tensor {
  return tidy(() => {
    const P = logits.size(1);
    const pos = F.binaryCrossEntropyWithLogits(logits, onesLike(logits), { reduction: "none" });
    const neg = F.binaryCrossEntropyWithLogits(logits, zerosLike(logits), { reduction: "none" });
    return pos
      .matmul(targets.mT)
      .add(neg.matmul(targets.rsub(1).mT))
      .div(P);
  });
}

/** Mask2Former's `batch_dice_loss`: 1 − (2·p·t + 1)/(Σp + Σt + 1) for every pair → (N, M). */
export function batchDiceCost(logits: Tensor, targets: Tensor): Tensor {
  return tidy(() => {
    const p = logits.sigmoid();
    const num = p.matmul(targets.mT).mul(2);
    const den = p.sum(-1).unsqueeze(1).add(targets.sum(-1).unsqueeze(0));
    return num.add(1).div(den.add(1)).rsub(1);
  });
}

/** Uniform random points in [0, 1]², drawn on the CPU from `generator` (reproducible), then moved. */
export function randomPoints(shape: [number, number], device: string, generator?: Generator): Tensor {
  const p = rand([...shape, 2], { generator });
  if (device === "cpu") return p;
  return tidy(() => p.to(device));
}

function asFloat(t: Tensor): Tensor {
  return t.dtype === "float32" || t.dtype === "float64" ? t : t.float();
}

/**
 * Mask2Former's HungarianMatcher: per image, cost = −costClass·softmax(class)[label] + costMask·BCE +
 * costDice·dice, computed on `points` uniformly sampled points shared by all predictions and targets
 * (points = 0: full masks, predictions bilinearly resized to the target size), then an exact assignment.
 */
export class HungarianMatcher {
  readonly costClass: number;
  readonly costMask: number;
  readonly costDice: number;
  readonly points: number;

  constructor(o: MatcherOptions) {
    if (o.costClass === 0 && o.costMask === 0 && o.costDice === 0)
      throw new Error("HungarianMatcher: all cost weights are 0");
    if (!Number.isInteger(o.points) || o.points < 0)
      throw new Error(`HungarianMatcher: points must be a non-negative integer, got ${o.points}`);
    this.costClass = o.costClass;
    this.costMask = o.costMask;
    this.costDice = o.costDice;
    this.points = o.points;
  }

  static fromLossConfig(c: LossConfig): HungarianMatcher {
    return new HungarianMatcher({
      costClass: c.costClass,
      costMask: c.costMask,
      costDice: c.costDice,
      points: c.points,
    });
  }

  /**
   * The (N, M) cost matrix of one image: `classLogits` (N, K+1), `masks` (N, h, w) logits, `target` with
   * M masks (M, H, W). Without gradients.
   */
  costMatrix(classLogits: Tensor, masks: Tensor, target: MaskTarget, generator?: Generator): Tensor {
    return noGrad(() =>
      tidy(() => {
        const N = masks.size(0);
        const M = target.masks.size(0);
        const device = masks.device;
        const labels = labelTensor(target.labels, device);
        if (labels.numel !== M)
          throw new Error(`HungarianMatcher: ${labels.numel} labels for ${M} target masks`);
        const prob = F.softmax(asFloat(classLogits), -1);
        const costClass = prob.indexSelect(1, labels).neg(); // (N, M)
        const outMask = asFloat(masks);
        const tgtMask = target.masks.to(outMask.dtype);
        let out: Tensor;
        let tgt: Tensor;
        if (this.points > 0) {
          const coords = randomPoints([1, this.points], device, generator);
          out = pointSample(outMask.unsqueeze(1), coords).squeeze(1); // (N, P)
          tgt = pointSample(tgtMask.unsqueeze(1), coords).squeeze(1); // (M, P)
        } else {
          const [H, W] = [tgtMask.size(1), tgtMask.size(2)];
          const sized =
            outMask.size(1) === H && outMask.size(2) === W
              ? outMask
              : F.interpolate(outMask.unsqueeze(0), {
                  size: [H, W],
                  mode: "bilinear",
                  alignCorners: false,
                }).squeeze(0);
          out = sized.reshape(N, H * W);
          tgt = tgtMask.reshape(M, H * W);
        }
        return batchSigmoidCeCost(out, tgt)
          .mul(this.costMask)
          .add(costClass.mul(this.costClass))
          .add(batchDiceCost(out, tgt).mul(this.costDice));
      }),
    );
  }

  /**
   * Matches every image of a batch: `classLogits` (B, N, K+1), `masks` (B, N, h, w), one target per image.
   * Images draw their sample points from `generator` in order (the default generator without one).
   */
  match(classLogits: Tensor, masks: Tensor, targets: MaskTarget[], generator?: Generator): MatchIndices[] {
    const B = classLogits.size(0);
    if (masks.size(0) !== B || targets.length !== B)
      throw new Error(
        `HungarianMatcher: batch of ${B} class logits, ${masks.size(0)} mask sets, ${targets.length} targets`,
      );
    if (masks.size(1) !== classLogits.size(1))
      throw new Error(
        `HungarianMatcher: ${classLogits.size(1)} class predictions but ${masks.size(1)} masks`,
      );
    const out: MatchIndices[] = [];
    for (let b = 0; b < B; b++) {
      const M = targets[b]!.masks.size(0);
      if (M === 0) {
        out.push({ pred: new Int32Array(0), target: new Int32Array(0) });
        continue;
      }
      const cost = tidy(() => {
        const c = this.costMatrix(classLogits.select(0, b), masks.select(0, b), targets[b]!, generator);
        return Float64Array.from(c.to({ dtype: "float64", device: "cpu" }).toTypedArray() as Float64Array);
      });
      const N = classLogits.size(1);
      const a = linearSumAssignment(cost, N, M);
      out.push({ pred: a.rows, target: a.cols });
    }
    return out;
  }
}
