// dedos in a browser (or any JavaScript runtime without Node): the exported-model pipeline and its helpers,
// free of Node modules and of libtorch. Pair it with onnxruntime-web; web/ is a complete page built on it.
//
//   import * as ort from "onnxruntime-web";
//   import { checkManifest, ClipTokenizerCore, OnnxSegmentation } from "dedos/browser";
//   const manifest = checkManifest(await (await fetch("model/manifest.json")).json(), "manifest.json");
//   const open = (f: string) => ort.InferenceSession.create(`model/${f}`, { executionProviders: ["wasm"] });
//   const tok = await ClipTokenizerCore.fromGzippedMergesAsync(new Uint8Array(await (await fetch("bpe_simple_vocab_16e6.txt.gz")).arrayBuffer()));
//   const m = new OnnxSegmentation(manifest, ort, await open(manifest.text.file), await open(manifest.view.file), tok);
//   const { labels } = await m.segment(rgb, ["sky", "road"], undefined);

export {
  type ClassMaps,
  type SlidingWindowOptions,
  type SlidingWindowResult,
  segmentWithViews,
  type ViewModel,
} from "./catseg/sliding-window.js";
export { WINDOW_PRESETS, type WindowPreset, type WindowSpec, windowGrid } from "./catseg/window.js";
export { classEmbeddingsFromFeatures } from "./clip/prompt-features.js";
export { promptTexts } from "./clip/prompt-texts.js";
export { ClipTokenizerCore } from "./clip/tokenizer-core.js";
export { parseClassList } from "./data/class-list.js";
export type { RgbImage } from "./data/rgb.js";
export { checkManifest, type OnnxManifest } from "./onnx/manifest.js";
export { executionProviders, type OrtModule, type OrtSession, type OrtTensor } from "./onnx/runtime.js";
export { OnnxSegmentation } from "./onnx/segmentation.js";
export { blendOverlay, type ClassShare, classShares, legendLayout } from "./viz/legend.js";
export { classColor } from "./viz/palette.js";
