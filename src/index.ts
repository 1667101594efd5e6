// dedos: open-vocabulary semantic segmentation for TypeScript. The public surface; the engine (tensors,
// autograd, nn, checkpoint IO) is `dedos/torch`.
//
//   import { Segmenter } from "dedos";
//   const seg = await Segmenter.create({ config: "vitb_384", weights: "model_base.pth" });
//   const r = await seg.segment("street.jpg", "road; sidewalk; car, truck; sky");
//   await seg.dispose();

// Segmentation
export {
  type OnnxSegmenterOptions,
  type Segmentation,
  type SegmentCallOptions,
  Segmenter,
  type SegmenterOptions,
} from "./api/segmenter.js";
// Models, configs and their presets, and the factory that builds them from weights files
export { type AggregatorConfig, type CatSegConfig, catSegPreset } from "./catseg/config.js";
export {
  type SegmentOptions,
  type SegmentResult,
  segmentTensor,
  testTimeResize,
  WINDOW_PRESETS,
  type WindowPreset,
  type WindowSpec,
} from "./catseg/inference.js";
export { CatSegModel } from "./catseg/model.js";
export {
  type ClassMaps,
  type SlidingWindowOptions,
  type SlidingWindowResult,
  segmentWithViews,
  type ViewModel,
} from "./catseg/sliding-window.js";
export { CLIP_PRESETS, type ClipConfig, clipPreset } from "./clip/config.js";
export { ClipModel } from "./clip/model.js";
export { ClipTokenizer } from "./clip/tokenizer.js";
export { zeroShotClassify, zeroShotSegment } from "./clip/zero-shot.js";
// Images, classes, pictures
export { parseClassList, readClassFile } from "./data/classes.js";
export { type ImageInput, type RgbImage, readImageRGB } from "./data/image-decode.js";
export { imageToTensor } from "./data/image-tensor.js";
export { DEDOS_PRESET_NAMES, type DedosConfig, dedosPreset } from "./dedos/config.js";
export { DedosModel } from "./dedos/model.js";
export { loadDiffusersFolder } from "./models/diffusers.js";
export {
  type AnyModel,
  type CreateModelOptions,
  createModel,
  detectWeightsKind,
  loadWeights,
  type ModelArch,
  saveModel,
  type WeightsKind,
} from "./models/factory.js";
export { checkManifest, type OnnxManifest } from "./onnx/manifest.js";
export { openExportFolder } from "./onnx/node.js";
export type { OrtModule, OrtSession, OrtTensor } from "./onnx/runtime.js";
export { OnnxSegmentation } from "./onnx/segmentation.js";
export {
  type ClassShare,
  type OverlayOptions,
  renderOverlay,
  writeLabelPng,
  writeOverlay,
} from "./viz/overlay.js";
