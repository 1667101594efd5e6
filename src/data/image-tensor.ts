// Decoded RGB images as tensors (loads libtorch; decoding itself is in ./image-decode.ts).
import { type Tensor, tensor, tidy } from "../torch/tensor.js";
import type { RgbImage } from "./image-decode.js";

/** HWC uint8 → (1, 3, H, W) float32 on the 0–255 scale. */
export function imageToTensor(img: RgbImage): Tensor {
  return tidy(() =>
    tensor(img.data, [img.height, img.width, 3], { dtype: "uint8" })
      .permute(2, 0, 1)
      .unsqueeze(0)
      .to("float32"),
  );
}
