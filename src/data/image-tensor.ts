// Decoded RGB images as tensors (loads libtorch; decoding itself is in ./image-decode.ts).
import type { DType } from "../torch/dtype.js";
import { type Tensor, tensor, tidy } from "../torch/tensor.js";
import type { RgbImage } from "./image-decode.js";

/**
 * HWC uint8 → (1, 3, H, W) on the 0–255 scale, float32 by default. Inference takes "uint8": the test-time
 * resize is then Pillow's, exactly as the reference's (catseg/inference.ts `testTimeResize`).
 */
export function imageToTensor(img: RgbImage, dtype: DType = "float32"): Tensor {
  return tidy(() =>
    tensor(img.data, [img.height, img.width, 3], { dtype: "uint8" }).permute(2, 0, 1).unsqueeze(0).to(dtype),
  );
}
