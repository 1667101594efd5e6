// CAT-Seg's test-time path (cat_seg/cat_seg_model.py `CATSeg.inference_sliding_window`, DEDOS spec §8):
//
//   image (1, 3, H, W) 0–255
//   → ResizeShortestEdge(640, max 2560), detectron2's test augmentation: on uint8 images (what the reference
//     reads, and what files, Buffers and raw RGB arrays become here) Pillow's BILINEAR resize, bit for bit
//   → bilinear to 640×640 → unfold into kernel×kernel windows (stride ⌊kernel·(1 − overlap)⌋)
//     + a global view: the shortest-side-640 image resized to kernel×kernel
//   → CLIP once for every view, the head on all classes → logits (views, T, 4g, 4g)
//   → bilinear to kernel, sigmoid (unless the model gives probabilities) → windows folded back (overlaps averaged: fold / fold(unfold(1)))
//     and averaged with the global view resized to 640 → bilinear to (H, W) (sem_seg_postprocess)
//   → per-class scores (T, H, W) and / or the argmax label map (H, W).
//
// Class chunking (bounded memory for ADE-847 and PC-459). The head always sees the whole class list at once,
// exactly as the reference: its aggregation is already bounded by pad_len (beyond 256 classes only the top
// 256 by max cost are aggregated, the rest get −100), and splitting the list before the head would change
// the results (the class attention would see other neighbours and the top-k would never cut). What grows
// with T is everything after the head: T maps at kernel² per view, T maps at 640² and T at H×W. That part is
// processed in chunks of ≤ `classChunk` (≤ pad_len) classes; it is per class, so chunking is exact (the
// results are identical bit for bit), and the label map is a running argmax over the chunks. `headChunk`
// optionally splits the head too (a different model for T > headChunk: every class aggregated, no cut).

import { resizeBilinear } from "../data/resize.js";
import * as F from "../torch/functional.js";
import { cat, dispose, noGrad, ones, type Tensor, tensor, tidy, where } from "../torch/tensor.js";
import { resolveWindow, testTimeSize, type WindowPreset, type WindowSpec, windowGrid } from "./window.js";

export { resolveWindow, WINDOW_PRESETS, type WindowPreset, type WindowSpec, windowGrid } from "./window.js";

/** What the sliding window needs from a model (CatSegModel satisfies it; tests use stand-ins). */
export interface SegmentationModel<Features = unknown> {
  /** Class-attention length of the head; post-processing chunks never exceed it. */
  readonly padLen: number;
  /** Raw 0–255 views (N, 3, k, k) → class-independent features. */
  encodeImage(images: Tensor): Features;
  /** Features + text (T, P, E) → per-class maps (N, T, h, w): logits, or probabilities (`scoreKind`). */
  head(features: Features, textEmbeds: Tensor, o: { poolingSize?: [number, number] }): Tensor;
  /** What `head` returns: logits for a sigmoid (CAT-Seg, default) or probabilities (DEDOS mask head). */
  readonly scoreKind?: "logits" | "probabilities";
}

export interface SegmentOptions {
  /** Window preset or geometry (default "catseg"). */
  window?: WindowPreset | WindowSpec;
  /** ResizeShortestEdge target (INPUT.MIN_SIZE_TEST, 640); 0 skips the step. */
  shortestSide?: number;
  /** ResizeShortestEdge cap on the longer side (INPUT.MAX_SIZE_TEST, 2560). */
  maxSize?: number;
  /** Side of the square the windows tile (`out_res`, 640). */
  outRes?: number;
  /** Average with the global view (default true, as the reference). */
  globalView?: boolean;
  /** Classes per post-processing chunk (default min(pad_len, 64); clamped to pad_len). */
  classChunk?: number;
  /** Views (windows + global) through CLIP and the head at once (default 1: lowest peak memory). */
  viewBatch?: number;
  /** Split the classes before the head as well (changes results when T > headChunk); default: never. */
  headChunk?: number;
  /** Class-layer pooling (default (1, 1), CAT-Seg's evaluation setting). */
  poolingSize?: [number, number];
  /** What to return (default "labels"; scores cost T·H·W floats). */
  output?: "labels" | "scores" | "both";
  /**
   * Memory for the final resize when only labels are asked for (default 256 MB): a large image is resized
   * in bands of rows that fit it, so peak memory does not grow with classes × H × W.
   */
  postprocessBytes?: number;
  /**
   * Called after each batch of views with (views done, views in all); throwing from it (cancellation) stops
   * the run between views, and every tensor of the run is freed.
   */
  onView?: (done: number, total: number) => void;
}

export interface SegmentResult {
  /** (H, W) int64 class indices (argmax over the scores; the first class wins ties). */
  labels?: Tensor;
  /** (T, H, W) float32 probabilities in [0, 1]. */
  scores?: Tensor;
  /** The window grid that was used. */
  windows: { kernel: number; stride: number; perSide: number; views: number };
}

/**
 * Bilinear resize (align_corners=False) of per-class maps (A, n, h, w) → (A, n, H, W), every map as its own
 * single-channel image: libtorch's kernel takes another code path for one channel than for several (the
 * results differ in the last bit), so resizing maps one by one makes the result independent of how the
 * classes are chunked.
 */
function resizeMaps(x: Tensor, size: [number, number]): Tensor {
  return tidy(() => {
    const [A, n, h, w] = x.shape as [number, number, number, number];
    // contiguous(): a strided input (a one-class narrow is a view) also takes another kernel path.
    const y = F.interpolate(x.reshape(A * n, 1, h, w).contiguous(), {
      size,
      mode: "bilinear",
      alignCorners: false,
    });
    return y.reshape(A, n, size[0], size[1]);
  });
}

/**
 * detectron2's test-time ResizeShortestEdge(`side`, `maxSize`) of an image (1, 3, H, W) on the 0–255 scale →
 * float32 (1, 3, h, w) on the image's device. A uint8 image is resized as detectron2's ResizeTransform
 * resizes the uint8 images its mapper reads: Pillow's BILINEAR (with its antialiasing filter when
 * downscaling), exact to the byte. A float image takes detectron2's float path: torch bilinear,
 * align_corners=False, no rounding. `side` 0 or a size already right: no resampling.
 */
export function testTimeResize(image: Tensor, side: number, maxSize: number): Tensor {
  const [H, W] = [image.size(2), image.size(3)];
  const [h, w] = testTimeSize(H, W, side, maxSize);
  if (h === H && w === W) return image.float();
  if (image.dtype !== "uint8")
    return F.interpolate(image.float(), { size: [h, w], mode: "bilinear", alignCorners: false });
  return tidy(() => {
    const hwc = image.squeeze(0).permute(1, 2, 0).contiguous().to("cpu"); // (H, W, 3) uint8
    const out = resizeBilinear(hwc.toTypedArray() as Uint8Array, W, H, 3, w, h);
    return tensor(out, [h, w, 3], { dtype: "uint8" }).permute(2, 0, 1).unsqueeze(0).float().to(image.device);
  });
}

/** Default memory for the final resize of a large image, labels only (`postprocessBytes`). */
const DEFAULT_POSTPROCESS_BYTES = 256 * 1024 * 1024;

/** Rows per band so that a band's temporaries (about four (n, rows, W) float maps) fit `bytes`. */
function bandRows(H: number, W: number, n: number, bytes: number): number {
  return Math.max(1, Math.min(H, Math.floor(bytes / (16 * n * W))));
}

/** The argmax over the classes seen so far: the best score and its class, per pixel. */
interface RunningArgmax {
  max: Tensor;
  index: Tensor; // int64
}

/** Folds a chunk's scores (n, h, w) of classes t0… into the running argmax (earlier classes win ties). */
function runningArgmax(prev: RunningArgmax | null, scores: Tensor, t0: number): RunningArgmax {
  const next = tidy(() => {
    // One pass for both (libtorch's argmax over a leading dim is ~8× slower than amax; max(dim) ~4×).
    const [m, i] = scores.maxDim(0); // the first max within the chunk
    const a = i.add(t0);
    if (!prev) return { max: m, index: a };
    const better = m.gt(prev.max); // strictly greater: earlier chunks win ties, as a global argmax
    return { max: where(better, m, prev.max), index: where(better, a, prev.index) };
  });
  if (prev) dispose([prev.max, prev.index]);
  return next;
}

/**
 * Rows y0 … y0+b−1 of the bilinear resize (align_corners=False) of maps (1, n, R, R) to (H, W): the vertical
 * pass by hand (torch's float32 source index and weights for those rows), the horizontal by `resizeMaps`.
 * Equal to the rows of the whole resize up to float rounding.
 */
function resizeBand(x: Tensor, H: number, W: number, y0: number, b: number): Tensor {
  return tidy(() => {
    const R = x.size(2);
    const scale = Math.fround(R / H);
    const i0 = new Int32Array(b);
    const i1 = new Int32Array(b);
    const w0 = new Float32Array(b);
    const w1 = new Float32Array(b);
    for (let j = 0; j < b; j++) {
      const src = Math.max(0, Math.fround(Math.fround(scale * (y0 + j + 0.5)) - 0.5));
      const lo = Math.floor(src);
      i0[j] = lo;
      i1[j] = lo + (lo < R - 1 ? 1 : 0);
      w1[j] = Math.fround(src - lo);
      w0[j] = Math.fround(1 - w1[j]!);
    }
    const pick = (idx: Int32Array, w: Float32Array) =>
      x.indexSelect(2, tensor(idx, [b]).long()).mul(tensor(w, [1, 1, b, 1]));
    return resizeMaps(pick(i0, w0).add(pick(i1, w1)), [b, W]); // (1, n, b, W)
  });
}

/** The label map (H, W) of a large image, band by band of `rows` rows, every class chunk per band. */
function bandedLabels(
  squareMaps: (t0: number, n: number) => Tensor,
  T: number,
  chunk: number,
  H: number,
  W: number,
  rows: number,
): Tensor {
  const squares: Tensor[] = [];
  for (let t0 = 0; t0 < T; t0 += chunk) squares.push(squareMaps(t0, Math.min(chunk, T - t0)).keep());
  try {
    const bands: Tensor[] = [];
    for (let y0 = 0; y0 < H; y0 += rows) {
      const b = Math.min(rows, H - y0);
      bands.push(
        tidy(() => {
          let best: RunningArgmax | null = null;
          squares.forEach((sq, c) => {
            const scores = resizeBand(sq, H, W, y0, b).squeeze(0); // (n, b, W)
            best = runningArgmax(best, scores, c * chunk);
            scores.dispose();
          });
          const r = best as unknown as RunningArgmax;
          r.max.dispose();
          return r.index;
        }),
      );
    }
    return bands.length === 1 ? bands[0]! : cat(bands, 0);
  } finally {
    dispose(squares);
  }
}

/**
 * Segments one image: `image` (1, 3, H, W) on the 0–255 scale (uint8 for the reference's exact resize, see
 * {@link testTimeResize}), `textEmbeds` (T, P, E) → scores (T, H, W)
 * and / or labels (H, W). Runs without gradients; the model should be in eval mode.
 */
export function segmentTensor<Feat>(
  model: SegmentationModel<Feat>,
  image: Tensor,
  textEmbeds: Tensor,
  o: SegmentOptions = {},
): SegmentResult {
  if (image.ndim !== 4 || image.size(0) !== 1 || image.size(1) !== 3)
    throw new Error(`segmentTensor: image must be (1, 3, H, W), got [${image.shape.join(", ")}]`);
  if (textEmbeds.ndim !== 3)
    throw new Error(`segmentTensor: text embeddings must be (T, P, E), got [${textEmbeds.shape.join(", ")}]`);
  const spec = resolveWindow(o.window, "segmentTensor");
  const R = o.outRes ?? 640;
  const { kernel: k, stride, perSide } = windowGrid(spec, R);
  const L = perSide * perSide;
  const useGlobal = o.globalView ?? true;
  const T = textEmbeds.size(0);
  const padLen = model.padLen > 0 ? model.padLen : T;
  const chunk = Math.max(1, Math.min(o.classChunk ?? 64, padLen));
  const output = o.output ?? "labels";
  const pooling = o.poolingSize ?? [1, 1];
  const probabilities = model.scoreKind === "probabilities";
  const [H, W] = [image.size(2), image.size(3)];
  const windows = { kernel: k, stride, perSide, views: L + (useGlobal ? 1 : 0) };

  return noGrad(() =>
    tidy(() => {
      // 1. detectron2's test resize, then the 640×640 square.
      const img = testTimeResize(image, o.shortestSide ?? 640, o.maxSize ?? 2560);
      const square = F.interpolate(img, { size: [R, R], mode: "bilinear", alignCorners: false });
      // 2. Views: unfold "(C H W) L -> L C H W", then the global view.
      const tiles = F.unfold(square, k, { stride }).reshape(3, k, k, L).permute(3, 0, 1, 2);
      const views = useGlobal
        ? cat([tiles, F.interpolate(img, { size: [k, k], mode: "bilinear", alignCorners: false })], 0)
        : tiles.contiguous();

      // 3. CLIP and the head on every class (or on head chunks), `viewBatch` views at a time: the head's
      //    activations grow with views × max(T, pad_len), so one view at a time bounds peak memory.
      const vb = Math.max(1, o.viewBatch ?? 1);
      const V = views.size(0);
      const perViews: Tensor[] = [];
      for (let v0 = 0; v0 < V; v0 += vb) {
        perViews.push(
          tidy(() => {
            const feats = model.encodeImage(views.narrow(0, v0, Math.min(vb, V - v0)));
            const hc = o.headChunk;
            if (!hc || hc >= T) return model.head(feats, textEmbeds, { poolingSize: pooling });
            const parts: Tensor[] = [];
            for (let t0 = 0; t0 < T; t0 += hc) {
              parts.push(
                model.head(feats, textEmbeds.narrow(0, t0, Math.min(hc, T - t0)), { poolingSize: pooling }),
              );
            }
            return cat(parts, 1);
          }),
        );
        o.onView?.(Math.min(v0 + vb, V), V);
      }
      const logits = perViews.length === 1 ? perViews[0]! : cat(perViews, 0); // (views, T, h, w)

      // 4. Post-processing per class chunk: the (n, R, R) average of windows and global view, then the
      //    resize to the image. A large image asking for labels only is resized in bands of rows, so that
      //    memory stays bounded by `postprocessBytes`, not by classes × H × W.
      const count = F.fold(F.unfold(ones([1, 1, R, R]), k, { stride }), [R, R], k, { stride }); // (1, 1, R, R)
      const squareMaps = (t0: number, n: number): Tensor =>
        tidy(() => {
          const maps = resizeMaps(logits.narrow(1, t0, n), [k, k]);
          const up = probabilities ? maps : maps.sigmoid(); // (views, n, k, k)
          const cols = up.narrow(0, 0, L).flatten(1).transpose(0, 1).unsqueeze(0); // (1, n·k·k, L)
          const out = F.fold(cols, [R, R], k, { stride }).div(count); // (1, n, R, R)
          return useGlobal ? out.add(resizeMaps(up.narrow(0, L, 1), [R, R])).div(2) : out;
        });
      const rows = bandRows(H, W, chunk, o.postprocessBytes ?? DEFAULT_POSTPROCESS_BYTES);
      if (output === "labels" && rows < H)
        return { windows, labels: bandedLabels(squareMaps, T, chunk, H, W, rows) };
      const scoreParts: Tensor[] = [];
      let best: RunningArgmax | null = null;
      for (let t0 = 0; t0 < T; t0 += chunk) {
        const n = Math.min(chunk, T - t0);
        // sem_seg_postprocess: crop to the (whole) input size, bilinear to the original image size.
        const scores = tidy(() => resizeMaps(squareMaps(t0, n), [H, W]).squeeze(0)); // (n, H, W)
        if (output !== "labels") scoreParts.push(scores);
        if (output !== "scores") best = runningArgmax(best, scores, t0);
        if (output === "labels") scores.dispose();
      }
      const result: SegmentResult = { windows };
      if (output !== "scores") {
        result.labels = best!.index;
        best!.max.dispose();
      }
      if (output !== "labels") result.scores = scoreParts.length === 1 ? scoreParts[0]! : cat(scoreParts, 0);
      return result;
    }),
  );
}
