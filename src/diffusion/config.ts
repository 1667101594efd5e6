// Stable Diffusion configs as diffusers writes them (`vae/config.json`, `unet/config.json`,
// `scheduler/scheduler_config.json` of a diffusers model folder). The field names ARE diffusers' config keys
// (snake_case), the defaults are diffusers v0.30.2's constructor defaults, and `readDiffusersConfig` turns a
// parsed config.json into one of these typed objects (missing keys → default, wrong types → error, unknown
// keys ignored as diffusers does with a warning: `_class_name`, `_diffusers_version`, …).
//
// Reading never rejects an architecture; the model constructors reject the features they do not implement
// (`unsupportedUNetFeatures`, `unsupportedVaeFeatures`), naming the field.

// ---------------------------------------------------------------------------------------------------------
// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py)

export interface AutoencoderKLConfig {
  /** Image channels in (default 3). */
  in_channels: number;
  /** Image channels out (default 3). */
  out_channels: number;
  /** One per resolution level; only "DownEncoderBlock2D" exists (default ["DownEncoderBlock2D"]). */
  down_block_types: string[];
  /** Only "UpDecoderBlock2D" exists (default ["UpDecoderBlock2D"]). */
  up_block_types: string[];
  /** Channels per level (default [64]); SD: [128, 256, 512, 512]. */
  block_out_channels: number[];
  /** ResNet blocks per encoder level; the decoder has one more (default 1; SD: 2). */
  layers_per_block: number;
  /** Activation everywhere (default "silu"). */
  act_fn: string;
  /** Latent channels (default 4). */
  latent_channels: number;
  /** GroupNorm groups (default 32). */
  norm_num_groups: number;
  /** Training image size (default 32; informative only). */
  sample_size: number | number[];
  /** Latent scale: z = mean · scaling_factor (default 0.18215, SD-1.x/2.x; DEDOS rgb_latent_scale_factor). */
  scaling_factor: number;
  /** Latent shift, z = (mean − shift) · scale (default null = 0; SD3/Flux only). */
  shift_factor: number | null;
  /** Per-channel latent statistics (default null; SDXL-refiner style VAEs). */
  latents_mean: number[] | null;
  latents_std: number[] | null;
  /** Run the VAE in fp32 even in fp16 pipelines (default true; informative only). */
  force_upcast: boolean;
  /** 1×1 conv on the encoder output (default true). */
  use_quant_conv: boolean;
  /** 1×1 conv on the decoder input (default true). */
  use_post_quant_conv: boolean;
  /** Single-head self-attention in both mid blocks (default true). */
  mid_block_add_attention: boolean;
}

export const AUTOENCODER_KL_DEFAULTS: Readonly<AutoencoderKLConfig> = Object.freeze({
  in_channels: 3,
  out_channels: 3,
  down_block_types: ["DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D"],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: "silu",
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  shift_factor: null,
  latents_mean: null,
  latents_std: null,
  force_upcast: true,
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
});

// ---------------------------------------------------------------------------------------------------------
// UNet2DConditionModel (diffusers models/unets/unet_2d_condition.py)

export interface UNet2DConditionConfig {
  /** Latent size (default null; informative only). */
  sample_size: number | number[] | null;
  /** Latent channels in / out (default 4 / 4). */
  in_channels: number;
  out_channels: number;
  /** sample ← 2·sample − 1 first (default false). */
  center_input_sample: boolean;
  /** Sinusoidal time embedding as [cos, sin] instead of [sin, cos] (default true). */
  flip_sin_to_cos: boolean;
  /** Frequency denominator half_dim − freq_shift (default 0). */
  freq_shift: number;
  /** Default ["CrossAttnDownBlock2D" ×3, "DownBlock2D"]. */
  down_block_types: string[];
  /** Default "UNetMidBlock2DCrossAttn". */
  mid_block_type: string | null;
  /** Default ["UpBlock2D", "CrossAttnUpBlock2D" ×3]. */
  up_block_types: string[];
  /** attn1 attends to the text states too (default false). */
  only_cross_attention: boolean | boolean[];
  /** Default [320, 640, 1280, 1280]. */
  block_out_channels: number[];
  /** ResNets per down block; up blocks have one more (default 2). */
  layers_per_block: number | number[];
  /** Padding of the stride-2 downsampling convs (default 1). */
  downsample_padding: number;
  /** ResNet output divisor in the mid block (default 1). */
  mid_block_scale_factor: number;
  /** Dropout (default 0; inference ignores it). */
  dropout: number;
  /** Default "silu". */
  act_fn: string;
  /** GroupNorm groups (default 32; null is not supported). */
  norm_num_groups: number | null;
  /** ResNet / output GroupNorm eps (default 1e-5). The transformers' GroupNorm uses 1e-6 regardless. */
  norm_eps: number;
  /** Text-state width (default 1280; SD-1.5: 768, SD-2: 1024). */
  cross_attention_dim: number | number[];
  /** BasicTransformerBlocks per Transformer2DModel (default 1). */
  transformer_layers_per_block: number | number[];
  reverse_transformer_layers_per_block: number[] | null;
  encoder_hid_dim: number | null;
  encoder_hid_dim_type: string | null;
  /**
   * Default 8. For the UNet2DConditionModel this is used as the NUMBER OF HEADS (diffusers' naming issue):
   * SD-1.5's 8 means 8 heads everywhere, SD-2's [5, 10, 20, 20] means 64-channel heads.
   */
  attention_head_dim: number | number[];
  /** Must stay null: diffusers v0.30 raises when it is set (the heads come from attention_head_dim). */
  num_attention_heads: number | number[] | null;
  dual_cross_attention: boolean;
  /** Linear proj_in / proj_out in the transformers (SD-2) instead of 1×1 convs (SD-1.5) (default false). */
  use_linear_projection: boolean;
  class_embed_type: string | null;
  addition_embed_type: string | null;
  addition_time_embed_dim: number | null;
  num_class_embeds: number | null;
  /** Softmax/scores in fp32 (default false; no effect in fp32). */
  upcast_attention: boolean;
  /** Default "default". */
  resnet_time_scale_shift: string;
  resnet_skip_time_act: boolean;
  /** ResNet output divisor in down / up blocks (default 1). */
  resnet_out_scale_factor: number;
  /** Default "positional". */
  time_embedding_type: string;
  /** Default null = 4 · block_out_channels[0]. */
  time_embedding_dim: number | null;
  time_embedding_act_fn: string | null;
  timestep_post_act: string | null;
  time_cond_proj_dim: number | null;
  /** conv_in / conv_out kernel sizes (default 3 / 3). */
  conv_in_kernel: number;
  conv_out_kernel: number;
  projection_class_embeddings_input_dim: number | null;
  attention_type: string;
  class_embeddings_concat: boolean;
  mid_block_only_cross_attention: boolean | null;
  cross_attention_norm: string | null;
  addition_embed_type_num_heads: number;
}

export const UNET_2D_CONDITION_DEFAULTS: Readonly<UNet2DConditionConfig> = Object.freeze({
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  mid_block_type: "UNetMidBlock2DCrossAttn",
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  dropout: 0,
  act_fn: "silu",
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  reverse_transformer_layers_per_block: null,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  attention_head_dim: 8,
  num_attention_heads: null,
  dual_cross_attention: false,
  use_linear_projection: false,
  class_embed_type: null,
  addition_embed_type: null,
  addition_time_embed_dim: null,
  num_class_embeds: null,
  upcast_attention: false,
  resnet_time_scale_shift: "default",
  resnet_skip_time_act: false,
  resnet_out_scale_factor: 1,
  time_embedding_type: "positional",
  time_embedding_dim: null,
  time_embedding_act_fn: null,
  timestep_post_act: null,
  time_cond_proj_dim: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  projection_class_embeddings_input_dim: null,
  attention_type: "default",
  class_embeddings_concat: false,
  mid_block_only_cross_attention: null,
  cross_attention_norm: null,
  addition_embed_type_num_heads: 64,
});

// ---------------------------------------------------------------------------------------------------------
// Noise schedule (diffusers schedulers/scheduling_ddim.py; the DDPM/PNDM configs share these keys)

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type PredictionType = "epsilon" | "v_prediction" | "sample";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

export interface SchedulerConfig {
  /** Default 1000. */
  num_train_timesteps: number;
  /** Default 0.0001 (DDIM's default; every SD model uses 0.00085). */
  beta_start: number;
  /** Default 0.02 (SD: 0.012). */
  beta_end: number;
  /** Default "linear" (SD: "scaled_linear", β = linspace(√start, √end)²). */
  beta_schedule: BetaSchedule;
  /** Explicit betas instead of a schedule (default null). */
  trained_betas: number[] | null;
  /** What the UNet predicts (default "epsilon"; SD-2 768-v: "v_prediction"). */
  prediction_type: PredictionType;
  /** Clamp x̂0 to ±clip_sample_range (default true — DEDOS relies on it; SD configs say false). */
  clip_sample: boolean;
  /** Default 1. */
  clip_sample_range: number;
  /** ᾱ before step 0 is 1 (true, default) or ᾱ_0 (false). */
  set_alpha_to_one: boolean;
  /** Added to the inference timesteps (default 0; SD configs: 1). */
  steps_offset: number;
  /** Default "leading". */
  timestep_spacing: TimestepSpacing;
  /** Dynamic thresholding (default false; not supported when true). */
  thresholding: boolean;
  /** Default false (not supported when true). */
  rescale_betas_zero_snr: boolean;
}

/** diffusers DDIMScheduler defaults. */
export const DDIM_SCHEDULER_DEFAULTS: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  prediction_type: "epsilon",
  clip_sample: true,
  clip_sample_range: 1,
  set_alpha_to_one: true,
  steps_offset: 0,
  timestep_spacing: "leading",
  thresholding: false,
  rescale_betas_zero_snr: false,
});

/**
 * The scheduler DEDOS builds (diff_process.py): `DDIMScheduler(beta_start=0.00085, beta_end=0.012,
 * beta_schedule="scaled_linear", num_train_timesteps=1000)`, everything else default — so x̂0 is clamped
 * to [−1, 1] (spec §2 `diffusion.clipSample = true`).
 */
export const DEDOS_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  ...DDIM_SCHEDULER_DEFAULTS,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
});

// ---------------------------------------------------------------------------------------------------------
// Presets (the config.json files of the released diffusers folders)

const SD_VAE: Readonly<AutoencoderKLConfig> = Object.freeze({
  ...AUTOENCODER_KL_DEFAULTS,
  down_block_types: Array(4).fill("DownEncoderBlock2D"),
  up_block_types: Array(4).fill("UpDecoderBlock2D"),
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  sample_size: 512,
});

export interface StableDiffusionPreset {
  vae: Readonly<AutoencoderKLConfig>;
  unet: Readonly<UNet2DConditionConfig>;
  /** The folder's own scheduler_config.json (PNDM in both; DEDOS replaces it by DEDOS_SCHEDULER_CONFIG). */
  scheduler: Readonly<SchedulerConfig>;
}

const SD_SCHEDULER: Readonly<SchedulerConfig> = Object.freeze({
  ...DEDOS_SCHEDULER_CONFIG,
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
});

export const SD_PRESETS: Readonly<Record<"sd-2-base" | "sd-1.5", StableDiffusionPreset>> = Object.freeze({
  /** stabilityai/stable-diffusion-2-base: 64-channel heads, linear projections, OpenCLIP-H text (1024). */
  "sd-2-base": {
    vae: SD_VAE,
    unet: Object.freeze({
      ...UNET_2D_CONDITION_DEFAULTS,
      sample_size: 64,
      attention_head_dim: [5, 10, 20, 20],
      cross_attention_dim: 1024,
      use_linear_projection: true,
    }),
    scheduler: SD_SCHEDULER,
  },
  /** runwayml/stable-diffusion-v1-5: 8 heads everywhere, 1×1-conv projections, CLIP-L text (768). */
  "sd-1.5": {
    vae: SD_VAE,
    unet: Object.freeze({
      ...UNET_2D_CONDITION_DEFAULTS,
      sample_size: 64,
      attention_head_dim: 8,
      cross_attention_dim: 768,
    }),
    scheduler: SD_SCHEDULER,
  },
});

// ---------------------------------------------------------------------------------------------------------
// Reading config.json

/** Field kinds: `?` prefix = nullable; `a|b` = either. */
type Kind =
  | "int"
  | "num"
  | "bool"
  | "str"
  | "int[]"
  | "num[]"
  | "str[]"
  | "bool[]"
  | "int|int[]"
  | "bool|bool[]"
  | "?int"
  | "?num"
  | "?str"
  | "?bool"
  | "?num[]"
  | "?int[]"
  | "?int|int[]";

const VAE_KINDS: Record<keyof AutoencoderKLConfig, Kind> = {
  in_channels: "int",
  out_channels: "int",
  down_block_types: "str[]",
  up_block_types: "str[]",
  block_out_channels: "int[]",
  layers_per_block: "int",
  act_fn: "str",
  latent_channels: "int",
  norm_num_groups: "int",
  sample_size: "int|int[]",
  scaling_factor: "num",
  shift_factor: "?num",
  latents_mean: "?num[]",
  latents_std: "?num[]",
  force_upcast: "bool",
  use_quant_conv: "bool",
  use_post_quant_conv: "bool",
  mid_block_add_attention: "bool",
};

const UNET_KINDS: Record<keyof UNet2DConditionConfig, Kind> = {
  sample_size: "?int|int[]",
  in_channels: "int",
  out_channels: "int",
  center_input_sample: "bool",
  flip_sin_to_cos: "bool",
  freq_shift: "num",
  down_block_types: "str[]",
  mid_block_type: "?str",
  up_block_types: "str[]",
  only_cross_attention: "bool|bool[]",
  block_out_channels: "int[]",
  layers_per_block: "int|int[]",
  downsample_padding: "int",
  mid_block_scale_factor: "num",
  dropout: "num",
  act_fn: "str",
  norm_num_groups: "?int",
  norm_eps: "num",
  cross_attention_dim: "int|int[]",
  transformer_layers_per_block: "int|int[]",
  reverse_transformer_layers_per_block: "?int[]",
  encoder_hid_dim: "?int",
  encoder_hid_dim_type: "?str",
  attention_head_dim: "int|int[]",
  num_attention_heads: "?int|int[]",
  dual_cross_attention: "bool",
  use_linear_projection: "bool",
  class_embed_type: "?str",
  addition_embed_type: "?str",
  addition_time_embed_dim: "?int",
  num_class_embeds: "?int",
  upcast_attention: "bool",
  resnet_time_scale_shift: "str",
  resnet_skip_time_act: "bool",
  resnet_out_scale_factor: "num",
  time_embedding_type: "str",
  time_embedding_dim: "?int",
  time_embedding_act_fn: "?str",
  timestep_post_act: "?str",
  time_cond_proj_dim: "?int",
  conv_in_kernel: "int",
  conv_out_kernel: "int",
  projection_class_embeddings_input_dim: "?int",
  attention_type: "str",
  class_embeddings_concat: "bool",
  mid_block_only_cross_attention: "?bool",
  cross_attention_norm: "?str",
  addition_embed_type_num_heads: "int",
};

const SCHEDULER_KINDS: Record<keyof SchedulerConfig, Kind> = {
  num_train_timesteps: "int",
  beta_start: "num",
  beta_end: "num",
  beta_schedule: "str",
  trained_betas: "?num[]",
  prediction_type: "str",
  clip_sample: "bool",
  clip_sample_range: "num",
  set_alpha_to_one: "bool",
  steps_offset: "int",
  timestep_spacing: "str",
  thresholding: "bool",
  rescale_betas_zero_snr: "bool",
};

const ENUMS: Partial<Record<keyof SchedulerConfig, readonly string[]>> = {
  beta_schedule: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  prediction_type: ["epsilon", "v_prediction", "sample"],
  timestep_spacing: ["leading", "trailing", "linspace"],
};

function matchesKind(v: unknown, kind: string): boolean {
  if (kind.startsWith("?")) return v === null || matchesKind(v, kind.slice(1));
  if (kind.includes("|")) return kind.split("|").some((k) => matchesKind(v, k));
  if (kind.endsWith("[]")) return Array.isArray(v) && v.every((x) => matchesKind(x, kind.slice(0, -2)));
  switch (kind) {
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "num":
      return typeof v === "number" && Number.isFinite(v);
    case "bool":
      return typeof v === "boolean";
    case "str":
      return typeof v === "string";
    default:
      return false;
  }
}

function readFields<T extends object>(
  json: Record<string, unknown>,
  defaults: Readonly<T>,
  kinds: Record<keyof T, Kind>,
  what: string,
): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (const key of Object.keys(kinds)) {
    if (!(key in json)) continue;
    let v = json[key];
    // Python tuples arrive as JSON lists; `1.0` parses as the integer 1, so int fields accept it.
    const kind = kinds[key as keyof T];
    if (!matchesKind(v, kind)) {
      throw new Error(`${what}: "${key}" must be ${kind.replace("?", "null or ")}, got ${JSON.stringify(v)}`);
    }
    if (Array.isArray(v)) v = [...v];
    out[key] = v;
  }
  return out as T;
}

function parseJson(json: string | object): Record<string, unknown> {
  const obj = typeof json === "string" ? JSON.parse(json) : json;
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    throw new Error("diffusers config: expected a JSON object");
  return obj as Record<string, unknown>;
}

/** AutoencoderKL config from a parsed (or raw) `vae/config.json`; missing keys take diffusers' defaults. */
export function readAutoencoderKLConfig(json: string | object): AutoencoderKLConfig {
  return readFields(parseJson(json), AUTOENCODER_KL_DEFAULTS, VAE_KINDS, "AutoencoderKL config");
}

/** UNet2DConditionModel config from `unet/config.json`; missing keys take diffusers' defaults. */
export function readUNet2DConditionConfig(json: string | object): UNet2DConditionConfig {
  return readFields(parseJson(json), UNET_2D_CONDITION_DEFAULTS, UNET_KINDS, "UNet2DConditionModel config");
}

/**
 * Scheduler config from `scheduler/scheduler_config.json` (any of DDIM/DDPM/PNDM: their shared keys), missing
 * keys taking DDIMScheduler's defaults.
 */
export function readSchedulerConfig(json: string | object): SchedulerConfig {
  const c = readFields(parseJson(json), DDIM_SCHEDULER_DEFAULTS, SCHEDULER_KINDS, "scheduler config");
  for (const [k, allowed] of Object.entries(ENUMS)) {
    const v = c[k as keyof SchedulerConfig] as string;
    if (!allowed!.includes(v))
      throw new Error(`scheduler config: "${k}" is "${v}", expected one of ${allowed!.join(", ")}`);
  }
  return c;
}

export type DiffusersConfig =
  | { kind: "vae"; className: string; config: AutoencoderKLConfig }
  | { kind: "unet"; className: string; config: UNet2DConditionConfig }
  | { kind: "scheduler"; className: string; config: SchedulerConfig };

/**
 * Reads any of the three config.json files of a diffusers SD folder, dispatching on `_class_name`
 * ("AutoencoderKL", "UNet2DConditionModel", "*Scheduler"); `as` decides when `_class_name` is absent.
 */
export function readDiffusersConfig(json: string | object, as?: DiffusersConfig["kind"]): DiffusersConfig {
  const obj = parseJson(json);
  const className = typeof obj._class_name === "string" ? obj._class_name : "";
  let kind = as;
  if (className === "AutoencoderKL") kind = "vae";
  else if (className === "UNet2DConditionModel") kind = "unet";
  else if (className.endsWith("Scheduler")) kind = "scheduler";
  else if (className && !as) throw new Error(`diffusers config: unsupported _class_name "${className}"`);
  switch (kind) {
    case "vae":
      return { kind, className: className || "AutoencoderKL", config: readAutoencoderKLConfig(obj) };
    case "unet":
      return { kind, className: className || "UNet2DConditionModel", config: readUNet2DConditionConfig(obj) };
    case "scheduler":
      return { kind, className: className || "DDIMScheduler", config: readSchedulerConfig(obj) };
    default:
      throw new Error('diffusers config: no "_class_name"; pass `as` ("vae", "unet" or "scheduler")');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Per-block values and support checks

/** An `int | int[]` (or bool) field as one value per block, as UNet2DConditionModel.__init__ expands it. */
export function perBlock<T>(v: T | T[], n: number, field: string): T[] {
  if (!Array.isArray(v)) return Array(n).fill(v);
  if (v.length !== n) throw new Error(`UNet config: "${field}" has ${v.length} entries for ${n} down blocks`);
  return v;
}

/** Config fields set to values this implementation does not run (empty = supported). */
export function unsupportedUNetFeatures(c: UNet2DConditionConfig): string[] {
  const bad: string[] = [];
  const need = (ok: boolean, msg: string) => {
    if (!ok) bad.push(msg);
  };
  const known = ["CrossAttnDownBlock2D", "DownBlock2D"];
  const knownUp = ["CrossAttnUpBlock2D", "UpBlock2D"];
  for (const t of c.down_block_types) need(known.includes(t), `down_block_types: "${t}"`);
  for (const t of c.up_block_types) need(knownUp.includes(t), `up_block_types: "${t}"`);
  need(c.mid_block_type === "UNetMidBlock2DCrossAttn", `mid_block_type: ${JSON.stringify(c.mid_block_type)}`);
  need(c.down_block_types.length === c.up_block_types.length, "down_block_types / up_block_types lengths");
  need(c.block_out_channels.length === c.down_block_types.length, "block_out_channels length");
  need(c.norm_num_groups !== null, "norm_num_groups: null");
  need(c.num_attention_heads === null, "num_attention_heads (diffusers v0.30 rejects it too)");
  need(c.encoder_hid_dim === null && c.encoder_hid_dim_type === null, "encoder_hid_dim(_type)");
  need(c.class_embed_type === null && c.num_class_embeds === null, "class embeddings");
  need(c.addition_embed_type === null, `addition_embed_type: "${c.addition_embed_type}"`);
  need(!c.dual_cross_attention, "dual_cross_attention");
  need(c.resnet_time_scale_shift === "default", `resnet_time_scale_shift: "${c.resnet_time_scale_shift}"`);
  need(!c.resnet_skip_time_act, "resnet_skip_time_act");
  need(c.time_embedding_type === "positional", `time_embedding_type: "${c.time_embedding_type}"`);
  need(c.time_embedding_act_fn === null, "time_embedding_act_fn");
  need(c.timestep_post_act === null, "timestep_post_act");
  need(c.time_cond_proj_dim === null, "time_cond_proj_dim");
  need(c.attention_type === "default", `attention_type: "${c.attention_type}"`);
  need(c.cross_attention_norm === null, "cross_attention_norm");
  need(c.reverse_transformer_layers_per_block === null, "reverse_transformer_layers_per_block");
  need(c.conv_in_kernel % 2 === 1 && c.conv_out_kernel % 2 === 1, "even conv_in/conv_out kernels");
  need(isActivation(c.act_fn), `act_fn: "${c.act_fn}"`);
  return bad;
}

/** Config fields set to values this VAE implementation does not run (empty = supported). */
export function unsupportedVaeFeatures(c: AutoencoderKLConfig): string[] {
  const bad: string[] = [];
  for (const t of c.down_block_types) if (t !== "DownEncoderBlock2D") bad.push(`down_block_types: "${t}"`);
  for (const t of c.up_block_types) if (t !== "UpDecoderBlock2D") bad.push(`up_block_types: "${t}"`);
  if (c.down_block_types.length !== c.block_out_channels.length) bad.push("down_block_types length");
  if (c.up_block_types.length !== c.block_out_channels.length) bad.push("up_block_types length");
  if (!isActivation(c.act_fn)) bad.push(`act_fn: "${c.act_fn}"`);
  return bad;
}

/** Activations of diffusers' get_activation that the engine has. */
export const ACTIVATIONS = ["silu", "swish", "gelu", "relu"] as const;
export function isActivation(name: string): name is (typeof ACTIVATIONS)[number] {
  return (ACTIVATIONS as readonly string[]).includes(name);
}
