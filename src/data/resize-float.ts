// torch's `F.interpolate(mode="bilinear", align_corners=False)` on float32 planes, op for op in float32 (every
// intermediate rounded with Math.fround, in the order libtorch's CPU kernel computes it), so that the
// engine-free sliding window (catseg/sliding-window.ts) matches the libtorch one to the last bits:
//   src = max(0, scale·(dst + 0.5) − 0.5) with scale = in/out as float; i0 = ⌊src⌋, i1 = i0 + (i0 < in − 1),
//   λ1 = src − i0, λ0 = 1 − λ1; out = (row(i0)·λ0y) + (row(i1)·λ1y), row(i) = a·λ0x + b·λ1x (each
//   row(i) computed once per source row: the same floats as torch's per-output-row loop, less work).

const f = Math.fround;

/** The two source taps and their weights for every output index of one axis. */
export interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float32Array;
  w1: Float32Array;
}

/** torch's linear source indices and weights (align_corners=False, no scale factor) for one axis. */
export function linearTaps(inSize: number, outSize: number): LinearTaps {
  const scale = f(inSize / outSize);
  const t: LinearTaps = {
    i0: new Int32Array(outSize),
    i1: new Int32Array(outSize),
    w0: new Float32Array(outSize),
    w1: new Float32Array(outSize),
  };
  for (let i = 0; i < outSize; i++) {
    // area_pixel_compute_source_index: computed in double (dst + 0.5 is a double), stored as float.
    const src = Math.max(0, f(scale * (i + 0.5) - 0.5));
    const lo = Math.min(Math.floor(src), inSize - 1);
    const l1 = Math.min(Math.max(f(src - lo), 0), 1);
    t.i0[i] = lo;
    t.i1[i] = lo + (lo < inSize - 1 ? 1 : 0);
    t.w1[i] = l1;
    t.w0[i] = f(1 - l1);
  }
  return t;
}

/** Taps of a resize, by (in, out) pair: the same geometry recurs for every class and view. */
export class TapCache {
  private readonly map = new Map<string, LinearTaps>();
  get(inSize: number, outSize: number): LinearTaps {
    const key = `${inSize}:${outSize}`;
    let t = this.map.get(key);
    if (!t) {
      t = linearTaps(inSize, outSize);
      this.map.set(key, t);
    }
    return t;
  }
}

/**
 * The horizontal pass for every source row: (h, w) plane at `srcOffset` → (h, W), each value
 * a·λ0x + b·λ1x. torch computes it per output row, but a source row's horizontal values do not depend on the
 * output row, so computing each once gives the same floats with a fraction of the work when upscaling.
 */
export function horizontalPass(
  src: Float32Array,
  srcOffset: number,
  h: number,
  w: number,
  tx: LinearTaps,
): Float32Array {
  const W = tx.i0.length;
  const rows = new Float32Array(h * W);
  for (let r = 0; r < h; r++) {
    const row = srcOffset + r * w;
    const o = r * W;
    for (let x = 0; x < W; x++)
      rows[o + x] = f(src[row + tx.i0[x]!]! * tx.w0[x]!) + f(src[row + tx.i1[x]!]! * tx.w1[x]!);
  }
  return rows;
}

/** Output row `y` from the horizontal pass `rows` (h, W): row(i0)·λ0y + row(i1)·λ1y, into `out` at `outOffset`. */
export function verticalRow(
  rows: Float32Array,
  W: number,
  ty: LinearTaps,
  y: number,
  out: Float32Array,
  outOffset: number,
): void {
  const a = ty.i0[y]! * W;
  const b = ty.i1[y]! * W;
  const wy0 = ty.w0[y]!;
  const wy1 = ty.w1[y]!;
  for (let x = 0; x < W; x++) out[outOffset + x] = f(rows[a + x]! * wy0) + f(rows[b + x]! * wy1);
}

/**
 * Bilinear resize (align_corners=False) of one float plane (h, w), read from `src` at `srcOffset`, to (H, W).
 * `taps` reuses the index tables across calls.
 */
export function resizePlane(
  src: Float32Array,
  srcOffset: number,
  h: number,
  w: number,
  H: number,
  W: number,
  taps: TapCache = new TapCache(),
  out: Float32Array = new Float32Array(H * W),
): Float32Array {
  const ty = taps.get(h, H);
  const rows = horizontalPass(src, srcOffset, h, w, taps.get(w, W));
  for (let y = 0; y < H; y++) verticalRow(rows, W, ty, y, out, y * W);
  return out;
}
