// ADE20K-847 preparation, exactly as CAT-Seg's `datasets/prepare_ade20k_full.py` (ADE20K_2021_17_01):
//
// * Labels: the full-format `*_seg.png` decodes to class ids floor(R/10)·256 + G; CAT-Seg's 847-entry table
//   (assets/classes/ade847-ids.json, data taken from that script, see assets/SOURCES.md) maps an id to its
//   trainId 0..846, every other id (0 = unlabelled included) to 65535; written as uint16.
// * Resizing: when the image's short side exceeds 512 it becomes 512 and the long side
//   round(long / short · 512) (Python's round: half to even). The image goes through cv2.resize
//   INTER_LINEAR, the id map through cv2.resize INTER_NEAREST; both are reproduced here bit for bit
//   (OpenCV 4.x fixed-point bilinear, including its 2×2 area shortcut for an exact halving). Otherwise the
//   sizes are kept.
// * Images: decoded as PIL does (no EXIF rotation, no colour management; libjpeg's default IDCT and
//   upsampling, as sharp's decoder) and re-encoded as `Image.fromarray(img).save("x.jpg")` does: baseline
//   JPEG, quality 75, 4:2:0 chroma, standard Huffman tables, a JFIF 1.01 header with 1:1 density. The
//   bytes equal PIL's output (checked against Pillow with libjpeg-turbo), so even images that are not
//   resized are re-encoded, as in CAT-Seg.
import { readFileSync } from "node:fs";
import sharp from "sharp";
import { assetPath } from "../util/assets.js";
import { roundHalfEven } from "../util/math.js";
import { decodeAdeFullFormat, type LabelMap } from "./labels.js";
import { decodePng, pngToRgb } from "./png.js";

/** One row of CAT-Seg's ADE20K-847 table. */
export interface Ade847Class {
  name: string;
  /** ADE20K full-format class id (floor(R/10)·256 + G of `*_seg.png`). */
  id: number;
  /** Index in the 847-class vocabulary (assets/classes/ade847.json order). */
  trainId: number;
}

export const ADE847_IGNORE = 65535;

/** assets/classes/ade847-ids.json */
export function ade847TablePath(): string {
  return assetPath("classes", "ade847-ids.json");
}

let cachedTable: Ade847Class[] | undefined;

/** The 847-row table, checked: trainIds 0..846 in order, ids unique and in 1..65534. */
export function loadAde847Table(file = ade847TablePath()): Ade847Class[] {
  if (file === ade847TablePath() && cachedTable) return cachedTable;
  const rows = JSON.parse(readFileSync(file, "utf8")) as unknown;
  if (!Array.isArray(rows) || rows.length !== 847)
    throw new Error(`${file}: expected a JSON array of 847 rows`);
  const seen = new Set<number>();
  const table = rows.map((r: Ade847Class, k): Ade847Class => {
    if (typeof r?.name !== "string" || !Number.isInteger(r.id) || r.trainId !== k)
      throw new Error(`${file}: row ${k} is not {name, id, trainId: ${k}}`);
    if (r.id < 1 || r.id >= ADE847_IGNORE || seen.has(r.id))
      throw new Error(`${file}: row ${k}: bad id ${r.id}`);
    seen.add(r.id);
    return { name: r.name, id: r.id, trainId: r.trainId };
  });
  if (file === ade847TablePath()) cachedTable = table;
  return table;
}

/** id → trainId lookup over all 16-bit ids (65535 where the table has no row). */
export function ade847Lut(table: readonly Ade847Class[] = loadAde847Table()): Uint16Array {
  const lut = new Uint16Array(65536).fill(ADE847_IGNORE);
  for (const r of table) lut[r.id] = r.trainId;
  return lut;
}

/** Full-format class ids → ADE-847 trainIds (uint16, 65535 for ids outside the table). */
export function mapAde847(ids: ArrayLike<number>, lut: Uint16Array = ade847Lut()): Uint16Array {
  const out = new Uint16Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = lut[ids[i]! & 0xffff]!;
  return out;
}

// ---- the resize rule and cv2's resizes ----

/** CAT-Seg's target size: short side 512 when it is larger than 512, else null (no resize). */
export function ade847ResizeTarget(
  width: number,
  height: number,
  maxSize = 512,
): { width: number; height: number } | null {
  if (width >= height && height > maxSize)
    return { width: roundHalfEven((width / height) * maxSize), height: maxSize };
  if (height >= width && width > maxSize)
    return { width: maxSize, height: roundHalfEven((height / width) * maxSize) };
  return null;
}

/** cv2.resize(..., INTER_NEAREST): source index floor(d · (1 / (dst/src))), clamped. */
export function cvResizeNearest<T extends Uint8Array | Uint16Array | Int32Array>(
  src: T,
  width: number,
  height: number,
  channels: number,
  dstWidth: number,
  dstHeight: number,
): T {
  const ifx = 1 / (dstWidth / width);
  const ify = 1 / (dstHeight / height);
  const out = new (src.constructor as new (n: number) => T)(dstWidth * dstHeight * channels);
  const xo = new Int32Array(dstWidth);
  for (let x = 0; x < dstWidth; x++) xo[x] = Math.min(Math.floor(x * ifx), width - 1) * channels;
  for (let y = 0; y < dstHeight; y++) {
    const row = Math.min(Math.floor(y * ify), height - 1) * width * channels;
    const o = y * dstWidth * channels;
    for (let x = 0; x < dstWidth; x++)
      for (let c = 0; c < channels; c++) out[o + x * channels + c] = src[row + xo[x]! + c]!;
  }
  return out;
}

/** Source offsets and 11-bit weights of cv2's bilinear resize along one axis. */
function linearTaps(src: number, dst: number, clampX: boolean) {
  const scale = 1 / (dst / src);
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w0 = new Int32Array(dst);
  const w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    // Along x cv2 pins the taps at the borders (weight 0 on the outside tap); along y it only clamps the
    // row indices and keeps the weights.
    if (clampX && s < 0) {
      s = 0;
      f = 0;
    }
    if (clampX && s >= src - 1) {
      s = src - 1;
      f = 0;
    }
    i0[d] = Math.min(Math.max(s, 0), src - 1);
    i1[d] = Math.min(Math.max(s + 1, 0), src - 1);
    w0[d] = roundHalfEven(Math.fround(1 - f) * 2048);
    w1[d] = roundHalfEven(f * 2048);
  }
  return { i0, i1, w0, w1 };
}

/**
 * cv2.resize(uint8 image, (dstWidth, dstHeight), interpolation=INTER_LINEAR) with OpenCV 4.x's exact
 * arithmetic: 11-bit weights, an int horizontal pass, then the vertical pass
 * (((b0·(S0>>4))>>16) + ((b1·(S1>>4))>>16) + 2) >> 2; an exact 2× reduction on both axes takes the
 * INTER_AREA shortcut (2×2 mean, rounded). Interleaved `channels` per pixel.
 */
export function cvResizeLinear8u(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  dstWidth: number,
  dstHeight: number,
): Uint8Array {
  const cn = channels;
  const out = new Uint8Array(dstWidth * dstHeight * cn);
  const sx = 1 / (dstWidth / width);
  const sy = 1 / (dstHeight / height);
  if (Math.abs(sx - 2) < Number.EPSILON && Math.abs(sy - 2) < Number.EPSILON) {
    const stride = width * cn;
    for (let y = 0; y < dstHeight; y++)
      for (let x = 0; x < dstWidth; x++)
        for (let c = 0; c < cn; c++) {
          const a = 2 * y * stride + 2 * x * cn + c;
          const v = src[a]! + src[a + cn]! + src[a + stride]! + src[a + stride + cn]!;
          out[(y * dstWidth + x) * cn + c] = (v + 2) >> 2;
        }
    return out;
  }
  const tx = linearTaps(width, dstWidth, true);
  const ty = linearTaps(height, dstHeight, false);
  const rowLen = dstWidth * cn;
  // Horizontally resized source rows, computed once each (cv2 keeps a small ring of them).
  const rows = new Map<number, Int32Array>();
  const hrow = (r: number): Int32Array => {
    let h = rows.get(r);
    if (h) return h;
    h = new Int32Array(rowLen);
    const s = r * width * cn;
    for (let x = 0; x < dstWidth; x++) {
      const a = s + tx.i0[x]! * cn;
      const b = s + tx.i1[x]! * cn;
      const w0 = tx.w0[x]!;
      const w1 = tx.w1[x]!;
      for (let c = 0; c < cn; c++) h[x * cn + c] = src[a + c]! * w0 + src[b + c]! * w1;
    }
    rows.set(r, h);
    return h;
  };
  for (let y = 0; y < dstHeight; y++) {
    const r0 = ty.i0[y]!;
    for (const k of rows.keys()) if (k < r0) rows.delete(k);
    const s0 = hrow(r0);
    const s1 = hrow(ty.i1[y]!);
    const b0 = ty.w0[y]!;
    const b1 = ty.w1[y]!;
    const o = y * rowLen;
    for (let x = 0; x < rowLen; x++) {
      // (b · (S >> 4)) >> 16 is the high half of a 16×16-bit product, as the SIMD code computes it.
      const v = (((b0 * (s0[x]! >> 4)) >> 16) + ((b1 * (s1[x]! >> 4)) >> 16) + 2) >> 2;
      out[o + x] = Math.min(v, 255); // never negative: every term is ≥ 0
    }
  }
  return out;
}

// ---- images as PIL reads and writes them ----

/** Decoded 8-bit pixels, interleaved: 1 channel (greyscale JPEG) or 3 (RGB). */
export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/**
 * A JPEG's pixels as `np.asarray(Image.open(file))`: stored orientation (EXIF ignored), no ICC conversion,
 * greyscale kept as one channel. Other colour spaces (CMYK) are converted to RGB.
 */
export async function readImagePil(input: string | Buffer): Promise<Pixels> {
  const img = sharp(input, { ignoreIcc: true, autoOrient: false });
  const meta = await img.metadata();
  const grey = meta.channels === 1 || (meta.channels === 2 && meta.hasAlpha);
  const { data, info } = await img
    .removeAlpha()
    .toColourspace(grey ? "b-w" : "srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== (grey ? 1 : 3)) throw new Error(`decoded to ${info.channels} channels`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    width: info.width,
    height: info.height,
    channels: grey ? 1 : 3,
  };
}

/** The JFIF APP0 segment libjpeg writes for PIL: version 1.01, no units, density 1:1, no thumbnail. */
const JFIF_APP0 = Buffer.from([
  0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
]);

/** `Image.fromarray(pixels).save("x.jpg")`: quality 75, 4:2:0, baseline, standard tables, JFIF header. */
export async function encodeJpegPil(px: Pixels): Promise<Buffer> {
  const jpg = await sharp(px.data, { raw: { width: px.width, height: px.height, channels: px.channels } })
    .toColourspace(px.channels === 1 ? "b-w" : "srgb")
    .jpeg({
      quality: 75,
      chromaSubsampling: "4:2:0",
      optimiseCoding: false,
      progressive: false,
      mozjpeg: false,
      trellisQuantisation: false,
      overshootDeringing: false,
      optimiseScans: false,
    })
    .toBuffer();
  if (jpg[0] !== 0xff || jpg[1] !== 0xd8) throw new Error("JPEG encoder: no SOI marker");
  if (jpg[2] === 0xff && jpg[3] === 0xe0) return jpg; // already has an APP0
  return Buffer.concat([jpg.subarray(0, 2), JFIF_APP0, jpg.subarray(2)]);
}

// ---- one image ----

/** An error about one particular input file (reported under that file's name). */
export class InputFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/** Full-format annotation PNG → class ids (floor(R/10)·256 + G). */
export function decodeAdeSegPng(buf: Uint8Array): LabelMap {
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(buf);
  } catch (e) {
    throw new Error(`corrupt PNG (${(e as Error).message})`);
  }
  if (png.colorType !== 2 && png.colorType !== 6)
    throw new Error(`expected an RGB full-format annotation, got PNG colour type ${png.colorType}`);
  return decodeAdeFullFormat(pngToRgb(png), png.width, png.height);
}

/**
 * One validation image as CAT-Seg prepares it: the JPEG re-encoded (resized if its short side is over 512)
 * and the uint16 trainId map at the same size.
 */
export async function prepareAde847Pair(
  jpgFile: string,
  segFile: string,
  lut: Uint16Array = ade847Lut(),
): Promise<{ image: Buffer; label: LabelMap; resized: boolean }> {
  let img: Pixels;
  try {
    img = await readImagePil(jpgFile);
  } catch (e) {
    throw new InputFileError(jpgFile, `cannot decode JPEG (${(e as Error).message})`);
  }
  let ids: LabelMap;
  try {
    ids = decodeAdeSegPng(readFileSync(segFile));
  } catch (e) {
    throw new InputFileError(segFile, (e as Error).message);
  }
  const target = ade847ResizeTarget(img.width, img.height);
  if (target) {
    img = {
      data: cvResizeLinear8u(img.data, img.width, img.height, img.channels, target.width, target.height),
      width: target.width,
      height: target.height,
      channels: img.channels,
    };
    ids = {
      data: cvResizeNearest(ids.data as Uint16Array, ids.width, ids.height, 1, target.width, target.height),
      width: target.width,
      height: target.height,
    };
  }
  const label: LabelMap = { data: mapAde847(ids.data, lut), width: ids.width, height: ids.height };
  return { image: await encodeJpegPil(img), label, resized: target !== null };
}
