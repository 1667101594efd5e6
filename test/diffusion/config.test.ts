// Diffusers configs (src/diffusion/config.ts): config.json and scheduler_config.json read with defaults,
// the DEDOS scheduler, and UNet features that are refused by name.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEDOS_SCHEDULER_CONFIG,
  readDiffusersConfig,
  readSchedulerConfig,
  readUNet2DConditionConfig,
  type SchedulerConfig,
  SD_PRESETS,
} from "../../src/diffusion/config.js";
import { tinyUnet } from "./helpers.js";

describe("configs", () => {
  test("readDiffusersConfig: SD-2-base unet/config.json with defaults filled", () => {
    const json = JSON.stringify({
      _class_name: "UNet2DConditionModel",
      _diffusers_version: "0.8.0",
      act_fn: "silu",
      attention_head_dim: [5, 10, 20, 20],
      block_out_channels: [320, 640, 1280, 1280],
      center_input_sample: false,
      cross_attention_dim: 1024,
      down_block_types: [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
      ],
      downsample_padding: 1,
      dual_cross_attention: false,
      flip_sin_to_cos: true,
      freq_shift: 0,
      in_channels: 4,
      layers_per_block: 2,
      mid_block_scale_factor: 1,
      norm_eps: 1e-5,
      norm_num_groups: 32,
      out_channels: 4,
      sample_size: 64,
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      use_linear_projection: true,
    });
    const r = readDiffusersConfig(json);
    assert.equal(r.kind, "unet");
    assert.deepEqual(r.config, SD_PRESETS["sd-2-base"].unet);
    assert.equal(r.kind === "unet" && r.config.transformer_layers_per_block, 1); // default
    assert.throws(
      () => readUNet2DConditionConfig({ layers_per_block: "2" }),
      /"layers_per_block" must be int\|int\[\]/,
    );
  });

  test("scheduler_config.json (SD-2-base PNDM) and the DEDOS scheduler", () => {
    const r = readDiffusersConfig({
      _class_name: "PNDMScheduler",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      clip_sample: false,
      num_train_timesteps: 1000,
      prediction_type: "epsilon",
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
    });
    assert.equal(r.kind, "scheduler");
    const c = r.config as SchedulerConfig;
    assert.deepEqual(c, SD_PRESETS["sd-2-base"].scheduler);
    assert.equal(c.timestep_spacing, "leading");
    // DEDOS: DDIMScheduler(beta_start, beta_end, beta_schedule, num_train_timesteps) → clip_sample true.
    assert.equal(DEDOS_SCHEDULER_CONFIG.clip_sample, true);
    assert.deepEqual(
      readSchedulerConfig({ beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear" }),
      DEDOS_SCHEDULER_CONFIG,
    );
    assert.throws(() => readSchedulerConfig({ prediction_type: "flow" }), /prediction_type/);
    assert.equal(readDiffusersConfig({ _class_name: "AutoencoderKL", latent_channels: 4 }).kind, "vae");
    assert.throws(() => readDiffusersConfig({}), /_class_name/);
  });

  test("unsupported UNet features are rejected by name", () => {
    assert.throws(() => tinyUnet(1, { class_embed_type: "timestep" }), /class embeddings/);
    assert.throws(
      () => tinyUnet(1, { down_block_types: ["CrossAttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"] }),
      /AttnDownBlock2D/,
    );
  });
});
