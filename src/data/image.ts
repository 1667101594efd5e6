// Images: decoding (sharp) into RGB pixels, and RGB pixels into tensors. This module loads libtorch through
// ./image-tensor.ts; code that must not (the training loader's worker threads) imports ./image-decode.ts.
export { type ImageInput, type RgbImage, readImageFile, readImageRGB } from "./image-decode.js";
export { imageToTensor } from "./image-tensor.js";
