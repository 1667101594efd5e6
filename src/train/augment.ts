// Training augmentations of CAT-Seg's semantic dataset mapper (detectron2 / Mask2Former), as pure functions
// on raw pixels: 8-bit RGB images (row-major HWC) and single-channel label maps (Uint8Array or Uint16Array).
// The pipeline, in detectron2's order:
//   1. ResizeShortestEdge: short side → `minSize` (one of a list, chosen at random), long side capped at
//      `maxSize`; the image resampled exactly as Pillow's BILINEAR, labels by torch's nearest rule
//      (../data/resize.ts, shared with the test-time resize).
//   2. RandomCrop_CategoryAreaConstraint ("absolute" crop of min(crop, size)): up to 10 random windows until
//      more than one non-ignored category is present and none covers ≥ `singleCategoryMaxArea` of the
//      non-ignored pixels; the last window is kept otherwise. With a ratio ≥ 1 it is a plain random crop.
//   3. ColorAugSSDTransform: random brightness (±32), then contrast ([0.5, 1.5]) either first or last around
//      saturation ([0.5, 1.5], on OpenCV's 8-bit HSV) and hue (±18 on OpenCV's 0..179 hue), each applied with
//      probability ½, with detectron2's float32 arithmetic, clipping and truncation to uint8. OpenCV's 8-bit
//      RGB↔HSV conversions are re-implemented exactly (integer RGB→HSV tables; float32 HSV→RGB, truncated in
//      OpenCV's vector blocks and rounded half-even in each row's scalar tail, see {@link hsvToRgb8}).
//      detectron2 swaps RGB to BGR and back around the same operations; the result is the same as running
//      them on RGB with the channel roles named accordingly, which is what is done here.
//   4. Horizontal flip with probability ½.
//   5. Padding (right and bottom) to the crop size with image value 128 and the ignore label.
// Randomness comes from an explicit generator ({@link Rng}, or any {@link RandomSource}): the same generator
// state gives the same output. Python's draws are mirrored one for one (randrange(2) → int(2),
// uniform(a, b) → a + (b − a)·float(), randint(a, b) → a + int(b − a + 1), np.random.randint(n) → int(n)),
// though the generator itself is not numpy's or Python's.

import { type LabelArray, resizeBilinear, resizeNearest, shortestEdgeSize } from "../data/resize.js";

export type { LabelArray };

/** What the augmentations draw from: uniform floats in [0, 1) and uniform integers in [0, n). */
export interface RandomSource {
  float(): number;
  int(n: number): number;
}

// ---------------------------------------------------------------------------------------------------------
// The generator: xoshiro128** (four 32-bit words of state, 32-bit integer math only), seeded by hashing a
// list of integer keys (e.g. seed, epoch, sample index) through SplitMix32.

const TWO32 = 4294967296;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A small seeded generator with a serialisable state. */
export class Rng implements RandomSource {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** A generator determined by integer keys (each a safe integer): `new Rng(seed, epoch, index)`. */
  constructor(...keys: number[]) {
    let h = 0x3c6ef372;
    for (const k of keys) {
      if (!Number.isSafeInteger(k)) throw new Error(`Rng: key ${k} is not a safe integer`);
      const lo = ((k % TWO32) + TWO32) % TWO32;
      const hi = Math.floor(k / TWO32) >>> 0;
      h = fmix32((h ^ lo) >>> 0);
      h = fmix32((h + 0x9e3779b9 + hi) >>> 0);
    }
    const st = { s: h | 0 };
    this.s0 = splitmix32(st);
    this.s1 = splitmix32(st);
    this.s2 = splitmix32(st);
    this.s3 = splitmix32(st);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator in a state returned by {@link getState}. */
  static fromState(state: readonly number[]): Rng {
    const r = new Rng();
    r.setState(state);
    return r;
  }

  /** The four state words (unsigned 32-bit integers). */
  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  setState(state: readonly number[]): void {
    if (
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO32) ||
      state.every((w) => w === 0)
    )
      throw new Error(`Rng: bad state [${state.join(", ")}] (four 32-bit words, not all zero)`);
    [this.s0, this.s1, this.s2, this.s3] = state.map((w) => w | 0) as [number, number, number, number];
  }

  /** The next unsigned 32-bit integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), n a positive integer ≤ 2³² (unbiased). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO32) throw new Error(`Rng.int: bad bound ${n}`);
    const limit = TWO32 - (TWO32 % n);
    for (;;) {
      const u = this.nextU32();
      if (u < limit) return u % n;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Python's `random.uniform(a, b)`: a + (b − a)·U. */
export function uniform(rng: RandomSource, a: number, b: number): number {
  return a + (b - a) * rng.float();
}

/** Python's `random.randint(a, b)`: an integer in [a, b], both ends included. */
export function randint(rng: RandomSource, a: number, b: number): number {
  return a + rng.int(b - a + 1);
}

/** A uniformly random permutation of 0..n−1 (Fisher–Yates). */
export function permutation(n: number, rng: RandomSource): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Configuration

export interface AugmentConfig {
  /** Shortest-edge sizes; one is chosen at random per sample (detectron2 "choice" sampling). */
  minSize: number | readonly number[];
  /** Cap on the longest edge after the resize (detectron2 INPUT.MAX_SIZE_TRAIN, default 1333). */
  maxSize: number;
  /** Crop (and padded output) size [h, w]. */
  crop: readonly [number, number];
  /** Category-area constraint of the crop; ≥ 1 disables it (plain random crop). */
  singleCategoryMaxArea: number;
  /** SSD-style photometric distortion. */
  colorAug: boolean;
  /** Horizontal flip with probability ½. */
  flip: boolean;
  /** Image padding value (all three channels). */
  padImage: number;
  /** Label of ignored pixels: padding value, and excluded from the crop constraint. */
  ignoreLabel: number;
}

/**
 * CAT-Seg's training input settings (configs/vitb_384.yaml): short side 384 (the spec's 512 for ViT-L is a
 * matter of `minSize` / `crop`), max 1333, crop 384², area ratio 1.0, SSD colour aug, flip, pad 128 / 255.
 */
export function defaultAugmentConfig(size = 384): AugmentConfig {
  return {
    minSize: size,
    maxSize: 1333,
    crop: [size, size],
    singleCategoryMaxArea: 1.0,
    colorAug: true,
    flip: true,
    padImage: 128,
    ignoreLabel: 255,
  };
}

/** Throws naming the field when a config cannot work. */
export function validateAugmentConfig(c: AugmentConfig): void {
  const sizes = typeof c.minSize === "number" ? [c.minSize] : c.minSize;
  if (sizes.length === 0 || !sizes.every((s) => Number.isInteger(s) && s > 0))
    throw new Error(`augment: minSize must be positive integers, got ${JSON.stringify(c.minSize)}`);
  if (!(c.maxSize > 0)) throw new Error(`augment: maxSize must be positive, got ${c.maxSize}`);
  if (c.crop.length !== 2 || !c.crop.every((s) => Number.isInteger(s) && s > 0))
    throw new Error(`augment: crop must be [h, w] positive integers, got ${JSON.stringify(c.crop)}`);
  if (!(c.singleCategoryMaxArea > 0))
    throw new Error(`augment: singleCategoryMaxArea must be > 0, got ${c.singleCategoryMaxArea}`);
  if (!Number.isInteger(c.padImage) || c.padImage < 0 || c.padImage > 255)
    throw new Error(`augment: padImage must be 0..255, got ${c.padImage}`);
  if (!Number.isInteger(c.ignoreLabel) || c.ignoreLabel < 0 || c.ignoreLabel > 65535)
    throw new Error(`augment: ignoreLabel must be 0..65535, got ${c.ignoreLabel}`);
}

// ---------------------------------------------------------------------------------------------------------
// Crop

export interface CropWindow {
  y0: number;
  x0: number;
  h: number;
  w: number;
}

/**
 * detectron2 RandomCrop_CategoryAreaConstraint with an "absolute" crop of [min(cropH, h), min(cropW, w)]:
 * draws y0 then x0; with `maxArea` < 1, retries (at most 10 windows) until the window holds more than one
 * category besides `ignoreLabel` and the largest covers < maxArea of those pixels, else keeps the last.
 */
export function chooseCrop(
  label: LabelArray,
  width: number,
  height: number,
  crop: readonly [number, number],
  maxArea: number,
  ignoreLabel: number | undefined,
  rng: RandomSource,
): CropWindow {
  const h = Math.min(crop[0], height);
  const w = Math.min(crop[1], width);
  if (maxArea >= 1.0) {
    const y0 = rng.int(height - h + 1);
    const x0 = rng.int(width - w + 1);
    return { y0, x0, h, w };
  }
  let counts = new Int32Array(256);
  const touched: number[] = [];
  let win: CropWindow = { y0: 0, x0: 0, h, w };
  for (let attempt = 0; attempt < 10; attempt++) {
    const y0 = rng.int(height - h + 1);
    const x0 = rng.int(width - w + 1);
    win = { y0, x0, h, w };
    for (let y = y0; y < y0 + h; y++) {
      const row = y * width;
      for (let x = x0; x < x0 + w; x++) {
        const v = label[row + x]!;
        if (v === ignoreLabel) continue;
        if (v >= counts.length) {
          const bigger = new Int32Array(65536);
          bigger.set(counts);
          counts = bigger;
        }
        if (counts[v] === 0) touched.push(v);
        counts[v]!++;
      }
    }
    let max = 0;
    let sum = 0;
    for (const v of touched) {
      const c = counts[v]!;
      sum += c;
      if (c > max) max = c;
      counts[v] = 0;
    }
    const categories = touched.length;
    touched.length = 0;
    if (categories > 1 && max < sum * maxArea) break;
  }
  return win;
}

/** Copies a window out of interleaved pixels (`channels` per pixel). */
export function cropPixels<T extends Uint8Array | Uint16Array>(
  src: T,
  width: number,
  channels: number,
  win: CropWindow,
): T {
  const out = new (src.constructor as { new (n: number): T })(win.h * win.w * channels);
  const rowLen = win.w * channels;
  for (let y = 0; y < win.h; y++) {
    const s = ((win.y0 + y) * width + win.x0) * channels;
    out.set(src.subarray(s, s + rowLen), y * rowLen);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Photometric distortion (OpenCV 8-bit HSV, hue range 180)

const HSV_SHIFT = 12;
const SDIV = new Int32Array(256);
const HDIV180 = new Int32Array(256);
for (let i = 1; i < 256; i++) {
  SDIV[i] = Math.round((255 << HSV_SHIFT) / i);
  HDIV180[i] = Math.round((180 << HSV_SHIFT) / (6 * i));
}
const F_1_255 = Math.fround(1 / 255);
const HSCALE = Math.fround(6 / 180);
const fr = Math.fround;

/** OpenCV's RGB→HSV for 8-bit pixels (H in 0..179, S and V in 0..255), in place on interleaved RGB. */
export function rgbToHsv8(px: Uint8Array): void {
  const half = 1 << (HSV_SHIFT - 1);
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i]!;
    const g = px[i + 1]!;
    const b = px[i + 2]!;
    const v = Math.max(r, g, b);
    const vmin = Math.min(r, g, b);
    const diff = v - vmin;
    const s = (diff * SDIV[v]! + half) >> HSV_SHIFT;
    let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * HDIV180[diff]! + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    px[i] = Math.min(255, h);
    px[i + 1] = s;
    px[i + 2] = v;
  }
}

/** Round half to even, then saturate to 0..255 (OpenCV's saturate_cast<uchar>(float)). */
function saturateRound(x: number): number {
  let r = Math.round(x);
  if (r - x === 0.5 && r % 2 !== 0) r -= 1;
  return Math.max(0, Math.min(255, r));
}

/** Truncate toward zero, then saturate to 0..255 (OpenCV's vectorised v_trunc + v_pack_u). */
function saturateTrunc(x: number): number {
  const t = Math.trunc(x);
  return Math.max(0, Math.min(255, t));
}

/**
 * OpenCV's HSV→RGB for 8-bit pixels (float32 arithmetic), in place on rows of `width` pixels. OpenCV runs
 * blocks of `simdPixels` pixels of each row through its vector path, which truncates to 8 bits, and the
 * rest of the row (width mod simdPixels) through its scalar path, which rounds half to even; this is
 * reproduced here. The block is 4 × the float32 lanes of the CPU OpenCV dispatches to: 32 for AVX2 (the
 * default), 16 for SSE4.1 / NEON, 64 for AVX-512; 0 means every pixel takes the scalar path. Checked bit
 * for bit against OpenCV 4.6 (x86-64, AVX2 dispatch) on every hue × every saturation × every third value,
 * for row widths 31, 40 and 384; other builds may contract floating-point operations differently (±1 at
 * exact half-way cases).
 */
export function hsvToRgb8(px: Uint8Array, width = px.length / 3, simdPixels = 32): void {
  if (!Number.isInteger(width) || width <= 0 || px.length % (3 * width) !== 0)
    throw new Error(`hsvToRgb8: ${px.length} bytes are not rows of ${width} RGB pixels`);
  const vecEnd = simdPixels > 0 ? Math.floor(width / simdPixels) * simdPixels : 0;
  for (let i = 0, x = 0; i < px.length; i += 3, x = x + 1 === width ? 0 : x + 1) {
    const vec = x < vecEnd;
    const s = fr(px[i + 1]! * F_1_255);
    const v = fr(px[i + 2]! * F_1_255);
    let r: number;
    let g: number;
    let b: number;
    if (s === 0) {
      r = g = b = v;
    } else {
      let h = fr(px[i]! * HSCALE);
      let sector = Math.floor(h);
      h = fr(h - sector);
      sector %= 6;
      // 1 − s·h is a fused multiply-add in OpenCV's x86-64 builds (vector and scalar code), and so is
      // 1 − s·(1 − h) in the vector code; s·h is exact in float64, so rounding once to float32 is the FMA.
      const t0 = v;
      const t1 = fr(v * fr(1 - s));
      const t2 = fr(v * fr(1 - s * h));
      const t3 = fr(v * (vec ? fr(1 - s * fr(1 - h)) : fr(1 - fr(s * fr(1 - h)))));
      // OpenCV's sector table gives (b, g, r) as tab indices {1,3,0} {1,0,2} {3,0,1} {0,2,1} {0,1,3} {2,1,0}.
      switch (sector) {
        case 0:
          b = t1;
          g = t3;
          r = t0;
          break;
        case 1:
          b = t1;
          g = t0;
          r = t2;
          break;
        case 2:
          b = t3;
          g = t0;
          r = t1;
          break;
        case 3:
          b = t0;
          g = t2;
          r = t1;
          break;
        case 4:
          b = t0;
          g = t1;
          r = t3;
          break;
        default:
          b = t2;
          g = t1;
          r = t0;
      }
    }
    const to8 = vec ? saturateTrunc : saturateRound;
    px[i] = to8(fr(r * 255));
    px[i + 1] = to8(fr(g * 255));
    px[i + 2] = to8(fr(b * 255));
  }
}

/** detectron2's `convert`: float32(x)·alpha + beta, clipped to [0, 255], truncated to uint8; every `step`-th value from `offset`. */
function convert(px: Uint8Array, alpha: number, beta: number, offset = 0, step = 1): void {
  const a = fr(alpha);
  const b = fr(beta);
  for (let i = offset; i < px.length; i += step) {
    const y = fr(fr(px[i]! * a) + b);
    px[i] = y <= 0 ? 0 : y >= 255 ? 255 : Math.trunc(y);
  }
}

export interface ColorAugParams {
  brightnessDelta: number;
  contrastLow: number;
  contrastHigh: number;
  saturationLow: number;
  saturationHigh: number;
  hueDelta: number;
}

export const SSD_COLOR_AUG: Readonly<ColorAugParams> = {
  brightnessDelta: 32,
  contrastLow: 0.5,
  contrastHigh: 1.5,
  saturationLow: 0.5,
  saturationHigh: 1.5,
  hueDelta: 18,
};

/**
 * detectron2 ColorAugSSDTransform on interleaved 8-bit RGB rows of `width` pixels, in place (`simdPixels`:
 * see {@link hsvToRgb8}). Draw order: brightness coin [+ delta],
 * order coin (1: contrast, saturation, hue; 0: saturation, hue, contrast), then for each step its coin
 * [+ its value].
 */
export function colorAugSSD(
  px: Uint8Array,
  width: number,
  rng: RandomSource,
  p: ColorAugParams = SSD_COLOR_AUG,
  simdPixels = 32,
): void {
  if (px.length % (3 * width) !== 0)
    throw new Error(`colorAugSSD: ${px.length} bytes are not rows of ${width} RGB pixels`);
  const brightness = () => {
    if (rng.int(2)) convert(px, 1, uniform(rng, -p.brightnessDelta, p.brightnessDelta));
  };
  const contrast = () => {
    if (rng.int(2)) convert(px, uniform(rng, p.contrastLow, p.contrastHigh), 0);
  };
  const saturation = () => {
    if (rng.int(2)) {
      rgbToHsv8(px);
      convert(px, uniform(rng, p.saturationLow, p.saturationHigh), 0, 1, 3);
      hsvToRgb8(px, width, simdPixels);
    }
  };
  const hue = () => {
    if (rng.int(2)) {
      rgbToHsv8(px);
      const d = randint(rng, -p.hueDelta, p.hueDelta);
      for (let i = 0; i < px.length; i += 3) px[i] = (((px[i]! + d) % 180) + 180) % 180;
      hsvToRgb8(px, width, simdPixels);
    }
  };
  brightness();
  if (rng.int(2)) {
    contrast();
    saturation();
    hue();
  } else {
    saturation();
    hue();
    contrast();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Flip and pad

/** Mirrors interleaved pixels left–right, in place. */
export function flipHorizontal(
  px: Uint8Array | Uint16Array,
  width: number,
  height: number,
  channels: number,
): void {
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let a = 0, b = width - 1; a < b; a++, b--) {
      for (let c = 0; c < channels; c++) {
        const i = row + a * channels + c;
        const j = row + b * channels + c;
        const t = px[i]!;
        px[i] = px[j]!;
        px[j] = t;
      }
    }
  }
}

/** Pads interleaved pixels on the right and bottom to outWidth × outHeight with `value`. */
export function padTo<T extends Uint8Array | Uint16Array>(
  src: T,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  value: number,
): T {
  if (outWidth < width || outHeight < height)
    throw new Error(`padTo: ${width}×${height} does not fit in ${outWidth}×${outHeight}`);
  if (outWidth === width && outHeight === height) return src;
  const out = new (src.constructor as { new (n: number): T })(outWidth * outHeight * channels);
  out.fill(value);
  for (let y = 0; y < height; y++)
    out.set(src.subarray(y * width * channels, (y + 1) * width * channels), y * outWidth * channels);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The whole mapper

export interface AugmentedSample {
  /** crop[0] × crop[1] × 3 RGB bytes (padded). */
  image: Uint8Array;
  /** crop[0] × crop[1] labels (padded with the ignore label); the input's array type. */
  label: LabelArray;
  height: number;
  width: number;
  /** Size of the real content before padding (detectron2's `ori_size`). */
  validHeight: number;
  validWidth: number;
  /** What was drawn (for logs and tests). */
  resized: [number, number];
  crop: CropWindow;
  flipped: boolean;
}

/**
 * Runs the training augmentations on one decoded sample. The inputs are not modified. Throws when the
 * image and label sizes differ.
 */
export function augmentSample(
  image: { data: Uint8Array; width: number; height: number },
  label: { data: LabelArray; width: number; height: number },
  cfg: AugmentConfig,
  rng: RandomSource,
): AugmentedSample {
  if (image.width !== label.width || image.height !== label.height)
    throw new Error(
      `label is ${label.width}×${label.height} but the image is ${image.width}×${image.height}`,
    );
  const sizes = typeof cfg.minSize === "number" ? [cfg.minSize] : cfg.minSize;
  const short = sizes.length === 1 ? sizes[0]! : sizes[rng.int(sizes.length)]!;
  const [nh, nw] = shortestEdgeSize(image.height, image.width, short, cfg.maxSize);
  const img = resizeBilinear(image.data, image.width, image.height, 3, nw, nh);
  const lab = resizeNearest(label.data, label.width, label.height, nw, nh);
  const win = chooseCrop(lab, nw, nh, cfg.crop, cfg.singleCategoryMaxArea, cfg.ignoreLabel, rng);
  const cimg = cropPixels(img, nw, 3, win);
  const clab = cropPixels(lab, nw, 1, win);
  if (cfg.colorAug) colorAugSSD(cimg, win.w, rng);
  let flipped = false;
  if (cfg.flip && rng.float() < 0.5) {
    flipHorizontal(cimg, win.w, win.h, 3);
    flipHorizontal(clab, win.w, win.h, 1);
    flipped = true;
  }
  const [H, W] = cfg.crop;
  return {
    image: padTo(cimg, win.w, win.h, 3, W, H, cfg.padImage),
    label: padTo(clab, win.w, win.h, 1, W, H, cfg.ignoreLabel),
    height: H,
    width: W,
    validHeight: win.h,
    validWidth: win.w,
    resized: [nh, nw],
    crop: win,
    flipped,
  };
}
