// Semantic-segmentation metrics with the semantics of detectron2's `SemSegEvaluator`
// (detectron2/evaluation/sem_seg_evaluation.py), on plain typed arrays.
//
// * Confusion matrix: (N+1)×(N+1), rows = prediction, columns = ground truth. GT pixels equal to the
//   ignore label are moved to column N before counting, so they never reach the [:N, :N] block that
//   every metric reads. Counting is `bincount((N+1)·pred + gt)`.
// * Metrics (×100): per-class IoU / accuracy (NaN for classes without GT pixels), mIoU, fwIoU, mACC, pACC.
// * Two mIoU definitions exist and both are always computed:
//   - "d2-main" (detectron2 since f3c1bc1, 2022-07-06): mean IoU over classes with GT pixels;
//   - "d2-v0.6" (the v0.6 release): the same IoU sum divided by the number of classes with GT *or*
//     predicted pixels, so false-positive-only classes count as 0.
//   fwIoU, mACC, pACC and the per-class values are identical in both.
// * Sums use numpy's pairwise summation so the floating-point results follow numpy's rounding.

/** Integer label maps accepted by {@link ConfusionMatrix.add}. */
export type LabelArray = Uint8Array | Uint16Array | Uint32Array | Int8Array | Int16Array | Int32Array;

/** Which mIoU definition is reported as the headline `mIoU`. */
export type MiouDefinition = "d2-main" | "d2-v0.6";

export interface SemsegMetrics {
  /** The headline mIoU (×100), per the `miou` option (default "d2-main"). */
  mIoU: number;
  /** Frequency-weighted IoU (×100). */
  fwIoU: number;
  /** Mean per-class accuracy over classes with GT pixels (×100). */
  mACC: number;
  /** Pixel accuracy (×100). */
  pACC: number;
  /** Per-class IoU (×100), NaN for classes without GT pixels. */
  perClassIoU: Float64Array;
  /** Per-class accuracy (×100), NaN for classes without GT pixels. */
  perClassAcc: Float64Array;
  /** mIoU as detectron2 main computes it (×100). */
  mIoU_d2main: number;
  /** mIoU as detectron2 v0.6 computes it (×100). */
  mIoU_d2v06: number;
  /** Which definition `mIoU` holds. */
  miouDefinition: MiouDefinition;
}

export interface ComputeMetricsOptions {
  /** Which mIoU definition is reported as `mIoU` (default "d2-main"). */
  miou?: MiouDefinition;
}

/**
 * A detectron2-style confusion matrix over `numClasses` classes plus one extra row/column (index N) that
 * collects ignored GT pixels (and predictions of index N, if any).
 *
 * Counts are stored in a flat Float64Array (row-major, index `pred·(N+1) + gt`); float64 holds integers
 * exactly up to 2^53, and `add` refuses to let the total pixel count pass that bound.
 */
export class ConfusionMatrix {
  readonly numClasses: number;
  readonly ignoreLabel: number;
  /** N + 1: the side of the matrix. */
  readonly size: number;
  private readonly _counts: Float64Array;
  private _pixels = 0;

  constructor(numClasses: number, ignoreLabel: number) {
    if (!Number.isInteger(numClasses) || numClasses < 1)
      throw new Error(`ConfusionMatrix: numClasses must be a positive integer, got ${numClasses}`);
    if (!Number.isInteger(ignoreLabel))
      throw new Error(`ConfusionMatrix: ignoreLabel must be an integer, got ${ignoreLabel}`);
    this.numClasses = numClasses;
    this.ignoreLabel = ignoreLabel;
    this.size = numClasses + 1;
    this._counts = new Float64Array(this.size * this.size);
  }

  /** Builds a matrix from (N+1)² row-major counts (e.g. a gathered int64 matrix). */
  static fromCounts(
    numClasses: number,
    ignoreLabel: number,
    counts: ArrayLike<number> | ArrayLike<bigint>,
  ): ConfusionMatrix {
    const m = new ConfusionMatrix(numClasses, ignoreLabel);
    m.addMatrix(counts);
    return m;
  }

  /** Sums several matrices (of the same N and ignore label) into a new one, as detectron2 sums per-process matrices. */
  static merge(first: ConfusionMatrix, ...rest: ConfusionMatrix[]): ConfusionMatrix {
    const m = new ConfusionMatrix(first.numClasses, first.ignoreLabel);
    m.addMatrix(first);
    for (const r of rest) m.addMatrix(r);
    return m;
  }

  /** The row-major (N+1)² counts (a live view: do not modify). */
  get counts(): Float64Array {
    return this._counts;
  }

  /** Number of pixels counted so far (ignored ones included). */
  get pixels(): number {
    return this._pixels;
  }

  /** The count of pixels predicted as `pred` whose (mapped) GT is `gt`. */
  get(pred: number, gt: number): number {
    return this._counts[pred * this.size + gt]!;
  }

  reset(): void {
    this._counts.fill(0);
    this._pixels = 0;
  }

  clone(): ConfusionMatrix {
    const m = new ConfusionMatrix(this.numClasses, this.ignoreLabel);
    m._counts.set(this._counts);
    m._pixels = this._pixels;
    return m;
  }

  /**
   * Counts one image: `pred` and `gt` are equally long label maps (any layout, as long as they agree).
   * GT pixels equal to the ignore label go to column N. Valid values are 0..N for `pred` and 0..N or the
   * ignore label for `gt`; anything else throws (detectron2 would silently alias such a value into
   * another cell, or fail on the reshape).
   */
  add(pred: LabelArray, gt: LabelArray): this {
    const n = pred.length;
    if (gt.length !== n) throw new Error(`ConfusionMatrix.add: pred has ${n} pixels but gt has ${gt.length}`);
    if (this._pixels + n > Number.MAX_SAFE_INTEGER)
      throw new Error("ConfusionMatrix.add: pixel count would exceed 2^53");
    const counts = this._counts;
    const N = this.numClasses;
    const S = this.size;
    const ignore = this.ignoreLabel;
    for (let i = 0; i < n; i++) {
      const p = pred[i]!;
      let g = gt[i]!;
      if (g === ignore) g = N;
      // Unsigned compare also rejects negative values.
      if (p >>> 0 > N || g >>> 0 > N) {
        // Rolls back this call's counts so far, then throws
        this.rejectRange(pred, gt, i);
      }
      counts[p * S + g]!++;
    }
    this._pixels += n;
    return this;
  }

  /** Adds another matrix's counts (a ConfusionMatrix, or (N+1)² row-major numbers / bigints). */
  addMatrix(other: ConfusionMatrix | ArrayLike<number> | ArrayLike<bigint>): this {
    const counts = this._counts;
    if (other instanceof ConfusionMatrix) {
      if (other.numClasses !== this.numClasses)
        throw new Error(`ConfusionMatrix.addMatrix: ${other.numClasses} classes vs ${this.numClasses}`);
      if (other.ignoreLabel !== this.ignoreLabel)
        throw new Error(
          `ConfusionMatrix.addMatrix: ignore label ${other.ignoreLabel} vs ${this.ignoreLabel}`,
        );
      if (this._pixels + other._pixels > Number.MAX_SAFE_INTEGER)
        throw new Error("ConfusionMatrix.addMatrix: pixel count would exceed 2^53");
      const o = other._counts;
      for (let i = 0; i < counts.length; i++) counts[i]! += o[i]!;
      this._pixels += other._pixels;
      return this;
    }
    if (other.length !== counts.length)
      throw new Error(
        `ConfusionMatrix.addMatrix: expected ${counts.length} counts ((N+1)^2), got ${other.length}`,
      );
    const vals = new Float64Array(counts.length);
    let total = 0;
    for (let i = 0; i < vals.length; i++) {
      const raw = other[i]!;
      const v = typeof raw === "bigint" ? Number(raw) : raw;
      if (!Number.isSafeInteger(v) || v < 0 || (typeof raw === "bigint" && BigInt(v) !== raw)) {
        throw new Error(
          `ConfusionMatrix.addMatrix: count ${String(raw)} at ${i} is not a non-negative safe integer`,
        );
      }
      vals[i] = v;
      total += v;
    }
    if (this._pixels + total > Number.MAX_SAFE_INTEGER)
      throw new Error("ConfusionMatrix.addMatrix: pixel count would exceed 2^53");
    for (let i = 0; i < counts.length; i++) counts[i]! += vals[i]!;
    this._pixels += total;
    return this;
  }

  /** The counts as int64, row-major (N+1)² (detectron2's `_conf_matrix.reshape(-1)`). */
  toBigInt64Array(): BigInt64Array {
    const out = new BigInt64Array(this._counts.length);
    for (let i = 0; i < out.length; i++) out[i] = BigInt(this._counts[i]!);
    return out;
  }

  private rejectRange(pred: LabelArray, gt: LabelArray, i: number): never {
    // Roll back the pixels of this call already counted, so a failed add leaves the matrix unchanged.
    const N = this.numClasses;
    const S = this.size;
    for (let j = 0; j < i; j++) {
      let g = gt[j]!;
      if (g === this.ignoreLabel) g = N;
      this._counts[pred[j]! * S + g]!--;
    }
    const p = pred[i]!;
    const g = gt[i]!;
    if (p >>> 0 > N) throw new Error(`ConfusionMatrix.add: prediction ${p} at pixel ${i} is outside 0..${N}`);
    throw new Error(
      `ConfusionMatrix.add: GT label ${g} at pixel ${i} is outside 0..${N} and is not the ignore label ${this.ignoreLabel}`,
    );
  }
}

const PW_BLOCKSIZE = 128;

/** numpy's pairwise summation (`np.sum` of a contiguous float64 array), over a[start, start+n). */
function pairwiseSum(a: Float64Array, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i]!;
    return res;
  }
  if (n <= PW_BLOCKSIZE) {
    let r0 = a[start]!;
    let r1 = a[start + 1]!;
    let r2 = a[start + 2]!;
    let r3 = a[start + 3]!;
    let r4 = a[start + 4]!;
    let r5 = a[start + 5]!;
    let r6 = a[start + 6]!;
    let r7 = a[start + 7]!;
    const end8 = n - (n % 8);
    let i = 8;
    for (; i < end8; i += 8) {
      const k = start + i;
      r0 += a[k]!;
      r1 += a[k + 1]!;
      r2 += a[k + 2]!;
      r3 += a[k + 3]!;
      r4 += a[k + 4]!;
      r5 += a[k + 5]!;
      r6 += a[k + 6]!;
      r7 += a[k + 7]!;
    }
    let res = r0 + r1 + (r2 + r3) + (r4 + r5 + (r6 + r7));
    for (; i < n; i++) res += a[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** `np.sum(values)` for a float64 vector: the identity 0 plus the pairwise sum. */
function npSum(values: Float64Array): number {
  return 0 + pairwiseSum(values, 0, values.length);
}

/** Picks `values[i]` where `mask[i]`, in order (numpy boolean indexing). */
function select(values: Float64Array, mask: Uint8Array): Float64Array {
  let k = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) k++;
  const out = new Float64Array(k);
  k = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) out[k++] = values[i]!;
  return out;
}

function countTrue(mask: Uint8Array): number {
  let k = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) k++;
  return k;
}

/**
 * detectron2 `SemSegEvaluator.evaluate()` on a confusion matrix: per-class IoU / accuracy and the scalar
 * metrics, all ×100. Both mIoU definitions are returned; `options.miou` picks the headline `mIoU`.
 */
export function computeMetrics(conf: ConfusionMatrix, options: ComputeMetricsOptions = {}): SemsegMetrics {
  const miouDefinition = options.miou ?? "d2-main";
  if (miouDefinition !== "d2-main" && miouDefinition !== "d2-v0.6")
    throw new Error(`computeMetrics: unknown miou definition ${String(miouDefinition)}`);
  const N = conf.numClasses;
  const S = conf.size;
  const c = conf.counts;

  // tp = diag[:-1]; pos_gt = conf[:-1,:-1].sum(0); pos_pred = conf[:-1,:-1].sum(1) (integers, exact in float64).
  const tp = new Float64Array(N);
  const posGt = new Float64Array(N);
  const posPred = new Float64Array(N);
  for (let p = 0; p < N; p++) {
    const row = p * S;
    let rowSum = 0;
    for (let g = 0; g < N; g++) {
      const v = c[row + g]!;
      rowSum += v;
      posGt[g]! += v;
    }
    posPred[p] = rowSum;
    tp[p] = c[row + p]!;
  }

  const totalGt = npSum(posGt);
  const classWeights = new Float64Array(N);
  for (let i = 0; i < N; i++) classWeights[i] = posGt[i]! / totalGt;

  const acc = new Float64Array(N).fill(Number.NaN);
  const iou = new Float64Array(N).fill(Number.NaN);
  const accValid = new Uint8Array(N);
  const iouValidMain = new Uint8Array(N);
  const iouValidV06 = new Uint8Array(N);
  for (let i = 0; i < N; i++) {
    const union = posGt[i]! + posPred[i]! - tp[i]!;
    if (posGt[i]! > 0) {
      accValid[i] = 1;
      acc[i] = tp[i]! / posGt[i]!;
      if (union > 0) {
        iouValidMain[i] = 1;
        iou[i] = tp[i]! / union;
      }
    }
    if (posGt[i]! + posPred[i]! > 0) iouValidV06[i] = 1;
  }

  const macc = npSum(select(acc, accValid)) / countTrue(accValid);
  // main: iou_valid = acc_valid & union > 0; v0.6: iou over acc_valid, divided by #(pos_gt + pos_pred > 0).
  // (union ≥ pos_gt, so both numerators select the same classes.)
  const iouSum = npSum(select(iou, iouValidMain));
  const miouMain = iouSum / countTrue(iouValidMain);
  const miouV06 = npSum(select(iou, accValid)) / countTrue(iouValidV06);
  const weighted = select(iou, iouValidMain);
  const w = select(classWeights, iouValidMain);
  for (let i = 0; i < weighted.length; i++) weighted[i] = weighted[i]! * w[i]!;
  const fiou = npSum(weighted);
  const pacc = npSum(tp) / totalGt;

  const perClassIoU = new Float64Array(N);
  const perClassAcc = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    perClassIoU[i] = 100 * iou[i]!;
    perClassAcc[i] = 100 * acc[i]!;
  }
  const mIoU_d2main = 100 * miouMain;
  const mIoU_d2v06 = 100 * miouV06;
  return {
    mIoU: miouDefinition === "d2-main" ? mIoU_d2main : mIoU_d2v06,
    fwIoU: 100 * fiou,
    mACC: 100 * macc,
    pACC: 100 * pacc,
    perClassIoU,
    perClassAcc,
    mIoU_d2main,
    mIoU_d2v06,
    miouDefinition,
  };
}

/**
 * Per-pixel argmax over the channel axis of a (C, H, W) score map, as `scores.argmax(dim=0)`: the first
 * maximal channel wins on ties, and NaN counts as the maximum (the first NaN wins).
 */
export function argmaxScores(
  scores: Float32Array | Float64Array,
  C: number,
  H: number,
  W: number,
): Uint16Array {
  if (!Number.isInteger(C) || C < 1 || C > 65536)
    throw new Error(`argmaxScores: C must be in 1..65536, got ${C}`);
  const hw = H * W;
  if (scores.length !== C * hw)
    throw new Error(`argmaxScores: ${scores.length} scores for shape (${C}, ${H}, ${W})`);
  const out = new Uint16Array(hw);
  const best = new Float64Array(hw);
  for (let i = 0; i < hw; i++) best[i] = scores[i]!;
  for (let ch = 1; ch < C; ch++) {
    const base = ch * hw;
    for (let i = 0; i < hw; i++) {
      const v = scores[base + i]!;
      const b = best[i]!;
      // v > b is false whenever either is NaN; a NaN v wins only over a non-NaN best.
      if (v > b || (Number.isNaN(v) && !Number.isNaN(b))) {
        best[i] = v;
        out[i] = ch;
      }
    }
  }
  return out;
}

/**
 * The VOC-20b background fold of CAT-Seg / DEDOS `VOCbEvaluator`: after the argmax, every prediction
 * ≥ `numBase` (the background-like names) becomes `numBase` (the "background" class). Returns a new
 * array of the same type; the input is left unchanged.
 */
export function foldVocBackground<T extends LabelArray>(pred: T, numBase = 20): T {
  const out = pred.slice() as T;
  for (let i = 0; i < out.length; i++) if (out[i]! >= numBase) out[i] = numBase;
  return out;
}
