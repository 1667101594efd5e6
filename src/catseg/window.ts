// CAT-Seg's sliding-window geometry (cat_seg_model.py `inference_sliding_window`), free of any tensor engine so
// that the libtorch path (inference.ts), the onnxruntime path and the browser share one definition.
import { shortestEdgeSize } from "../data/resize.js";

/** Sliding-window geometry: square windows of `kernel` px, consecutive windows overlapping by `overlap`. */
export interface WindowSpec {
  kernel: number;
  overlap: number;
}

export type WindowPreset = "catseg" | "dedos";

/** CAT-Seg: kernel 384, overlap 0.333 (the reference's literal, stride 256); DEDOS: 512 / 0.75 (stride 128). */
export const WINDOW_PRESETS: Readonly<Record<WindowPreset, Readonly<WindowSpec>>> = {
  catseg: { kernel: 384, overlap: 0.333 },
  dedos: { kernel: 512, overlap: 0.75 },
};

/** A preset name or a geometry → the geometry (throws on an unknown name). */
export function resolveWindow(window: WindowPreset | WindowSpec | undefined, who: string): WindowSpec {
  const spec = typeof window === "object" ? window : WINDOW_PRESETS[window ?? "catseg"];
  if (!spec) throw new Error(`${who}: unknown window "${String(window)}" (catseg or dedos)`);
  return spec;
}

/** The window geometry: stride int(kernel·(1 − overlap)), windows per side, checked to tile `outRes`. */
export function windowGrid(
  spec: WindowSpec,
  outRes: number,
): { kernel: number; stride: number; perSide: number } {
  const { kernel, overlap } = spec;
  if (!Number.isInteger(kernel) || kernel <= 0)
    throw new Error(`window kernel must be a positive integer, got ${kernel}`);
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`window overlap must be in [0, 1), got ${overlap}`);
  const stride = Math.trunc(kernel * (1 - overlap));
  if (stride < 1) throw new Error(`window kernel ${kernel} with overlap ${overlap} gives stride 0`);
  if (kernel > outRes || (outRes - kernel) % stride !== 0) {
    // The reference would divide by a zero coverage count (NaN) on the uncovered border.
    throw new Error(
      `windows of ${kernel} px with stride ${stride} do not tile ${outRes}×${outRes} exactly (need (out − kernel) % stride = 0)`,
    );
  }
  return { kernel, stride, perSide: (outRes - kernel) / stride + 1 };
}

/**
 * detectron2's test-time ResizeShortestEdge(`side`, `maxSize`) output size [h, w] of an H×W image (`side` 0:
 * unchanged), refusing sizes that round to nothing.
 */
export function testTimeSize(H: number, W: number, side: number, maxSize: number): [number, number] {
  const [h, w] = side > 0 ? shortestEdgeSize(H, W, side, maxSize) : [H, W];
  if (h < 1 || w < 1) {
    throw new Error(
      `image of ${W}×${H} px cannot be resized to a shortest side of ${side} within ${maxSize} px (it would be ${w}×${h})`,
    );
  }
  return [h, w];
}
