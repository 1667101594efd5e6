// The Stable Diffusion VAE: diffusers AutoencoderKL (models/autoencoders/autoencoder_kl.py, vae.py
// Encoder/Decoder, unet_2d_blocks.py DownEncoderBlock2D/UpDecoderBlock2D/UNetMidBlock2D) with diffusers'
// keys (`encoder.*`, `decoder.*`, `quant_conv`, `post_quant_conv`; mid-block attention as
// `to_q/to_k/to_v/to_out.0`, diffusers ≥ 0.14), plus DEDOS's two helpers (DenoiseDiff/diffusion_component.py):
//
//   imageToLatent:    pixels 0–255 → /255·2−1 → encoder → quant_conv → posterior mean (or a sample) → ×scaling
//   latentToImage01:  z → /scaling → post_quant_conv → decoder → (x/2 + 0.5).clamp(0, 1)
//
// The model can hold only one half (`parts`), so an encoder-only or decoder-only state dict loads strictly.

import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { type Generator, randn, type Tensor, tidy } from "../torch/tensor.js";
import { Attention } from "./attention.js";
import { type AutoencoderKLConfig, readAutoencoderKLConfig, unsupportedVaeFeatures } from "./config.js";
import { Conv2d } from "./layers.js";
import {
  activation,
  assignModulePaths,
  Downsample2D,
  type ForwardContext,
  PathModule,
  Recorder,
  type ResnetBlock2D,
  type ResnetBlock2DConfig,
  resnetList,
  scoped,
  Upsample2D,
} from "./resnet.js";

/** VAE ResNets: no time embedding, eps 1e-6, output scale 1. */
function vaeResnet(
  inChannels: number,
  outChannels: number,
  groups: number,
  act: string,
): ResnetBlock2DConfig {
  return { inChannels, outChannels, tembChannels: null, groups, eps: 1e-6, act, outputScaleFactor: 1 };
}

/** DownEncoderBlock2D: resnets, then a stride-2 conv after a (0,1,0,1) pad unless it is the last level. */
export class DownEncoderBlock2D extends PathModule {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;
  constructor(
    inCh: number,
    outCh: number,
    layers: number,
    down: boolean,
    groups: number,
    act: string,
    o: nn.InitOptions,
  ) {
    super();
    const rc = Array.from({ length: layers }, (_, i) =>
      vaeResnet(i === 0 ? inCh : outCh, outCh, groups, act),
    );
    this.resnets = this.child("resnets", resnetList(rc, o));
    this.downsamplers = down
      ? this.child("downsamplers", new ModuleList([new Downsample2D(outCh, 0, o)]))
      : null;
  }
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h, null, ctx);
      if (this.downsamplers) h = this.downsamplers.at(0).forward(h);
      ctx.rec?.record(this.path, h);
      return h;
    });
  }
}

/** UpDecoderBlock2D: resnets, then nearest ×2 + conv unless it is the last level. */
export class UpDecoderBlock2D extends PathModule {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(
    inCh: number,
    outCh: number,
    layers: number,
    up: boolean,
    groups: number,
    act: string,
    o: nn.InitOptions,
  ) {
    super();
    const rc = Array.from({ length: layers }, (_, i) =>
      vaeResnet(i === 0 ? inCh : outCh, outCh, groups, act),
    );
    this.resnets = this.child("resnets", resnetList(rc, o));
    this.upsamplers = up ? this.child("upsamplers", new ModuleList([new Upsample2D(outCh, o)])) : null;
  }
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h, null, ctx);
      if (this.upsamplers) h = this.upsamplers.at(0).forward(h);
      ctx.rec?.record(this.path, h);
      return h;
    });
  }
}

/**
 * UNetMidBlock2D as the VAE builds it: resnets.0, [attentions.0: single-head self-attention with its own
 * GroupNorm and residual], resnets.1.
 */
export class VaeMidBlock extends PathModule {
  readonly attentions: ModuleList<Attention> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(channels: number, groups: number, act: string, addAttention: boolean, o: nn.InitOptions) {
    super();
    this.attentions = addAttention
      ? this.child(
          "attentions",
          new ModuleList([
            new Attention(
              {
                queryDim: channels,
                heads: 1, // in_channels // attention_head_dim with attention_head_dim = channels
                dimHead: channels,
                crossAttentionDim: null,
                bias: true,
                groupNorm: { groups, eps: 1e-6 },
                residualConnection: true,
                rescaleOutputFactor: 1,
              },
              o,
            ),
          ]),
        )
      : null;
    const rc = [0, 1].map(() => vaeResnet(channels, channels, groups, act));
    this.resnets = this.child("resnets", resnetList(rc, o));
  }
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = this.resnets.at(0).forward(x, null, ctx);
      if (this.attentions) h = this.attentions.at(0).forward(h, null, ctx);
      h = this.resnets.at(1).forward(h, null, ctx);
      ctx.rec?.record(this.path, h);
      return h;
    });
  }
}

/** vae.py Encoder: conv_in → down blocks → mid block → GroupNorm(eps 1e-6) → act → conv_out (2·latent). */
export class VaeEncoder extends PathModule {
  readonly conv_in: nn.Conv2d;
  readonly down_blocks: ModuleList<DownEncoderBlock2D>;
  readonly mid_block: VaeMidBlock;
  readonly conv_norm_out: nn.GroupNorm;
  readonly conv_out: nn.Conv2d;
  private readonly act: (x: Tensor) => Tensor;

  constructor(c: AutoencoderKLConfig, o: nn.InitOptions) {
    super();
    const boc = c.block_out_channels;
    const g = c.norm_num_groups;
    this.conv_in = this.child("conv_in", new Conv2d(c.in_channels, boc[0]!, 3, { padding: 1 }, o));
    let outCh = boc[0]!;
    const blocks = boc.map((ch, i) => {
      const inCh = outCh;
      outCh = ch;
      return new DownEncoderBlock2D(inCh, ch, c.layers_per_block, i !== boc.length - 1, g, c.act_fn, o);
    });
    this.down_blocks = this.child("down_blocks", new ModuleList(blocks));
    const top = boc[boc.length - 1]!;
    this.mid_block = this.child("mid_block", new VaeMidBlock(top, g, c.act_fn, c.mid_block_add_attention, o));
    this.conv_norm_out = this.child("conv_norm_out", new nn.GroupNorm(g, top, 1e-6));
    this.conv_out = this.child("conv_out", new Conv2d(top, 2 * c.latent_channels, 3, { padding: 1 }, o));
    this.act = activation(c.act_fn);
  }

  /** (B, 3, H, W) in [−1, 1] → (B, 2·latent, H/f, W/f) */
  forward(x: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = this.conv_in.forward(x);
      for (const b of this.down_blocks) h = b.forward(h, ctx);
      h = this.mid_block.forward(h, ctx);
      const out = this.conv_out.forward(this.act(this.conv_norm_out.forward(h)));
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}

/** vae.py Decoder: conv_in → mid block → up blocks (layers_per_block + 1 resnets) → norm → act → conv_out. */
export class VaeDecoder extends PathModule {
  readonly conv_in: nn.Conv2d;
  readonly mid_block: VaeMidBlock;
  readonly up_blocks: ModuleList<UpDecoderBlock2D>;
  readonly conv_norm_out: nn.GroupNorm;
  readonly conv_out: nn.Conv2d;
  private readonly act: (x: Tensor) => Tensor;

  constructor(c: AutoencoderKLConfig, o: nn.InitOptions) {
    super();
    const rboc = [...c.block_out_channels].reverse();
    const g = c.norm_num_groups;
    this.conv_in = this.child("conv_in", new Conv2d(c.latent_channels, rboc[0]!, 3, { padding: 1 }, o));
    this.mid_block = this.child(
      "mid_block",
      new VaeMidBlock(rboc[0]!, g, c.act_fn, c.mid_block_add_attention, o),
    );
    let outCh = rboc[0]!;
    const blocks = rboc.map((ch, i) => {
      const prev = outCh;
      outCh = ch;
      return new UpDecoderBlock2D(prev, ch, c.layers_per_block + 1, i !== rboc.length - 1, g, c.act_fn, o);
    });
    this.up_blocks = this.child("up_blocks", new ModuleList(blocks));
    const bottom = c.block_out_channels[0]!;
    this.conv_norm_out = this.child("conv_norm_out", new nn.GroupNorm(g, bottom, 1e-6));
    this.conv_out = this.child("conv_out", new Conv2d(bottom, c.out_channels, 3, { padding: 1 }, o));
    this.act = activation(c.act_fn);
  }

  /** (B, latent, h, w) → (B, 3, h·f, w·f), unclamped (≈ [−1, 1]) */
  forward(z: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = this.mid_block.forward(this.conv_in.forward(z), ctx);
      for (const b of this.up_blocks) h = b.forward(h, ctx);
      const out = this.conv_out.forward(this.act(this.conv_norm_out.forward(h)));
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// AutoencoderKL

export type VaeParts = "both" | "encoder" | "decoder";

export interface AutoencoderKLOptions extends nn.InitOptions {
  /** Build only the encoder (+quant_conv) or only the decoder (+post_quant_conv); default both. */
  parts?: VaeParts;
}

/** DiagonalGaussianDistribution of the encoder's moments. */
export interface VaePosterior {
  /** (B, 2·latent, h, w): quant_conv output = [mean; logvar]. */
  moments: Tensor;
  /** (B, latent, h, w) */
  mean: Tensor;
  /** (B, latent, h, w), clamped to [−30, 20] as diffusers does. */
  logvar: Tensor;
  /** exp(logvar / 2) */
  std: Tensor;
}

export interface VaeRunOptions {
  /** Return these module outputs by diffusers path (`encoder.down_blocks.0`, `post_quant_conv`, …). */
  record?: (path: string) => boolean;
  /** Byte budget of the mid-block attention's score matrix before queries are chunked. */
  attentionBudgetBytes?: number;
}

export class AutoencoderKL extends Module {
  readonly encoder: VaeEncoder | null;
  readonly decoder: VaeDecoder | null;
  readonly quant_conv: nn.Conv2d | null;
  readonly post_quant_conv: nn.Conv2d | null;
  readonly parts: VaeParts;

  constructor(
    readonly config: AutoencoderKLConfig,
    o: AutoencoderKLOptions = {},
  ) {
    super();
    const bad = unsupportedVaeFeatures(config);
    if (bad.length) throw new Error(`AutoencoderKL: unsupported config: ${bad.join("; ")}`);
    const c = config;
    const parts = o.parts ?? "both";
    this.parts = parts;
    const enc = parts !== "decoder";
    const dec = parts !== "encoder";
    const L = c.latent_channels;
    this.encoder = enc ? this.child("encoder", new VaeEncoder(c, o)) : null;
    this.decoder = dec ? this.child("decoder", new VaeDecoder(c, o)) : null;
    this.quant_conv =
      enc && c.use_quant_conv ? this.child("quant_conv", new Conv2d(2 * L, 2 * L, 1, {}, o)) : null;
    this.post_quant_conv =
      dec && c.use_post_quant_conv ? this.child("post_quant_conv", new Conv2d(L, L, 1, {}, o)) : null;
    assignModulePaths(this);
  }

  /** Builds from a parsed (or raw) `vae/config.json`. */
  static fromConfig(json: string | object, o: AutoencoderKLOptions = {}): AutoencoderKL {
    return new AutoencoderKL(readAutoencoderKLConfig(json), o);
  }

  /** Image in [−1, 1] (B, in, H, W) → posterior (diffusers `vae.encode(x).latent_dist`) and recordings. */
  encode(x: Tensor, o: VaeRunOptions = {}): VaePosterior & { recorded: Map<string, Tensor> } {
    const encoder = this.encoder;
    if (!encoder) throw new Error("AutoencoderKL: built without the encoder (parts: 'decoder')");
    const rec = new Recorder(o.record ?? (() => false));
    const ctx: ForwardContext = { rec, attentionBudgetBytes: o.attentionBudgetBytes };
    const post = scoped(rec, () => {
      const h = encoder.forward(x, ctx);
      const moments = this.quant_conv ? this.quant_conv.forward(h) : h; // (B, 2L, h, w)
      rec.record("quant_conv", moments);
      const [mean, rawLogvar] = moments.chunk(2, 1) as [Tensor, Tensor];
      const logvar = rawLogvar.clamp(-30, 20);
      return { moments, mean, logvar, std: logvar.mul(0.5).exp() };
    });
    return { ...post, recorded: rec.outputs };
  }

  /** Latent (unscaled) (B, latent, h, w) → image ≈ [−1, 1] (diffusers `vae.decode(z).sample`). */
  decode(z: Tensor, o: VaeRunOptions = {}): { sample: Tensor; recorded: Map<string, Tensor> } {
    const decoder = this.decoder;
    if (!decoder) throw new Error("AutoencoderKL: built without the decoder (parts: 'encoder')");
    const rec = new Recorder(o.record ?? (() => false));
    const ctx: ForwardContext = { rec, attentionBudgetBytes: o.attentionBudgetBytes };
    const sample = scoped(rec, () => {
      const zz = this.post_quant_conv ? this.post_quant_conv.forward(z) : z;
      rec.record("post_quant_conv", zz);
      return decoder.forward(zz, ctx);
    });
    return { sample, recorded: rec.outputs };
  }
}

/** mean + std · N(0, 1) drawn from `generator` (DiagonalGaussianDistribution.sample). */
export function samplePosterior(p: VaePosterior, generator?: Generator): Tensor {
  return tidy(() => p.mean.add(p.std.mul(randn(p.mean.shape, { generator, dtype: p.mean.dtype }))));
}

// ---------------------------------------------------------------------------------------------------------
// DEDOS helpers

/** DEDOS img_process_: pixels in [0, 255] → img / 255 · 2 − 1 ∈ [−1, 1]. */
export function normalizeImage255(img: Tensor): Tensor {
  return tidy(() => img.div(255).mul(2).sub(1));
}

export interface ImageToLatentOptions {
  /** Byte budget of the mid-block attention's score matrix before queries are chunked. */
  attentionBudgetBytes?: number;
  /** Sample the posterior with this generator instead of taking its mean (DEDOS takes the mean). */
  sample?: Generator;
}

/**
 * DEDOS norm_img_to_latent on img_process_: (B, 3, H, W) pixels 0–255 → z = mean · scaling_factor
 * (B, latent, H/f, W/f) (minus shift_factor first when the config has one; SD has none).
 */
export function imageToLatent(vae: AutoencoderKL, img255: Tensor, o: ImageToLatentOptions = {}): Tensor {
  return tidy(() => {
    const post = vae.encode(normalizeImage255(img255), { attentionBudgetBytes: o.attentionBudgetBytes });
    let z = o.sample ? samplePosterior(post, o.sample) : post.mean;
    if (vae.config.shift_factor !== null) z = z.sub(vae.config.shift_factor);
    return z.mul(vae.config.scaling_factor);
  });
}

/**
 * DEDOS latent_to_img_tensor: z (B, latent, h, w) → image01 = (decode(z / scaling)/2 + 0.5).clamp(0, 1) and
 * the unclamped decoder output `raw`.
 */
export function latentToImage01(
  vae: AutoencoderKL,
  latent: Tensor,
  o: VaeRunOptions = {},
): { image01: Tensor; raw: Tensor; recorded: Map<string, Tensor> } {
  return tidy(() => {
    let z = latent.div(vae.config.scaling_factor);
    if (vae.config.shift_factor !== null) z = z.add(vae.config.shift_factor);
    const d = vae.decode(z, o);
    return { image01: d.sample.div(2).add(0.5).clamp(0, 1), raw: d.sample, recorded: d.recorded };
  });
}
