// Image decoding (sharp: JPEG, PNG, WebP, TIFF, …) into 8-bit RGB pixels. Free of libtorch (and of modules
// that load it), so that the training loader's worker threads can import it; the tensor conversion is in
// ./image-tensor.ts, and ./image.ts re-exports both.
import { promises as fsp } from "node:fs";
import sharp from "sharp";

import type { RgbImage } from "./rgb.js";

export type { RgbImage } from "./rgb.js";

/** An image given as a file path, encoded bytes, or raw RGB pixels. */
export type ImageInput = string | Buffer | RgbImage;

/** Decodes to 8-bit RGB (EXIF orientation applied, alpha dropped, greyscale expanded). Errors name the file. */
export async function readImageRGB(input: ImageInput): Promise<RgbImage> {
  if (typeof input === "object" && !Buffer.isBuffer(input)) {
    if (input.data.length !== input.width * input.height * 3) {
      throw new Error(`raw RGB image: ${input.data.length} bytes for ${input.width}×${input.height}×3`);
    }
    return input;
  }
  return decode(input, typeof input === "string" ? input : "image buffer");
}

/**
 * Reads an image file's bytes, then decodes them as {@link readImageRGB} does. A file that cannot be read
 * fails with "<file>: cannot read image (<code>)", one that cannot be decoded with "<file>: cannot decode image".
 */
export async function readImageFile(file: string): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    throw new Error(
      `${file}: cannot read image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return decode(bytes, file);
}

/**
 * The most pixels an image may have (default 100 million, e.g. 12000×8000; `DEDOS_MAX_IMAGE_PIXELS`): a
 * decompression bomb (a 747 KB PNG declaring 16000×16000) is refused from its header, before decoding.
 */
export function maxImagePixels(): number {
  const v = Number(process.env.DEDOS_MAX_IMAGE_PIXELS);
  return Number.isFinite(v) && v > 0 ? v : 100_000_000;
}

async function decode(input: string | Buffer, what: string): Promise<RgbImage> {
  const limit = maxImagePixels();
  let size: { width?: number; height?: number };
  try {
    size = await sharp(input, { limitInputPixels: false }).metadata(); // the header only
  } catch (e) {
    throw new Error(`${what}: cannot decode image (${(e as Error).message})`);
  }
  if (size.width && size.height && size.width * size.height > limit) {
    throw new Error(
      `${what}: ${size.width}×${size.height} = ${((size.width * size.height) / 1e6).toFixed(0)} megapixels is over the limit of ${(limit / 1e6).toFixed(0)} (set DEDOS_MAX_IMAGE_PIXELS to allow more)`,
    );
  }
  try {
    const { data, info } = await sharp(input, { limitInputPixels: limit })
      .rotate()
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    throw new Error(`${what}: cannot decode image (${(e as Error).message})`);
  }
}
