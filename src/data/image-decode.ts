// Image decoding (sharp: JPEG, PNG, WebP, TIFF, …) into 8-bit RGB pixels. Free of libtorch (and of modules
// that load it), so that the training loader's worker threads can import it; the tensor conversion is in
// ./image-tensor.ts, and ./image.ts re-exports both.
import { promises as fsp } from "node:fs";
import sharp from "sharp";

/** 8-bit RGB pixels, row-major HWC. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

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

async function decode(input: string | Buffer, what: string): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(input)
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
