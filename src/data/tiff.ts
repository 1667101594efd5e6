// Single-channel grey TIFF label maps: written by hand (one Adobe-deflate strip, 8 or 16-bit), read through
// sharp/libtiff (any compression libtiff knows), keeping the stored values.
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import type { LabelMap } from "./labels.js";

/**
 * The most pixels a TIFF may declare (sharp's default input limit, 0x3FFF², stated here): sharp refuses a
 * larger header before decoding any strip.
 */
export const MAX_TIFF_PIXELS = 0x3fff * 0x3fff;

export function isTiff(buf: Uint8Array): boolean {
  return (
    buf.length >= 4 &&
    ((buf[0] === 0x49 && buf[1] === 0x49 && buf[2] === 42 && buf[3] === 0) ||
      (buf[0] === 0x4d && buf[1] === 0x4d && buf[2] === 0 && buf[3] === 42))
  );
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
    const img = sharp(buf, { limitInputPixels: MAX_TIFF_PIXELS });
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
