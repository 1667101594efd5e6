// CAT-Seg configuration: the cost-aggregation head (cat_seg/modeling/transformer/model.py `Aggregator`) with
// every constructor constant as a typed field, the whole model (CLIP + head + guidance taps), and the presets
// of the released configs (configs/vitb_384.yaml, configs/vitl_336.yaml).
//
// Field ↔ reference: each field names the `Aggregator.__init__` argument it mirrors and the detectron2 key
// (`MODEL.SEM_SEG_HEAD.*`) that CATSegPredictor.from_config reads into it. Two arguments are not passed by
// CATSegPredictor and therefore always take the Aggregator defaults in CAT-Seg: `prompt_channel` (1) and
// `pad_len` (256).

import { CLIP_PRESETS, type ClipConfig } from "../clip/config.js";

/** Class-aggregation attention: "linear" (elu+1 kernel, CAT-Seg default) or "full" (softmax). */
export type AggregatorAttentionType = "linear" | "full";

export interface AggregatorConfig {
  /** `text_guidance_dim` (TEXT_GUIDANCE_DIM): CLIP text embedding width C; 0 disables text guidance. */
  textGuidanceDim: number;
  /** `text_guidance_proj_dim` (TEXT_GUIDANCE_PROJ_DIM): Linear+ReLU projection of the text guidance. */
  textGuidanceProjDim: number;
  /** `appearance_guidance_dim` (APPEARANCE_GUIDANCE_DIM): channels of guidance[0] (CLIP dense features). */
  appearanceGuidanceDim: number;
  /** `appearance_guidance_proj_dim` (APPEARANCE_GUIDANCE_PROJ_DIM): 3×3 conv+ReLU projection for Swin q/k. */
  appearanceGuidanceProjDim: number;
  /** `decoder_dims` (DECODER_DIMS): output channels of decoder1 / decoder2 (each ≥ 16: GroupNorm(c/16)). */
  decoderDims: [number, number];
  /** `decoder_guidance_dims` (DECODER_GUIDANCE_DIMS): channels of guidance[1] (2H) and guidance[2] (4H). */
  decoderGuidanceDims: [number, number];
  /** `decoder_guidance_proj_dims` (DECODER_GUIDANCE_PROJ_DIMS): their 3×3 conv+ReLU projections. */
  decoderGuidanceProjDims: [number, number];
  /** `num_layers` (NUM_LAYERS): aggregation layers (Swin pair + class attention each). */
  numLayers: number;
  /** `nheads` (NUM_HEADS): heads of the Swin window attention and of the class attention. */
  nheads: number;
  /** `hidden_dim` (HIDDEN_DIMS): channels of the embedded cost volume. */
  hiddenDim: number;
  /**
   * `pooling_size` (POOLING_SIZES): AvgPool2d kernel (= stride) in the class layers. Has no parameters, so
   * it is only the default of `forward`; CAT-Seg trains with (2, 2) and evaluates with (1, 1) (eval.sh
   * overrides MODEL.SEM_SEG_HEAD.POOLING_SIZES "[1,1]").
   */
  poolingSize: [number, number];
  /** `feature_resolution` (FEATURE_RESOLUTION): the (H, W) of the cost volume the Swin blocks are built for. */
  featureResolution: [number, number];
  /** `window_size` (WINDOW_SIZES): Swin window side; the second block of a pair shifts by ⌊window/2⌋. */
  windowSize: number;
  /** `attention_type` (ATTENTION_TYPE). */
  attentionType: AggregatorAttentionType;
  /** `prompt_channel` (not in the yaml; Aggregator default 1): P, the templates per class = conv1 input. */
  promptChannel: number;
  /**
   * `pad_len` (not in the yaml; Aggregator default 256): class-attention sequence length. Fewer classes are
   * padded with learnable tokens, more are cut to the top pad_len by max cost (the rest get −100); 0 = off.
   */
  padLen: number;
}

/** Constants of the reference that are not constructor arguments. */
export const AGGREGATOR_CONSTANTS = {
  /** SwinTransformerBlock `mlp_ratio` (timm Mlp, GELU). */
  swinMlpRatio: 4,
  /** ClassTransformerLayer MLP: Linear(h, 4h) → ReLU → Linear(4h, h). */
  classMlpRatio: 4,
  /** LinearAttention eps. */
  linearAttentionEps: 1e-6,
  /** nn.LayerNorm / nn.GroupNorm default eps. */
  normEps: 1e-5,
  /** Shifted-window mask value for cross-region pairs. */
  maskValue: -100,
  /** Logit of the classes cut by the top-k selection. */
  droppedClassLogit: -100,
  /** conv1 kernel (padding 3). */
  corrEmbedKernel: 7,
  /** DoubleConv GroupNorm groups = mid_channels / this. */
  groupNormChannelsPerGroup: 16,
} as const;

export type AggregatorPresetName = "vitb_384" | "vitl_336";

/**
 * The two released configs differ only in the CLIP width (the guidance dims); everything else is shared.
 * Values are configs/vitb_384.yaml and configs/vitl_336.yaml (MODEL.SEM_SEG_HEAD.*), the two Aggregator
 * defaults CATSegPredictor does not override, and POOLING_SIZES as trained.
 */
function releasedConfig(clipWidth: number): Readonly<AggregatorConfig> {
  const c: AggregatorConfig = {
    textGuidanceDim: clipWidth, // TEXT_GUIDANCE_DIM
    textGuidanceProjDim: 128, // TEXT_GUIDANCE_PROJ_DIM
    appearanceGuidanceDim: clipWidth, // APPEARANCE_GUIDANCE_DIM
    appearanceGuidanceProjDim: 128, // APPEARANCE_GUIDANCE_PROJ_DIM
    decoderDims: [64, 32], // DECODER_DIMS
    decoderGuidanceDims: [256, 128], // DECODER_GUIDANCE_DIMS
    decoderGuidanceProjDims: [32, 16], // DECODER_GUIDANCE_PROJ_DIMS
    numLayers: 2, // NUM_LAYERS (the base configs/config.yaml says 4; both released configs set 2)
    nheads: 4, // NUM_HEADS
    hiddenDim: 128, // HIDDEN_DIMS
    poolingSize: [2, 2], // POOLING_SIZES (training; eval.sh passes "[1,1]")
    featureResolution: [24, 24], // FEATURE_RESOLUTION
    windowSize: 12, // WINDOW_SIZES
    attentionType: "linear", // ATTENTION_TYPE
    promptChannel: 1, // Aggregator default (PROMPT_ENSEMBLE_TYPE "single": one template per class)
    padLen: 256, // Aggregator default
  };
  return Object.freeze(c);
}

/** The released CAT-Seg configs. */
export const AGGREGATOR_PRESETS: Readonly<Record<AggregatorPresetName, Readonly<AggregatorConfig>>> = {
  // configs/vitb_384.yaml: CLIP_PRETRAINED "ViT-B/16", TEXT_GUIDANCE_DIM 512, APPEARANCE_GUIDANCE_DIM 512.
  vitb_384: releasedConfig(512),
  // configs/vitl_336.yaml: CLIP_PRETRAINED "ViT-L/14@336px", TEXT_GUIDANCE_DIM 768, APPEARANCE_GUIDANCE_DIM 768.
  vitl_336: releasedConfig(768),
};

/** A fresh (mutable) copy of a preset. */
export function aggregatorPreset(name: string): AggregatorConfig {
  const p = AGGREGATOR_PRESETS[name as AggregatorPresetName];
  if (!p) {
    throw new Error(
      `unknown CAT-Seg aggregator preset "${name}" (one of ${Object.keys(AGGREGATOR_PRESETS).join(", ")})`,
    );
  }
  return cloneAggregatorConfig(p);
}

export function cloneAggregatorConfig(c: Readonly<AggregatorConfig>): AggregatorConfig {
  return {
    ...c,
    decoderDims: [...c.decoderDims],
    decoderGuidanceDims: [...c.decoderGuidanceDims],
    decoderGuidanceProjDims: [...c.decoderGuidanceProjDims],
    poolingSize: [...c.poolingSize],
    featureResolution: [...c.featureResolution],
  };
}

/** The shift of the second Swin block, as SwinTransformerBlock resolves it (0 when the window covers all). */
export function swinShiftSize(c: Pick<AggregatorConfig, "windowSize" | "featureResolution">): number {
  return Math.min(...c.featureResolution) <= c.windowSize ? 0 : Math.floor(c.windowSize / 2);
}

/** Throws on configs the reference could not build (or would build into something else). */
export function validateAggregatorConfig(c: AggregatorConfig): void {
  const bad = (msg: string): never => {
    throw new Error(`AggregatorConfig: ${msg}`);
  };
  const posInt = (v: number, what: string) => {
    if (!Number.isInteger(v) || v <= 0) bad(`${what} must be a positive integer, got ${v}`);
  };
  posInt(c.hiddenDim, "hiddenDim");
  posInt(c.nheads, "nheads");
  posInt(c.numLayers, "numLayers");
  posInt(c.windowSize, "windowSize");
  posInt(c.promptChannel, "promptChannel");
  if (c.hiddenDim % c.nheads !== 0) bad(`hiddenDim ${c.hiddenDim} is not divisible by ${c.nheads} heads`);
  if (!Number.isInteger(c.padLen) || c.padLen < 0) bad(`padLen must be an integer ≥ 0, got ${c.padLen}`);
  for (const [i, d] of c.decoderDims.entries()) {
    if (Math.floor(d / AGGREGATOR_CONSTANTS.groupNormChannelsPerGroup) < 1)
      bad(`decoderDims[${i}] = ${d}: DoubleConv's GroupNorm(${d} // 16) needs at least 16 channels`);
  }
  if (c.attentionType !== "linear" && c.attentionType !== "full")
    bad(`attentionType must be "linear" or "full", got "${c.attentionType}"`);
  const [H, W] = c.featureResolution;
  const ws = Math.min(c.windowSize, H, W);
  if (H % ws !== 0 || W % ws !== 0)
    bad(`featureResolution ${H}×${W} is not a multiple of the window ${ws} (the reference has no padding)`);
  if (c.hiddenDim <= c.decoderGuidanceProjDims[0])
    bad(`hiddenDim ${c.hiddenDim} must exceed decoderGuidanceProjDims[0] ${c.decoderGuidanceProjDims[0]}`);
  if (c.decoderDims[0] <= c.decoderGuidanceProjDims[1])
    bad(
      `decoderDims[0] ${c.decoderDims[0]} must exceed decoderGuidanceProjDims[1] ${c.decoderGuidanceProjDims[1]}`,
    );
}

// ---------------------------------------------------------------------------------------------------------
// The whole model

export interface CatSegConfig {
  clip: ClipConfig;
  aggregator: AggregatorConfig;
  /** Side of the square the image tower is fed (CATSeg `clip_resolution`: 384 ViT-B/16, 336 ViT-L/14). */
  clipResolution: number;
  /** CLIP blocks whose outputs become the decoder guidance (CATSeg `layer_indexes`). */
  taps: [number, number];
  /**
   * Class-layer pooling at test time. CAT-Seg trains with POOLING_SIZES (2, 2) (the aggregator config) and
   * evaluates with (1, 1) (eval.sh overrides MODEL.SEM_SEG_HEAD.POOLING_SIZES "[1,1]").
   */
  testPoolingSize: [number, number];
}

export type CatSegPresetName = AggregatorPresetName;

/** The released configs: configs/vitb_384.yaml and configs/vitl_336.yaml. */
export function catSegPreset(name: string): CatSegConfig {
  const clipName = name === "vitb_384" ? "ViT-B/16" : name === "vitl_336" ? "ViT-L/14@336px" : undefined;
  if (!clipName) throw new Error(`unknown CAT-Seg preset "${name}" (one of vitb_384, vitl_336)`);
  const clip = CLIP_PRESETS[clipName];
  return {
    clip: { vision: { ...clip.vision }, text: { ...clip.text } },
    aggregator: cloneAggregatorConfig(AGGREGATOR_PRESETS[name as AggregatorPresetName]),
    clipResolution: clip.clipResolution,
    taps: [clip.taps[0]!, clip.taps[1]!],
    testPoolingSize: [1, 1],
  };
}

/** Throws when the CLIP and aggregator halves of a config do not fit together. */
export function validateCatSegConfig(c: CatSegConfig): void {
  const bad = (msg: string): never => {
    throw new Error(`CatSegConfig: ${msg}`);
  };
  const v = c.clip.vision;
  const a = c.aggregator;
  if (c.clipResolution % v.patchSize !== 0)
    bad(`clipResolution ${c.clipResolution} is not a multiple of the patch size ${v.patchSize}`);
  const g = c.clipResolution / v.patchSize;
  if (a.featureResolution[0] !== g || a.featureResolution[1] !== g)
    bad(`aggregator featureResolution ${a.featureResolution.join("×")} differs from the CLIP grid ${g}×${g}`);
  if (a.appearanceGuidanceDim !== 0 && a.appearanceGuidanceDim !== v.outputDim)
    bad(
      `appearanceGuidanceDim ${a.appearanceGuidanceDim} differs from the CLIP image embedding ${v.outputDim}`,
    );
  if (a.textGuidanceDim !== 0 && a.textGuidanceDim !== c.clip.text.embedDim)
    bad(`textGuidanceDim ${a.textGuidanceDim} differs from the CLIP text embedding ${c.clip.text.embedDim}`);
  if (v.outputDim !== c.clip.text.embedDim)
    bad(`CLIP image (${v.outputDim}) and text (${c.clip.text.embedDim}) embeddings differ`);
  for (const t of c.taps)
    if (!Number.isInteger(t) || t < 0 || t >= v.layers - 1)
      bad(`tap ${t} is not a block before the last (dense) one of ${v.layers}`);
}
