// diffusers UNet2DConditionModel (models/unets/unet_2d_condition.py) for SD-1.5 / SD-2 configs, with
// diffusers' state-dict keys (`conv_in`, `time_embedding.linear_{1,2}`, `down_blocks.i`, `mid_block`,
// `up_blocks.i`, `conv_norm_out`, `conv_out`), so a diffusers `unet/diffusion_pytorch_model.safetensors`
// loads strictly without renaming.
//
//   t → sinusoidal (Timesteps) → time_embedding → temb
//   z (B, 4, h, w) → conv_in → down blocks (skips kept) → mid block → up blocks ([h; skip] per resnet)
//   → GroupNorm → act → conv_out → ε̂ (or v̂) (B, 4, h, w)
//
// The forward also returns DEDOS's taps: the output tokens (B, h·w, C) of `transformer_blocks.0` of every
// Transformer2DModel, in execution order (SD-2: down 6, mid 1, up 9), and any module outputs asked for by
// path (the fixture's forward-hook intermediates). Taps never change the output.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { arange, cat, full, type Tensor, tidy } from "../torch/tensor.js";
import {
  perBlock,
  readUNet2DConditionConfig,
  type UNet2DConditionConfig,
  unsupportedUNetFeatures,
} from "./config.js";
import { Conv2d, Linear } from "./layers.js";
import {
  activation,
  assignModulePaths,
  type ForwardContext,
  PathModule,
  Recorder,
  scoped,
} from "./resnet.js";
import {
  type BlockAttention,
  type BlockCommon,
  DownBlock,
  MidBlockCrossAttn,
  UpBlock,
} from "./unet-blocks.js";

// ---------------------------------------------------------------------------------------------------------
// Time embedding

/**
 * diffusers get_timestep_embedding: freq_k = exp(−ln(max_period)·k / (half − shift)), k < half;
 * [sin(t·freq), cos(t·freq)] (or [cos, sin] when flipped), zero-padded to an odd dim. (B) → (B, dim) float32.
 */
export function timestepEmbedding(
  timesteps: Tensor,
  dim: number,
  flipSinToCos: boolean,
  freqShift: number,
  maxPeriod = 10000,
): Tensor {
  return tidy(() => {
    const half = Math.floor(dim / 2);
    const exponent = arange(0, half, 1, { dtype: "float32" })
      .mul(-Math.log(maxPeriod))
      .div(half - freqShift); // (half)
    const args = timesteps.float().view(-1, 1).mul(exponent.exp().view(1, half)); // (B, half)
    const [first, second] = flipSinToCos ? [args.cos(), args.sin()] : [args.sin(), args.cos()];
    const emb = cat([first, second], -1); // (B, 2·half)
    return dim % 2 === 1 ? F.pad(emb, [0, 1]) : emb;
  });
}

/** `linear_1` → act → `linear_2`: (B, in) → (B, timeEmbedDim). */
export class TimestepEmbedding extends PathModule {
  readonly linear_1: nn.Linear;
  readonly linear_2: nn.Linear;
  private readonly act: (x: Tensor) => Tensor;
  constructor(inChannels: number, timeEmbedDim: number, act: string, o: nn.InitOptions = {}) {
    super();
    this.linear_1 = this.child("linear_1", new Linear(inChannels, timeEmbedDim, true, o));
    this.linear_2 = this.child("linear_2", new Linear(timeEmbedDim, timeEmbedDim, true, o));
    this.act = activation(act);
  }
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      const out = this.linear_2.forward(this.act(this.linear_1.forward(x)));
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The model

export interface UNetForwardOptions {
  /** Return the `transformer_blocks.0` output tokens of every Transformer2DModel (default true). */
  taps?: boolean;
  /**
   * Also return the outputs of these modules, by diffusers path (forward-hook semantics; a block's entry is
   * its hidden-state output): `down_blocks.0.attentions.1`, `up_blocks.1.resnets.2`, `time_embedding`,
   * `mid_block`, any `…transformer_blocks.i`.
   */
  record?: (path: string) => boolean;
  /** Byte budget of one attention score matrix before queries are chunked (default 128 MiB). */
  attentionBudgetBytes?: number;
}

/** One DEDOS tap: a BasicTransformerBlock's output. */
export interface UNetTap {
  /** diffusers module path, e.g. `up_blocks.1.attentions.2.transformer_blocks.0`. */
  path: string;
  /** (B, h·w, C), tokens row-major over (h, w). */
  tokens: Tensor;
  /** The latent-grid resolution of the tokens, [h, w]. */
  size: [number, number];
}

export interface UNetOutput {
  /** (B, out_channels, h, w): the UNet's `.sample` (ε̂ for epsilon models). */
  sample: Tensor;
  /** `transformer_blocks.0` outputs in execution order (empty when `taps: false`). */
  taps: UNetTap[];
  /** Requested module outputs by path, in execution order. */
  recorded: Map<string, Tensor>;
}

/** Where DEDOS taps the UNet: one entry per Transformer2DModel, in execution order, without building it. */
export interface UNetTapSpec {
  path: string;
  channels: number;
  /** Latent-grid downsampling of the tap (1, 2, 4, …). */
  stride: number;
}

/** What the config expands to per block (diffusers __init__ bookkeeping). */
interface Layout {
  boc: number[];
  layers: number[];
  heads: number[];
  cross: number[];
  transformerLayers: number[];
  onlyCross: boolean[];
}

function layout(c: UNet2DConditionConfig): Layout {
  const n = c.down_block_types.length;
  return {
    boc: c.block_out_channels,
    layers: perBlock(c.layers_per_block, n, "layers_per_block"),
    // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the naming issue).
    heads: perBlock(c.attention_head_dim, n, "attention_head_dim"),
    cross: perBlock(c.cross_attention_dim, n, "cross_attention_dim"),
    transformerLayers: perBlock(c.transformer_layers_per_block, n, "transformer_layers_per_block"),
    onlyCross: perBlock(c.only_cross_attention, n, "only_cross_attention"),
  };
}

/** What every block of the UNet shares, and block i's attention (null for a block without one). */
function blockSpecs(c: UNet2DConditionConfig, L: Layout) {
  const timeEmbedDim = c.time_embedding_dim ?? L.boc[0]! * 4;
  const common = (outputScaleFactor: number): BlockCommon => ({
    tembChannels: timeEmbedDim,
    groups: c.norm_num_groups!,
    eps: c.norm_eps,
    act: c.act_fn,
    outputScaleFactor,
  });
  const attention = (crossAttn: boolean, i: number): BlockAttention | null =>
    crossAttn
      ? {
          heads: L.heads[i]!,
          layers: L.transformerLayers[i]!,
          crossAttentionDim: L.cross[i]!,
          useLinearProjection: c.use_linear_projection,
          onlyCrossAttention: L.onlyCross[i]!,
        }
      : null;
  return { timeEmbedDim, common, attention };
}

/** What building the UNet's blocks needs. */
interface UNetBuild {
  c: UNet2DConditionConfig;
  L: Layout;
  spec: ReturnType<typeof blockSpecs>;
  o: nn.InitOptions;
}

/** The down path: block i maps boc[i−1] → boc[i] channels and halves the map, except the last. */
function downBlocks({ c, L, spec, o }: UNetBuild): DownBlock[] {
  const n = L.boc.length;
  return c.down_block_types.map((type, i) => {
    const inCh = L.boc[Math.max(i - 1, 0)]!;
    return new DownBlock(
      {
        ...spec.common(c.resnet_out_scale_factor),
        inChannels: inCh,
        outChannels: L.boc[i]!,
        numLayers: L.layers[i]!,
        addDownsample: i !== n - 1,
        downsamplePadding: c.downsample_padding,
        attention: spec.attention(type === "CrossAttnDownBlock2D", i),
      },
      o,
    );
  });
}

/**
 * The up path, the down path mirrored: up block i takes the settings of down block n−1−i, one more layer
 * (it also consumes the skip of the block's downsampler), and doubles the map, except the last.
 */
function upBlocks({ c, L, spec, o }: UNetBuild): UpBlock[] {
  const n = L.boc.length;
  const rboc = [...L.boc].reverse();
  return c.up_block_types.map((type, i) => {
    const mirror = n - 1 - i;
    return new UpBlock(
      {
        ...spec.common(c.resnet_out_scale_factor),
        inChannels: rboc[Math.min(i + 1, n - 1)]!,
        outChannels: rboc[i]!,
        prevOutputChannels: rboc[Math.max(i - 1, 0)]!,
        numLayers: L.layers[mirror]! + 1,
        addUpsample: i !== n - 1,
        attention: spec.attention(type === "CrossAttnUpBlock2D", mirror),
      },
      o,
    );
  });
}

/** The tap list for a config: SD-2-base gives 16 (down 6, mid 1, up 9). */
export function unetTapSpecs(config: UNet2DConditionConfig): UNetTapSpec[] {
  const L = layout(config);
  const n = L.boc.length;
  const out: UNetTapSpec[] = [];
  const t0 = "transformer_blocks.0";
  config.down_block_types.forEach((type, i) => {
    if (type !== "CrossAttnDownBlock2D") return;
    for (let j = 0; j < L.layers[i]!; j++)
      out.push({ path: `down_blocks.${i}.attentions.${j}.${t0}`, channels: L.boc[i]!, stride: 2 ** i });
  });
  out.push({ path: `mid_block.attentions.0.${t0}`, channels: L.boc[n - 1]!, stride: 2 ** (n - 1) });
  const rboc = [...L.boc].reverse();
  const rlayers = [...L.layers].reverse();
  config.up_block_types.forEach((type, i) => {
    if (type !== "CrossAttnUpBlock2D") return;
    for (let j = 0; j <= rlayers[i]!; j++)
      out.push({
        path: `up_blocks.${i}.attentions.${j}.${t0}`,
        channels: rboc[i]!,
        stride: 2 ** (n - 1 - i),
      });
  });
  return out;
}

const TAP_RE = /(^|\.)attentions\.\d+\.transformer_blocks\.0$/;

export class UNet2DConditionModel extends Module {
  readonly conv_in: nn.Conv2d;
  readonly time_embedding: TimestepEmbedding;
  readonly down_blocks: ModuleList<DownBlock>;
  readonly mid_block: MidBlockCrossAttn;
  readonly up_blocks: ModuleList<UpBlock>;
  readonly conv_norm_out: nn.GroupNorm;
  readonly conv_out: nn.Conv2d;
  private readonly act: (x: Tensor) => Tensor;

  constructor(
    readonly config: UNet2DConditionConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const bad = unsupportedUNetFeatures(c);
    if (bad.length) throw new Error(`UNet2DConditionModel: unsupported config: ${bad.join("; ")}`);
    const L = layout(c);
    const n = L.boc.length;
    const groups = c.norm_num_groups!;
    const spec = blockSpecs(c, L);
    this.conv_in = this.child(
      "conv_in",
      new Conv2d(c.in_channels, L.boc[0]!, c.conv_in_kernel, { padding: (c.conv_in_kernel - 1) / 2 }, o),
    );
    this.time_embedding = this.child(
      "time_embedding",
      new TimestepEmbedding(L.boc[0]!, spec.timeEmbedDim, c.act_fn, o),
    );
    this.down_blocks = this.child("down_blocks", new ModuleList(downBlocks({ c, L, spec, o })));
    this.mid_block = this.child(
      "mid_block",
      new MidBlockCrossAttn(
        {
          ...spec.common(c.mid_block_scale_factor),
          channels: L.boc[n - 1]!,
          // UNetMidBlock2DCrossAttn builds its transformers without only_cross_attention.
          attention: { ...spec.attention(true, n - 1)!, onlyCrossAttention: false },
        },
        o,
      ),
    );
    this.up_blocks = this.child("up_blocks", new ModuleList(upBlocks({ c, L, spec, o })));
    this.conv_norm_out = this.child("conv_norm_out", new nn.GroupNorm(groups, L.boc[0]!, c.norm_eps));
    this.conv_out = this.child(
      "conv_out",
      new Conv2d(L.boc[0]!, c.out_channels, c.conv_out_kernel, { padding: (c.conv_out_kernel - 1) / 2 }, o),
    );
    this.act = activation(c.act_fn);
    assignModulePaths(this);
  }

  /** Builds from a parsed (or raw) `unet/config.json`. */
  static fromConfig(json: string | object, o: nn.InitOptions = {}): UNet2DConditionModel {
    return new UNet2DConditionModel(readUNet2DConditionConfig(json), o);
  }

  /** The tap list of this model's config (see `unetTapSpecs`). */
  tapSpecs(): UNetTapSpec[] {
    return unetTapSpecs(this.config);
  }

  /**
   * sample (B, in_channels, h, w); timestep: one integer for the whole batch (DEDOS: `torch.tensor(t).long()`)
   * or a (B) tensor; text (B, S, cross_attention_dim) → ε̂ (B, out_channels, h, w), taps and recordings.
   * Any h, w work (odd sizes upsample to the skip's size, as diffusers' forward_upsample_size does).
   */
  forward(sample: Tensor, timestep: number | Tensor, text: Tensor, o: UNetForwardOptions = {}): UNetOutput {
    const c = this.config;
    if (sample.ndim !== 4 || sample.size(1) !== c.in_channels)
      throw new Error(`UNet: sample must be (B, ${c.in_channels}, h, w), got [${sample.shape.join(", ")}]`);
    if (text.ndim !== 3 || text.size(0) !== sample.size(0))
      throw new Error(
        `UNet: encoder_hidden_states must be (${sample.size(0)}, S, C), got [${text.shape.join(", ")}]`,
      );
    const wantTaps = o.taps ?? true;
    const extra = o.record;
    const rec = new Recorder((p) => (wantTaps && TAP_RE.test(p)) || (extra ? extra(p) : false));
    const ctx: ForwardContext = { rec, attentionBudgetBytes: o.attentionBudgetBytes };
    const B = sample.size(0);

    const outSample = scoped(rec, () => {
      const ts =
        typeof timestep === "number"
          ? full([B], timestep, { dtype: "float32" })
          : timestep.numel === 1
            ? timestep.reshape(1).float().expand(B)
            : timestep.float().reshape(B);
      const tEmb = timestepEmbedding(ts, this.config.block_out_channels[0]!, c.flip_sin_to_cos, c.freq_shift); // (B, boc0)
      const temb = this.time_embedding.forward(tEmb.to(sample.dtype), ctx); // (B, 4·boc0)

      let h = c.center_input_sample ? sample.mul(2).sub(1) : sample;
      h = this.conv_in.forward(h); // (B, boc0, h, w)
      const skips: Tensor[] = [h];
      for (const block of this.down_blocks) {
        const r = block.forward(h, temb, text, ctx);
        h = r.out;
        skips.push(...r.skips);
      }
      h = this.mid_block.forward(h, temb, text, ctx);
      this.up_blocks.items.forEach((block, i) => {
        const k = block.resnets.length;
        const mine = skips.splice(skips.length - k, k);
        const isFinal = i === this.up_blocks.length - 1;
        const next = skips[skips.length - 1];
        const size: [number, number] | undefined =
          !isFinal && next ? [next.size(2), next.size(3)] : undefined;
        h = block.forward(h, mine, temb, text, size, ctx);
      });
      h = this.act(this.conv_norm_out.forward(h));
      return this.conv_out.forward(h); // (B, out_channels, h, w)
    });

    const taps: UNetTap[] = [];
    const recorded = new Map<string, Tensor>();
    for (const [path, t] of rec.outputs) {
      if (wantTaps && TAP_RE.test(path)) taps.push({ path, tokens: t, size: rec.sizes.get(path)! });
      if (extra?.(path)) recorded.set(path, t);
    }
    return { sample: outSample, taps, recorded };
  }
}
