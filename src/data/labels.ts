// Label maps: the prepared ground truth (read and written as grey/palette PNG or grey TIFF, through png.ts
// and tiff.ts) and the dataset annotation formats they are made from (VOC colour masks, ADE20K full-format
// annotations, COCO RLE).
import { promises as fsp } from "node:fs";
import { writeFileAtomic } from "../util/fs.js";
import { type DecodedPng, decodePng, encodePng, isPng } from "./png.js";
import { decodeTiffGrey, encodeTiffGrey, isTiff } from "./tiff.js";

// The codecs' entry points that label-map callers use, kept importable from here.
export { type DecodedPng, decodePng, encodePng, pngToRgb } from "./png.js";
export { encodeTiffGrey } from "./tiff.js";

/** A single-channel integer label map, row-major. */
export interface LabelMap {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
}

/** A PNG turned into a label map: grey values, or palette indices. RGB / alpha PNGs are refused. */
export function pngToLabelMap(png: DecodedPng): LabelMap {
  if (png.colorType !== 0 && png.colorType !== 3)
    throw new Error(`PNG colour type ${png.colorType} (${png.channels} channels) is not a label map`);
  return { data: png.data, width: png.width, height: png.height };
}

/**
 * Reads a prepared ground-truth file: 8/16-bit grey PNG, palette PNG (indices), or 8/16-bit grey TIFF.
 * Errors name the file.
 */
export async function readLabelMap(file: string): Promise<LabelMap> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeLabelBuffer(buf, file);
}

/** {@link readLabelMap} on bytes in memory. */
export async function decodeLabelBuffer(buf: Uint8Array, what = "label buffer"): Promise<LabelMap> {
  if (isPng(buf)) {
    try {
      return pngToLabelMap(decodePng(buf));
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  }
  if (isTiff(buf)) return decodeTiffGrey(buf, what);
  throw new Error(`${what}: neither PNG nor TIFF`);
}

/**
 * Writes a label map atomically; the format follows the extension: `.png` (8-bit grey for Uint8Array,
 * 16-bit grey for Uint16Array; with `palette`, an 8-bit palette PNG) or `.tif`/`.tiff` (grey TIFF).
 */
export async function writeLabelMap(
  file: string,
  map: LabelMap,
  o: { palette?: Uint8Array } = {},
): Promise<void> {
  const lower = file.toLowerCase();
  let bytes: Buffer;
  if (lower.endsWith(".png"))
    bytes = encodePng({
      width: map.width,
      height: map.height,
      channels: 1,
      data: map.data,
      ...(o.palette ? { palette: o.palette } : {}),
    });
  else if (lower.endsWith(".tif") || lower.endsWith(".tiff")) bytes = encodeTiffGrey(map);
  else throw new Error(`writeLabelMap: ${file}: unknown extension (use .png or .tif)`);
  await writeFileAtomic(file, bytes);
}

// ---- source formats ----

/** The PASCAL VOC colour map (bitwise construction), 256 RGB triplets; index 255 is (224,224,192). */
export function vocPalette(): Uint8Array {
  const p = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    let r = 0;
    let g = 0;
    let b = 0;
    let c = i;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    p[3 * i] = r;
    p[3 * i + 1] = g;
    p[3 * i + 2] = b;
  }
  return p;
}

/**
 * VOC colour-rendered mask (RGB, 3 bytes per pixel) → SegmentationClass indices: the 21 class colours give
 * 0..20, (224,224,192) gives 255. Any other colour is an error naming it (or `unknown` when given).
 */
export function decodeVocColorMask(
  rgb: Uint8Array,
  width: number,
  height: number,
  o: { unknown?: number } = {},
): LabelMap {
  if (rgb.length !== width * height * 3)
    throw new Error(`VOC mask: ${rgb.length} bytes for ${width}×${height}×3`);
  const pal = vocPalette();
  const lut = new Map<number, number>();
  for (let k = 0; k <= 20; k++) lut.set((pal[3 * k]! << 16) | (pal[3 * k + 1]! << 8) | pal[3 * k + 2]!, k);
  lut.set((224 << 16) | (224 << 8) | 192, 255);
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const key = (rgb[3 * i]! << 16) | (rgb[3 * i + 1]! << 8) | rgb[3 * i + 2]!;
    const v = lut.get(key);
    if (v === undefined) {
      if (o.unknown === undefined)
        throw new Error(
          `VOC mask: colour (${rgb[3 * i]},${rgb[3 * i + 1]},${rgb[3 * i + 2]}) at pixel ${i % width},${Math.floor(i / width)} is not in the VOC palette`,
        );
      out[i] = o.unknown;
    } else out[i] = v;
  }
  return { data: out, width, height };
}

/** ADE20K full-format RGB annotation (`*_seg.png`) → class ids: floor(R/10)·256 + G (B is the instance). */
export function decodeAdeFullFormat(rgb: Uint8Array, width: number, height: number): LabelMap {
  if (rgb.length !== width * height * 3)
    throw new Error(`ADE mask: ${rgb.length} bytes for ${width}×${height}×3`);
  const out = new Uint16Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rgb[3 * i]! / 10) * 256 + rgb[3 * i + 1]!;
  return { data: out, width, height };
}

/**
 * Decodes COCO RLE (pycocotools): `counts` as the compressed string or as a number array; the mask is
 * column-major (Fortran order) in the RLE, returned row-major (h×w, 1 = inside).
 */
export function decodeCocoRle(rle: {
  size: [number, number] | number[];
  counts: string | number[];
}): Uint8Array {
  const [h, w] = rle.size as [number, number];
  const counts = typeof rle.counts === "string" ? rleCountsFromString(rle.counts) : rle.counts;
  const out = new Uint8Array(h * w);
  let p = 0;
  let v = 0;
  for (const c of counts) {
    if (p + c > h * w) throw new Error(`RLE: counts cover more than ${h}×${w} pixels`);
    if (v) for (let k = p; k < p + c; k++) out[(k % h) * w + Math.floor(k / h)] = 1;
    p += c;
    v ^= 1;
  }
  return out;
}

/** pycocotools' `rleFrString`: LEB128-like 5-bit groups offset by 48, with deltas from the count two back. */
export function rleCountsFromString(s: string): number[] {
  const cnts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error("RLE: truncated counts string");
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2]!;
    cnts.push(x);
  }
  return cnts;
}
