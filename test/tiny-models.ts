// Tiny model configurations shared by tests: the real architectures at widths that run in milliseconds.
import type { CatSegConfig } from "../src/catseg/config.js";
import type { ClipConfig } from "../src/clip/config.js";
import { type DedosConfig, dedosPreset } from "../src/dedos/config.js";
import type { DiffusionComponents } from "../src/diffusion/branch.js";
import {
  AUTOENCODER_KL_DEFAULTS,
  type AutoencoderKLConfig,
  DEDOS_SCHEDULER_CONFIG,
  UNET_2D_CONDITION_DEFAULTS,
  type UNet2DConditionConfig,
} from "../src/diffusion/config.js";
import { UNet2DConditionModel, unetTapSpecs } from "../src/diffusion/unet.js";
import { AutoencoderKL } from "../src/diffusion/vae.js";
import { Generator, randn, type Tensor } from "../src/torch/tensor.js";
import { type TrainConfig, trainPreset } from "../src/train/config.js";

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

// ---------------------------------------------------------------------------------------------------------
// DEDOS: the tiny CAT-Seg above, proxy queries over a tiny Stable Diffusion, a small mask-decoder head.

/** A 2-level VAE (factor 2): a 32² crop → a 16² latent. */
export const TINY_VAE: AutoencoderKLConfig = {
  ...AUTOENCODER_KL_DEFAULTS,
  block_out_channels: [8, 16],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"],
  layers_per_block: 1,
  norm_num_groups: 4,
};

/** SD-2's UNet structure (linear projections, cross-attention) at widths of 8–16: 3 taps. */
export const TINY_UNET: UNet2DConditionConfig = {
  ...UNET_2D_CONDITION_DEFAULTS,
  block_out_channels: [8, 16],
  down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
  layers_per_block: 1,
  attention_head_dim: [2, 2],
  cross_attention_dim: 8,
  norm_num_groups: 4,
  use_linear_projection: true,
};

/** In-memory frozen Stable Diffusion components for the DEDOS diffusion branch. */
export function tinyDiffusion(seed = 5): DiffusionComponents & { dispose(): void } {
  const g = new Generator(seed);
  const vae = new AutoencoderKL(TINY_VAE, { generator: g }).eval().requiresGrad_(false);
  const unet = new UNet2DConditionModel(TINY_UNET, { generator: g }).eval().requiresGrad_(false);
  const empty: Tensor = randn([1, 2, 8], { generator: g }); // (1, S, cross_attention_dim).keep();
  return {
    vae,
    unet,
    scheduler: { ...DEDOS_SCHEDULER_CONFIG },
    dtype: "float32",
    device: "cpu",
    emptyPromptEmbedding: () => empty.clone(),
    dispose() {
      vae.dispose();
      unet.dispose();
      empty.dispose();
    },
  };
}

/** DEDOS on TINY_CATSEG (grid 4×4): 4 proxy queries of width 8, a 2-layer decoder of width 16. */
export function tinyDedosConfig(patch: (c: DedosConfig) => void = () => {}): DedosConfig {
  const c = dedosPreset("vitb_384");
  c.catseg = structuredClone(TINY_CATSEG);
  c.diffusion.timesteps = [50, 100];
  c.proxy = {
    ...c.proxy,
    basicQueries: 2,
    basicDim: 2,
    diffusionQueries: 2,
    diffusionDim: 4,
    heads: 2,
    mlpRatio: 2,
    tapChannels: unetTapSpecs(TINY_UNET).map((s) => s.channels),
  };
  c.injection.mlpHidden = 8;
  c.consistency.projDim = 8;
  c.consistency.layers = [...TINY_CATSEG.taps];
  c.textAggregation = { layers: 1, heads: 2 };
  c.maskHead = {
    ...c.maskHead,
    hiddenDim: 16,
    maskDim: 16,
    decoderLayers: 2,
    heads: 2,
    ffnDim: 32,
    normGroups: 4,
  };
  c.loss.points = 0;
  patch(c);
  return c;
}

/**
 * A tiny training run without Stable Diffusion (static proxy queries, no consistency loss): batch 4 of 32²
 * crops, one worker, a metrics line every iteration; `maxIter` and the checkpoint cadence given.
 */
export function tinyStaticTrainConfig(o: {
  maxIter: number;
  checkpointEvery: number;
  keepCheckpoints: number;
}): TrainConfig {
  const c = trainPreset("vitb_384");
  c.model = tinyDedosConfig((m) => {
    m.proxy.conditioning = "static";
    m.consistency.enabled = false;
  });
  c.solver = { ...c.solver, lr: 1e-3, maxIter: o.maxIter, gradClip: 1 };
  c.data = { ...c.data, batchSize: 4, minSize: 32, crop: 32, workers: 1, prefetch: 2 };
  c.train = {
    ...c.train,
    checkpointEvery: o.checkpointEvery,
    keepCheckpoints: o.keepCheckpoints,
    logEvery: 1,
  };
  return c;
}
