// Full-size DEDOS with random weights for the benches: the preset's model and a frozen random SD-2-base
// (UNet + VAE; the empty-prompt embedding is random too, since the text encoder only makes that one tensor).

import { dedosPreset } from "../src/dedos/config.js";
import { DedosModel } from "../src/dedos/model.js";
import { DiffusionBranch, type DiffusionComponents } from "../src/diffusion/branch.js";
import { SD_PRESETS } from "../src/diffusion/config.js";
import { UNet2DConditionModel } from "../src/diffusion/unet.js";
import { AutoencoderKL } from "../src/diffusion/vae.js";
import { Generator, randn, type Tensor } from "../src/torch/index.js";

export interface FullSize {
  model: DedosModel;
  sd: DiffusionComponents;
  sdParameters: number;
  buildMs: number;
  dispose(): void;
}

export function buildFullSize(preset: string, seed = 0): FullSize {
  const t0 = performance.now();
  const g = new Generator(seed);
  const config = dedosPreset(preset);
  const model = new DedosModel(config, { generator: g });
  const sdPreset = SD_PRESETS[config.diffusion.preset];
  const vae = new AutoencoderKL(sdPreset.vae, { generator: g }).eval().requiresGrad_(false);
  const unet = new UNet2DConditionModel(sdPreset.unet, { generator: g }).eval().requiresGrad_(false);
  const empty: Tensor = randn([1, 77, sdPreset.unet.cross_attention_dim as number], { generator: g }).keep();
  const sd: DiffusionComponents = {
    vae,
    unet,
    scheduler: sdPreset.scheduler,
    dtype: "float32",
    device: "cpu",
    emptyPromptEmbedding: () => empty.clone(),
  };
  model.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
  return {
    model,
    sd,
    sdParameters: vae.numParameters() + unet.numParameters(),
    buildMs: performance.now() - t0,
    dispose() {
      model.dispose();
      vae.dispose();
      unet.dispose();
      empty.dispose();
    },
  };
}
