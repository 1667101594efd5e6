// Tiny model configurations shared by tests: the real architectures at widths that run in milliseconds.
import type { CatSegConfig } from "../src/catseg/model.js";
import type { ClipConfig } from "../src/clip/config.js";

export const TINY_CLIP: ClipConfig = {
  vision: { width: 32, layers: 3, heads: 2, patchSize: 8, imageSize: 32, outputDim: 16 },
  text: { width: 32, layers: 1, heads: 2, contextLength: 77, vocabSize: 49408, embedDim: 16 },
};
/** CAT-Seg with the vitb_384 structure: 32-px CLIP (grid 4×4), one aggregation layer, pad_len 8. */
export const TINY_CATSEG: CatSegConfig = {
  clip: TINY_CLIP,
  aggregator: {
    textGuidanceDim: 16,
    textGuidanceProjDim: 8,
    appearanceGuidanceDim: 16,
    appearanceGuidanceProjDim: 8,
    decoderDims: [32, 16],
    decoderGuidanceDims: [16, 8],
    decoderGuidanceProjDims: [8, 4],
    numLayers: 1,
    nheads: 2,
    hiddenDim: 16,
    poolingSize: [2, 2],
    featureResolution: [4, 4],
    windowSize: 2,
    attentionType: "linear",
    promptChannel: 1,
    padLen: 8,
  },
  clipResolution: 32,
  taps: [0, 1],
  testPoolingSize: [1, 1],
};
