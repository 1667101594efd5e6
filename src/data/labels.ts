import { promises as fsp } from "node:fs";
import { deflateSync, inflateSync } from "node:zlib";
import sharp from "sharp";
import { writeFileAtomic } from "../util/fs.js";

/** A single-channel integer label map, row-major. */
export interface LabelMap {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
}

/** A decoded PNG: samples as stored (palette PNGs give indices), interleaved `channels` per pixel. */
export interface DecodedPng {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colorType: number;
  channels: number;
  /** Uint8Array for bit depths ≤ 8, Uint16Array for 16-bit. */
  data: Uint8Array | Uint16Array;
  /** RGB triplets of the PLTE chunk (palette images). */
  palette?: Uint8Array;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

let crcTable: Uint32Array | undefined;
function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(buf: Uint8Array): boolean {
  return buf.length >= 8 && PNG_SIGNATURE.equals(Buffer.from(buf.buffer, buf.byteOffset, 8));
}

export function isTiff(buf: Uint8Array): boolean {
  return (
    buf.length >= 4 &&
    ((buf[0] === 0x49 && buf[1] === 0x49 && buf[2] === 42 && buf[3] === 0) ||
      (buf[0] === 0x4d && buf[1] === 0x4d && buf[2] === 0 && buf[3] === 42))
  );
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undoes the per-row filters of one (sub)image in place; returns the unfiltered rows (no filter bytes). */
function unfilter(src: Uint8Array, offset: number, rowBytes: number, rows: number, bpp: number): Uint8Array {
  const out = new Uint8Array(rowBytes * rows);
  for (let y = 0; y < rows; y++) {
    const f = src[offset + y * (rowBytes + 1)];
    if (f === undefined) throw new Error("PNG: image data too short");
    const s = offset + y * (rowBytes + 1) + 1;
    const o = y * rowBytes;
    const p = o - rowBytes;
    for (let x = 0; x < rowBytes; x++) {
      const raw = src[s + x];
      if (raw === undefined) throw new Error("PNG: image data too short");
      const a = x >= bpp ? out[o + x - bpp]! : 0;
      const b = y > 0 ? out[p + x]! : 0;
      const c = x >= bpp && y > 0 ? out[p + x - bpp]! : 0;
      let v: number;
      switch (f) {
        case 0:
          v = raw;
          break;
        case 1:
          v = raw + a;
          break;
        case 2:
          v = raw + b;
          break;
        case 3:
          v = raw + ((a + b) >> 1);
          break;
        case 4:
          v = raw + paeth(a, b, c);
          break;
        default:
          throw new Error(`PNG: bad filter type ${f} in row ${y}`);
      }
      out[o + x] = v & 0xff;
    }
  }
  return out;
}

/** Unpacks unfiltered rows into one sample per element. */
function unpack(
  rowsData: Uint8Array,
  width: number,
  rows: number,
  channels: number,
  depth: number,
  out: Uint8Array | Uint16Array,
  place: (x: number, y: number) => number,
): void {
  const spr = width * channels; // samples per row
  const rowBytes = Math.ceil((spr * depth) / 8);
  for (let y = 0; y < rows; y++) {
    const r = y * rowBytes;
    for (let x = 0; x < width; x++) {
      const dst = place(x, y) * channels;
      for (let ch = 0; ch < channels; ch++) {
        const i = x * channels + ch;
        let v: number;
        if (depth === 8) v = rowsData[r + i]!;
        else if (depth === 16) v = (rowsData[r + 2 * i]! << 8) | rowsData[r + 2 * i + 1]!;
        else {
          const bit = i * depth;
          v = (rowsData[r + (bit >> 3)]! >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
        }
        out[dst + ch] = v;
      }
    }
  }
}

const ADAM7: [number, number, number, number][] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

/** Decodes a PNG exactly (CRCs checked). Throws a descriptive error on anything malformed. */
export function decodePng(buf: Uint8Array): DecodedPng {
  if (!isPng(buf)) throw new Error("not a PNG file (bad signature)");
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  let pos = 8;
  let width = 0;
  let height = 0;
  let bitDepth = 0;
  let colorType = -1;
  let interlace = 0;
  let palette: Uint8Array | undefined;
  const idat: Buffer[] = [];
  let sawEnd = false;
  while (pos < b.length) {
    if (pos + 12 > b.length) throw new Error("PNG: truncated chunk header");
    const len = b.readUInt32BE(pos);
    const type = b.toString("latin1", pos + 4, pos + 8);
    if (pos + 12 + len > b.length) throw new Error(`PNG: truncated ${type} chunk`);
    const crc = b.readUInt32BE(pos + 8 + len);
    if (crc32(b, pos + 4, pos + 8 + len) !== crc) throw new Error(`PNG: CRC mismatch in ${type} chunk`);
    const data = b.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8]!;
      colorType = data[9]!;
      interlace = data[12]!;
    } else if (type === "PLTE") palette = new Uint8Array(data);
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") {
      sawEnd = true;
      break;
    }
    pos += 12 + len;
  }
  if (colorType < 0) throw new Error("PNG: no IHDR chunk");
  if (!sawEnd) throw new Error("PNG: missing IEND (truncated file)");
  const channels = CHANNELS[colorType];
  if (channels === undefined) throw new Error(`PNG: bad colour type ${colorType}`);
  if (![1, 2, 4, 8, 16].includes(bitDepth)) throw new Error(`PNG: bad bit depth ${bitDepth}`);
  if (colorType === 3 && !palette) throw new Error("PNG: palette image without PLTE");
  if (width === 0 || height === 0) throw new Error("PNG: empty image");
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw new Error(`PNG: corrupt image data (${(e as Error).message})`);
  }
  const n = width * height * channels;
  const out = bitDepth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  const bpp = Math.max(1, (channels * bitDepth) >> 3);
  if (interlace === 0) {
    const rowBytes = Math.ceil((width * channels * bitDepth) / 8);
    const rows = unfilter(raw, 0, rowBytes, height, bpp);
    unpack(rows, width, height, channels, bitDepth, out, (x, y) => y * width + x);
  } else {
    let off = 0;
    for (const [x0, y0, dx, dy] of ADAM7) {
      const w = Math.ceil((width - x0) / dx);
      const h = Math.ceil((height - y0) / dy);
      if (w <= 0 || h <= 0) continue;
      const rowBytes = Math.ceil((w * channels * bitDepth) / 8);
      const rows = unfilter(raw, off, rowBytes, h, bpp);
      unpack(rows, w, h, channels, bitDepth, out, (x, y) => (y0 + y * dy) * width + x0 + x * dx);
      off += h * (rowBytes + 1);
    }
  }
  return { width, height, bitDepth, colorType, channels, data: out, ...(palette ? { palette } : {}) };
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + data.length), 8 + data.length);
  return out;
}

export interface PngImageInput {
  width: number;
  height: number;
  /** 1 (grey or palette index) or 3 (RGB). */
  channels: 1 | 3;
  /** Uint16Array → 16-bit samples; otherwise 8-bit. */
  data: Uint8Array | Uint16Array;
  /** Writes a palette PNG (8-bit indices) with these RGB triplets. */
  palette?: Uint8Array;
}

/** Encodes a non-interlaced PNG (grey/RGB 8 or 16-bit, or 8-bit palette), filter "up" on every row. */
export function encodePng(img: PngImageInput): Buffer {
  const { width, height, channels, data, palette } = img;
  if (data.length !== width * height * channels)
    throw new Error(`encodePng: ${data.length} samples for ${width}×${height}×${channels}`);
  const sixteen = data instanceof Uint16Array;
  if (palette && (sixteen || channels !== 1))
    throw new Error("encodePng: palette images are 8-bit, 1 channel");
  const colorType = palette ? 3 : channels === 1 ? 0 : 2;
  const bytesPer = sixteen ? 2 : 1;
  const rowBytes = width * channels * bytesPer;
  const rows = new Uint8Array(rowBytes * height);
  if (sixteen) {
    for (let i = 0; i < data.length; i++) {
      rows[2 * i] = data[i]! >> 8;
      rows[2 * i + 1] = data[i]! & 0xff;
    }
  } else {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v > 255) throw new Error(`encodePng: value ${v} does not fit in 8 bits`);
      rows[i] = v;
    }
  }
  const filtered = new Uint8Array((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (rowBytes + 1);
    filtered[o] = y === 0 ? 0 : 2;
    const r = y * rowBytes;
    for (let x = 0; x < rowBytes; x++)
      filtered[o + 1 + x] = y === 0 ? rows[r + x]! : (rows[r + x]! - rows[r - rowBytes + x]!) & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = sixteen ? 16 : 8;
  ihdr[9] = colorType;
  const parts = [PNG_SIGNATURE, chunk("IHDR", ihdr)];
  if (palette) parts.push(chunk("PLTE", palette));
  parts.push(chunk("IDAT", deflateSync(filtered, { level: 6 })), chunk("IEND", new Uint8Array(0)));
  return Buffer.concat(parts);
}

/** Encodes a 16-bit (or 8-bit, for Uint8Array) single-channel TIFF: one strip, Adobe deflate. */
export function encodeTiffGrey(map: LabelMap): Buffer {
  const { width, height, data } = map;
  if (data.length !== width * height)
    throw new Error(`encodeTiffGrey: ${data.length} values for ${width}×${height}`);
  const bits = data instanceof Uint16Array ? 16 : 8;
  const raw = Buffer.alloc(width * height * (bits / 8));
  if (bits === 16) for (let i = 0; i < data.length; i++) raw.writeUInt16LE(data[i]!, 2 * i);
  else raw.set(data);
  const strip = deflateSync(raw, { level: 6 });
  // Header (8) | strip | IFD: count(2) + 10 entries·12 + next(4).
  const entries: [number, number, number, number][] = [
    [256, 4, 1, width], // ImageWidth (LONG)
    [257, 4, 1, height], // ImageLength
    [258, 3, 1, bits], // BitsPerSample
    [259, 3, 1, 8], // Compression: Adobe deflate
    [262, 3, 1, 1], // Photometric: BlackIsZero
    [273, 4, 1, 8], // StripOffsets
    [277, 3, 1, 1], // SamplesPerPixel
    [278, 4, 1, height], // RowsPerStrip
    [279, 4, 1, strip.length], // StripByteCounts
    [339, 3, 1, 1], // SampleFormat: unsigned
  ];
  let ifdOffset = 8 + strip.length;
  ifdOffset += ifdOffset & 1;
  const out = Buffer.alloc(ifdOffset + 2 + entries.length * 12 + 4);
  out.write("II", 0, "latin1");
  out.writeUInt16LE(42, 2);
  out.writeUInt32LE(ifdOffset, 4);
  strip.copy(out, 8);
  out.writeUInt16LE(entries.length, ifdOffset);
  entries.forEach(([tag, type, count, value], k) => {
    const e = ifdOffset + 2 + k * 12;
    out.writeUInt16LE(tag, e);
    out.writeUInt16LE(type, e + 2);
    out.writeUInt32LE(count, e + 4);
    if (type === 3) out.writeUInt16LE(value, e + 8);
    else out.writeUInt32LE(value, e + 8);
  });
  out.writeUInt32LE(0, ifdOffset + 2 + entries.length * 12);
  return out;
}

/** Reads a single-channel TIFF (8 or 16-bit grey) through sharp, keeping the stored values. */
export async function decodeTiffGrey(buf: Uint8Array, what = "TIFF"): Promise<LabelMap> {
  try {
    const img = sharp(buf);
    const meta = await img.metadata();
    if (meta.channels !== 1) throw new Error(`${meta.channels} channels, expected 1`);
    const sixteen = meta.depth === "ushort" || meta.depth === "short";
    if (!sixteen && meta.depth !== "uchar" && meta.depth !== "char")
      throw new Error(`sample type ${meta.depth}`);
    // Without an explicit single-channel colour space sharp expands grey to sRGB (and rescales 16-bit).
    const { data, info } = await img
      .toColourspace(sixteen ? "grey16" : "b-w")
      .raw(sixteen ? { depth: "ushort" } : {})
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1) throw new Error(`decoded to ${info.channels} channels`);
    const n = info.width * info.height;
    if (sixteen) {
      if (data.length !== 2 * n) throw new Error(`decoded ${data.length} bytes for ${n} 16-bit pixels`);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = data.readUInt16LE(2 * i);
      return { data: out, width: info.width, height: info.height };
    }
    if (data.length !== n) throw new Error(`decoded ${data.length} bytes for ${n} 8-bit pixels`);
    return { data: new Uint8Array(data), width: info.width, height: info.height };
  } catch (e) {
    throw new Error(`${what}: cannot decode TIFF (${(e as Error).message})`);
  }
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

/** RGB samples (8-bit) of a decoded PNG, expanding grey/palette and dropping alpha. */
export function pngToRgb(png: DecodedPng): Uint8Array {
  if (png.bitDepth === 16) throw new Error("pngToRgb: 16-bit PNG");
  const n = png.width * png.height;
  const out = new Uint8Array(n * 3);
  const d = png.data;
  for (let i = 0; i < n; i++) {
    if (png.colorType === 3) {
      const k = d[i]!;
      out.set(png.palette!.subarray(3 * k, 3 * k + 3), 3 * i);
    } else if (png.colorType === 0 || png.colorType === 4) {
      const v = d[i * png.channels]!;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    } else {
      out[3 * i] = d[i * png.channels]!;
      out[3 * i + 1] = d[i * png.channels + 1]!;
      out[3 * i + 2] = d[i * png.channels + 2]!;
    }
  }
  return out;
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
