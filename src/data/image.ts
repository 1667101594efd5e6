// Image decoding (sharp: JPEG, PNG, WebP, TIFF, …) into RGB pixels and tensors.
import sharp from "sharp";
import { type Tensor, tensor, tidy } from "../torch/tensor.js";

/** 8-bit RGB pixels, row-major HWC. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** An image given as a file path, encoded bytes, or raw RGB pixels. */
export type ImageInput = string | Buffer | RgbImage;

/** Decodes to 8-bit RGB (alpha dropped, greyscale expanded). Errors name the file. */
export async function readImageRGB(input: ImageInput): Promise<RgbImage> {
  if (typeof input === "object" && !Buffer.isBuffer(input)) {
    if (input.data.length !== input.width * input.height * 3) {
      throw new Error(`raw RGB image: ${input.data.length} bytes for ${input.width}×${input.height}×3`);
    }
    return input;
  }
  const what = typeof input === "string" ? input : "image buffer";
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

/** HWC uint8 → (1, 3, H, W) float32 on the 0–255 scale. */
export function imageToTensor(img: RgbImage): Tensor {
  return tidy(() =>
    tensor(img.data, [img.height, img.width, 3], { dtype: "uint8" })
      .permute(2, 0, 1)
      .unsqueeze(0)
      .to("float32"),
  );
}
