// PNG codec for label maps and small images: decodes every PNG colour type and bit depth (1–16, Adam7
// included) to the samples as stored (palette images give their indices, 16-bit images their exact values),
// and encodes 8/16-bit grey, 8/16-bit RGB and 8-bit palette PNGs. CRCs are checked, and a PNG's image data
// is inflated only up to the size its header declares.
import { crc32, deflateSync, inflateSync } from "node:zlib";

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

/**
 * The most pixels a PNG may declare (sharp's default input limit, 0x3FFF², which the images obey too).
 * A larger header is refused before anything is inflated.
 */
export const MAX_PNG_PIXELS = 0x3fff * 0x3fff;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Adam7 passes: first column, first row, column step, row step. */
const ADAM7: [number, number, number, number][] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

export function isPng(buf: Uint8Array): boolean {
  return buf.length >= 8 && PNG_SIGNATURE.equals(Buffer.from(buf.buffer, buf.byteOffset, 8));
}

// ---- decoding ----

interface PngChunks {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace: number;
  palette?: Uint8Array;
  idat: Buffer[];
}

/** Walks the chunks up to IEND, checking each CRC; keeps IHDR's fields, PLTE and the IDAT data. */
function readChunks(b: Buffer): PngChunks {
  const out: PngChunks = { width: 0, height: 0, bitDepth: 0, colorType: -1, interlace: 0, idat: [] };
  let pos = 8;
  let sawEnd = false;
  while (pos < b.length) {
    if (pos + 12 > b.length) throw new Error("PNG: truncated chunk header");
    const len = b.readUInt32BE(pos);
    const type = b.toString("latin1", pos + 4, pos + 8);
    if (pos + 12 + len > b.length) throw new Error(`PNG: truncated ${type} chunk`);
    const crc = b.readUInt32BE(pos + 8 + len);
    if (crc32(b.subarray(pos + 4, pos + 8 + len)) !== crc)
      throw new Error(`PNG: CRC mismatch in ${type} chunk`);
    const data = b.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      out.width = data.readUInt32BE(0);
      out.height = data.readUInt32BE(4);
      out.bitDepth = data[8]!;
      out.colorType = data[9]!;
      out.interlace = data[12]!;
    } else if (type === "PLTE") out.palette = new Uint8Array(data);
    else if (type === "IDAT") out.idat.push(data);
    else if (type === "IEND") {
      sawEnd = true;
      break;
    }
    pos += 12 + len;
  }
  if (out.colorType < 0) throw new Error("PNG: no IHDR chunk");
  if (!sawEnd) throw new Error("PNG: missing IEND (truncated file)");
  return out;
}

/** The (sub)images the pixels are stored as: the whole image, or the seven Adam7 passes. */
function passesOf(c: PngChunks): { x0: number; y0: number; dx: number; dy: number; w: number; h: number }[] {
  if (c.interlace === 0) return [{ x0: 0, y0: 0, dx: 1, dy: 1, w: c.width, h: c.height }];
  return ADAM7.map(([x0, y0, dx, dy]) => ({
    x0,
    y0,
    dx,
    dy,
    w: Math.ceil((c.width - x0) / dx),
    h: Math.ceil((c.height - y0) / dy),
  })).filter((p) => p.w > 0 && p.h > 0);
}

const rowBytesOf = (w: number, channels: number, bitDepth: number): number =>
  Math.ceil((w * channels * bitDepth) / 8);

/**
 * Inflates the IDAT stream, refusing a header that declares more than MAX_PNG_PIXELS before inflating and
 * stopping at the byte count the declared size implies (filter bytes included), so a small file cannot
 * inflate into an arbitrarily large buffer.
 */
function inflateImage(c: PngChunks, channels: number, passes: ReturnType<typeof passesOf>): Buffer {
  const { width, height, bitDepth } = c;
  if (width * height > MAX_PNG_PIXELS) {
    throw new Error(
      `PNG: declared size ${width}×${height} (${bitDepth}-bit, ${channels} channel${channels > 1 ? "s" : ""}) is over the limit of ${MAX_PNG_PIXELS} pixels; not inflating it`,
    );
  }
  const expected = passes.reduce((s, p) => s + p.h * (rowBytesOf(p.w, channels, bitDepth) + 1), 0);
  try {
    return inflateSync(Buffer.concat(c.idat), { maxOutputLength: expected });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw new Error(
        `PNG: image data inflates to more than the ${expected} bytes its declared size ${width}×${height} (${bitDepth}-bit) holds`,
      );
    }
    throw new Error(`PNG: corrupt image data (${(e as Error).message})`);
  }
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undoes the per-row filters of one (sub)image; returns the unfiltered rows (no filter bytes). */
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
  const rowBytes = rowBytesOf(width, channels, depth);
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

/** Decodes a PNG exactly (CRCs checked). Throws a descriptive error on anything malformed. */
export function decodePng(buf: Uint8Array): DecodedPng {
  if (!isPng(buf)) throw new Error("not a PNG file (bad signature)");
  const c = readChunks(Buffer.from(buf.buffer, buf.byteOffset, buf.length));
  const { width, height, bitDepth, colorType, palette } = c;
  const channels = CHANNELS[colorType];
  if (channels === undefined) throw new Error(`PNG: bad colour type ${colorType}`);
  if (![1, 2, 4, 8, 16].includes(bitDepth)) throw new Error(`PNG: bad bit depth ${bitDepth}`);
  if (colorType === 3 && !palette) throw new Error("PNG: palette image without PLTE");
  if (width === 0 || height === 0) throw new Error("PNG: empty image");
  const passes = passesOf(c);
  const raw = inflateImage(c, channels, passes);
  const n = width * height * channels;
  const out = bitDepth === 16 ? new Uint16Array(n) : new Uint8Array(n);
  const bpp = Math.max(1, (channels * bitDepth) >> 3);
  let off = 0;
  for (const { x0, y0, dx, dy, w, h } of passes) {
    const rowBytes = rowBytesOf(w, channels, bitDepth);
    const rows = unfilter(raw, off, rowBytes, h, bpp);
    unpack(rows, w, h, channels, bitDepth, out, (x, y) => (y0 + y * dy) * width + x0 + x * dx);
    off += h * (rowBytes + 1);
  }
  return { width, height, bitDepth, colorType, channels, data: out, ...(palette ? { palette } : {}) };
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

// ---- encoding ----

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Samples as big-endian PNG row bytes (no filter bytes yet). */
function sampleBytes(data: Uint8Array | Uint16Array): Uint8Array {
  if (data instanceof Uint16Array) {
    const rows = new Uint8Array(2 * data.length);
    for (let i = 0; i < data.length; i++) {
      rows[2 * i] = data[i]! >> 8;
      rows[2 * i + 1] = data[i]! & 0xff;
    }
    return rows;
  }
  const rows = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v > 255) throw new Error(`encodePng: value ${v} does not fit in 8 bits`);
    rows[i] = v;
  }
  return rows;
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
  const rowBytes = width * channels * (sixteen ? 2 : 1);
  const rows = sampleBytes(data);
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
