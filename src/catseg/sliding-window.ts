// The sliding-window inference of inference.ts (`segmentTensor`) on plain Float32Arrays, for engines other
// than libtorch (onnxruntime in Node and in the browser). The same steps, each as libtorch computes it:
//
//   RGB (H, W) uint8 → ResizeShortestEdge(640, max 2560) with Pillow's BILINEAR, bit for bit (data/resize.ts)
//   → planes (3, h, w) float → bilinear to the R×R square → views: the windows (k×k at stride, row-major,
//     as `unfold` lists them) + the global view (the (h, w) image resized to k×k)
//   → the model per view → maps (T, h', w') per view
//   → per class: each view's map bilinear to k×k, sigmoid (unless the model gives probabilities), windows
//     summed in col2im's order and divided by the overlap count, averaged with the global view resized to
//     R×R, bilinear to (H, W) → running argmax (the first class wins ties) and / or the scores.
//
// Memory: the views' maps (views × T × h' × w', what the model returns) plus, per class, one R×R square; the
// label map keeps one float and one index per pixel and resizes row by row, so it does not grow with T × H × W
// (the scores, when asked for, are T × H × W by definition).

import { resizeBilinear } from "../data/resize.js";
import { horizontalPass, resizePlane, TapCache, verticalRow } from "../data/resize-float.js";
import type { RgbImage } from "../data/rgb.js";
import { resolveWindow, testTimeSize, type WindowPreset, type WindowSpec, windowGrid } from "./window.js";

const f = Math.fround;

/** Per-class maps of one view: (T, h, w) row-major. */
export interface ClassMaps {
  data: Float32Array;
  classes: number;
  height: number;
  width: number;
}

/** What the array pipeline needs from a model: one view in, per-class maps out (any engine, maybe async). */
export interface ViewModel {
  /** A raw 0–255 view (1, 3, k, k) → per-class maps (T, h, w): logits, or probabilities (`scoreKind`). */
  runView(view: Float32Array, kernel: number): Promise<ClassMaps> | ClassMaps;
  /** What `runView` returns: logits for a sigmoid (CAT-Seg, default) or probabilities (DEDOS mask head). */
  readonly scoreKind?: "logits" | "probabilities";
}

export interface SlidingWindowOptions {
  /** Window preset or geometry (default "catseg"). */
  window?: WindowPreset | WindowSpec;
  /** ResizeShortestEdge target (640); 0 skips the step. */
  shortestSide?: number;
  /** ResizeShortestEdge cap on the longer side (2560). */
  maxSize?: number;
  /** Side of the square the windows tile (640). */
  outRes?: number;
  /** Average with the global view (default true). */
  globalView?: boolean;
  /** What to return (default "labels"; scores cost T·H·W floats). */
  output?: "labels" | "scores" | "both";
  /** Called after each view with (views done, views in all); throwing (cancellation) stops the run. */
  onView?: (done: number, total: number) => void | Promise<void>;
}

export interface SlidingWindowResult {
  /** (H, W) class indices (the first class wins ties). */
  labels?: Uint16Array;
  /** (T, H, W) probabilities. */
  scores?: Float32Array;
  windows: { kernel: number; stride: number; perSide: number; views: number };
}

/** The 8-bit image as three float planes (3, H, W), the layout of `imageToTensor(…).float()`. */
function toPlanes(rgb: RgbImage): Float32Array {
  const n = rgb.width * rgb.height;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = rgb.data[3 * i + c]!;
  return out;
}

/** Resizes each of `C` planes (C, h, w) → (C, H, W). */
function resizePlanes(
  x: Float32Array,
  C: number,
  h: number,
  w: number,
  H: number,
  W: number,
  taps: TapCache,
) {
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) resizePlane(x, c * h * w, h, w, H, W, taps, out.subarray(c * H * W));
  return out;
}

/**
 * The views in the order `segmentTensor` runs them: the windows of the R×R square (row-major, top-left at
 * (row·stride, col·stride)), then the global view; each (3, k, k) raw 0–255.
 */
export function* slidingViews(
  rgb: RgbImage,
  spec: WindowSpec,
  o: { shortestSide?: number; maxSize?: number; outRes?: number; globalView?: boolean } = {},
): Generator<Float32Array> {
  const R = o.outRes ?? 640;
  const { kernel: k, stride, perSide } = windowGrid(spec, R);
  const [h, w] = testTimeSize(rgb.height, rgb.width, o.shortestSide ?? 640, o.maxSize ?? 2560);
  const small =
    h === rgb.height && w === rgb.width ? rgb.data : resizeBilinear(rgb.data, rgb.width, rgb.height, 3, w, h);
  const img = toPlanes({ data: small, width: w, height: h }); // (3, h, w)
  const taps = new TapCache();
  const square = resizePlanes(img, 3, h, w, R, R, taps); // (3, R, R)
  for (let v = 0; v < perSide * perSide; v++) {
    const top = Math.floor(v / perSide) * stride;
    const left = (v % perSide) * stride;
    const view = new Float32Array(3 * k * k);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < k; y++) {
        const from = c * R * R + (top + y) * R + left;
        view.set(square.subarray(from, from + k), c * k * k + y * k);
      }
    yield view;
  }
  if (o.globalView ?? true) yield resizePlanes(img, 3, h, w, k, k, taps);
}

/** torch's float sigmoid, 1 / (1 + exp(−x)), in float32 steps. */
function sigmoidInPlace(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = f(1 / f(1 + f(Math.exp(-x[i]!))));
}

/** How many windows cover each pixel of the R×R square (fold of unfolded ones). */
function coverCount(R: number, k: number, stride: number, perSide: number): Float32Array {
  const count = new Float32Array(R * R);
  for (let r = 0; r < perSide; r++)
    for (let c = 0; c < perSide; c++)
      for (let y = 0; y < k; y++) {
        const row = (r * stride + y) * R + c * stride;
        for (let x = 0; x < k; x++) count[row + x]! += 1;
      }
  return count;
}

/** Everything the per-class stitching needs, fixed for one image. */
interface StitchGeometry {
  R: number;
  k: number;
  stride: number;
  perSide: number;
  count: Float32Array;
  useGlobal: boolean;
  probabilities: boolean;
  taps: TapCache;
}

/** The view's map of class `t` at k×k, as probabilities. */
function viewScores(m: ClassMaps, t: number, g: StitchGeometry): Float32Array {
  const k = g.k;
  const up = resizePlane(m.data, t * m.height * m.width, m.height, m.width, k, k, g.taps);
  if (!g.probabilities) sigmoidInPlace(up);
  return up;
}

/** Class `t`'s R×R map: the windows folded and averaged over their overlap, then averaged with the global view. */
function classSquare(maps: ClassMaps[], t: number, g: StitchGeometry): Float32Array {
  const { R, k, stride, perSide } = g;
  const L = perSide * perSide;
  const acc = new Float32Array(R * R);
  // col2im adds the windows in the order of their kernel offset, i.e. from the last window to the first.
  for (let v = L - 1; v >= 0; v--) {
    const up = viewScores(maps[v]!, t, g);
    const top = Math.floor(v / perSide) * stride;
    const left = (v % perSide) * stride;
    for (let y = 0; y < k; y++) {
      const row = (top + y) * R + left;
      for (let x = 0; x < k; x++) acc[row + x] = acc[row + x]! + up[y * k + x]!;
    }
  }
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / g.count[i]!;
  if (!g.useGlobal) return acc;
  const global = resizePlane(viewScores(maps[L]!, t, g), 0, k, k, R, R, g.taps);
  for (let i = 0; i < acc.length; i++) acc[i] = f(acc[i]! + global[i]!) / 2;
  return acc;
}

/**
 * Segments one 8-bit RGB image with a per-view model: labels (H, W) and / or scores (T, H, W), equal to
 * `segmentTensor` on the same model and image up to float rounding (its CPU kernels, op for op).
 * @example
 *   const r = await segmentWithViews(model, rgb, { window: "catseg" }); // r.labels: Uint16Array (H·W)
 */
export async function segmentWithViews(
  model: ViewModel,
  rgb: RgbImage,
  o: SlidingWindowOptions = {},
): Promise<SlidingWindowResult> {
  if (rgb.data.length !== rgb.width * rgb.height * 3)
    throw new Error(`segmentWithViews: ${rgb.data.length} bytes for a ${rgb.width}×${rgb.height} RGB image`);
  const spec = resolveWindow(o.window, "segmentWithViews");
  const R = o.outRes ?? 640;
  const { kernel: k, stride, perSide } = windowGrid(spec, R);
  const useGlobal = o.globalView ?? true;
  const V = perSide * perSide + (useGlobal ? 1 : 0);
  const windows = { kernel: k, stride, perSide, views: V };
  const maps: ClassMaps[] = [];
  for (const view of slidingViews(rgb, spec, o)) {
    const m = await model.runView(view, k);
    if (maps.length > 0 && (m.classes !== maps[0]!.classes || m.height !== maps[0]!.height))
      throw new Error("segmentWithViews: the model returned maps of different shapes for two views");
    maps.push(m);
    await o.onView?.(maps.length, V);
  }
  const T = maps[0]!.classes;
  if (T > 65536) throw new Error(`segmentWithViews: ${T} classes do not fit 16-bit labels`);
  const g: StitchGeometry = {
    R,
    k,
    stride,
    perSide,
    count: coverCount(R, k, stride, perSide),
    useGlobal,
    probabilities: model.scoreKind === "probabilities",
    taps: new TapCache(),
  };
  return { windows, ...finalMaps(maps, T, rgb.width, rgb.height, g, o.output ?? "labels") };
}

/** Per class: the square, bilinear to (H, W) row by row, into the running argmax and / or the scores. */
function finalMaps(
  maps: ClassMaps[],
  T: number,
  W: number,
  H: number,
  g: StitchGeometry,
  output: "labels" | "scores" | "both",
): { labels?: Uint16Array; scores?: Float32Array } {
  const wantLabels = output !== "scores";
  const scores = output !== "labels" ? new Float32Array(T * H * W) : undefined;
  const labels = wantLabels ? new Uint16Array(H * W) : undefined;
  const best = wantLabels ? new Float32Array(H * W) : undefined;
  const ty = g.taps.get(g.R, H);
  const tx = g.taps.get(g.R, W);
  const row = new Float32Array(W);
  for (let t = 0; t < T; t++) {
    const rows = horizontalPass(classSquare(maps, t, g), 0, g.R, g.R, tx); // (R, W)
    for (let y = 0; y < H; y++) {
      const out = scores ?? row;
      const at = scores ? (t * H + y) * W : 0;
      verticalRow(rows, W, ty, y, out, at);
      if (!best || !labels) continue;
      const p = y * W;
      for (let x = 0; x < W; x++) {
        const s = out[at + x]!;
        // Strictly greater (and the first class always taken): earlier classes win ties, NaN never wins.
        if (t === 0 || s > best[p + x]!) {
          best[p + x] = s;
          labels[p + x] = t;
        }
      }
    }
  }
  return { labels, scores };
}
