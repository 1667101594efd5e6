// detectron2's ResizeShortestEdge on raw pixels, exactly: the output size rule, Pillow's BILINEAR resize of
// 8-bit images (what detectron2's ResizeTransform runs on the uint8 images its mappers read, at training and
// test time alike) and torch's nearest rule for label maps (what it runs on float label maps).
//
// The Pillow resize is a re-implementation of `Image.resize(size, BILINEAR)` for 8-bit images: a separable
// triangle filter widened by the downscale factor, 22-bit fixed-point coefficients, horizontal pass then
// vertical pass, each rounded and clamped to 8 bits. Checked bit for bit against Pillow 9.4 on up- and
// downscales, odd and non-square sizes (test/data/resize).

/** A label map: one integer per pixel, row-major. */
export type LabelArray = Uint8Array | Uint16Array;

/** detectron2 ResizeShortestEdge's output size [h, w] for one short-side length. */
export function shortestEdgeSize(
  h: number,
  w: number,
  shortEdge: number,
  maxSize = Number.POSITIVE_INFINITY,
): [number, number] {
  const scale = shortEdge / Math.min(h, w);
  let newh: number;
  let neww: number;
  if (h < w) {
    newh = shortEdge;
    neww = scale * w;
  } else {
    newh = scale * h;
    neww = shortEdge;
  }
  if (Math.max(newh, neww) > maxSize) {
    const s = maxSize / Math.max(newh, neww);
    newh *= s;
    neww *= s;
  }
  return [Math.trunc(newh + 0.5), Math.trunc(neww + 0.5)];
}

const PRECISION_BITS = 22;

/** Pillow's per-output-pixel filter bounds and fixed-point coefficients for a BILINEAR resize of one axis. */
function bilinearCoefficients(
  inSize: number,
  outSize: number,
): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const v = t < 1 ? 1 - t : 0;
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? w[x]! : 0;
      if (x < xmax && ww !== 0) v /= ww;
      kk[xx * ksize + x] =
        v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return Math.max(0, Math.min(255, s));
}

/**
 * Resizes 8-bit interleaved pixels (`channels` per pixel) exactly as Pillow's `Image.resize(size, BILINEAR)`
 * does for 8-bit images ("L" / "RGB"). Same size → a copy.
 */
export function resizeBilinear(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  if (src.length !== width * height * channels)
    throw new Error(`resizeBilinear: ${src.length} bytes for ${width}×${height}×${channels}`);
  if (outWidth <= 0 || outHeight <= 0) throw new Error(`resizeBilinear: bad size ${outWidth}×${outHeight}`);
  let cur = src;
  let curW = width;
  const half = 1 << (PRECISION_BITS - 1);
  if (outWidth !== width) {
    const { bounds, kk, ksize } = bilinearCoefficients(width, outWidth);
    const out = new Uint8Array(outWidth * height * channels);
    for (let y = 0; y < height; y++) {
      const row = y * width * channels;
      const orow = y * outWidth * channels;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[2 * xx]!;
        const xmax = bounds[2 * xx + 1]!;
        const k = xx * ksize;
        for (let c = 0; c < channels; c++) {
          let ss = half;
          let p = row + xmin * channels + c;
          for (let x = 0; x < xmax; x++, p += channels) ss += cur[p]! * kk[k + x]!;
          out[orow + xx * channels + c] = clip8(ss);
        }
      }
    }
    cur = out;
    curW = outWidth;
  }
  if (outHeight !== height) {
    const { bounds, kk, ksize } = bilinearCoefficients(height, outHeight);
    const stride = curW * channels;
    const out = new Uint8Array(outHeight * stride);
    for (let yy = 0; yy < outHeight; yy++) {
      const ymin = bounds[2 * yy]!;
      const ymax = bounds[2 * yy + 1]!;
      const k = yy * ksize;
      const orow = yy * stride;
      for (let i = 0; i < stride; i++) {
        let ss = half;
        let p = ymin * stride + i;
        for (let y = 0; y < ymax; y++, p += stride) ss += cur[p]! * kk[k + y]!;
        out[orow + i] = clip8(ss);
      }
    }
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}

/** torch `F.interpolate(mode="nearest")` source index of each output index along one axis. */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  if (outSize === inSize) for (let i = 0; i < outSize; i++) idx[i] = i;
  else if (outSize === 2 * inSize) for (let i = 0; i < outSize; i++) idx[i] = i >> 1;
  else {
    const scale = Math.fround(inSize / outSize);
    for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  }
  return idx;
}

/** Nearest-neighbour resize of a label map with torch's index rule (values copied exactly). */
export function resizeNearest<T extends LabelArray>(
  src: T,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): T {
  if (src.length !== width * height)
    throw new Error(`resizeNearest: ${src.length} values for ${width}×${height}`);
  const xs = nearestIndices(width, outWidth);
  const ys = nearestIndices(height, outHeight);
  const out = new (src.constructor as { new (n: number): T })(outWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    const row = ys[y]! * width;
    const o = y * outWidth;
    for (let x = 0; x < outWidth; x++) out[o + x] = src[row + xs[x]!]!;
  }
  return out;
}
