// The UNet's resolution blocks (diffusers models/unets/unet_2d_blocks.py) for the SD-1.5 / SD-2 block types:
// CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D, UpBlock2D. Keys:
// `resnets.j`, `attentions.j`, `downsamplers.0.conv`, `upsamplers.0.conv`.

import type * as nn from "../torch/nn/layers.js";
import { ModuleList } from "../torch/nn/module.js";
import { cat, type Tensor } from "../torch/tensor.js";
import { Transformer2DModel, type TransformerConfig } from "./attention.js";
import {
  Downsample2D,
  type ForwardContext,
  PathModule,
  type ResnetBlock2D,
  type ResnetBlock2DConfig,
  resnetList,
  scoped,
  Upsample2D,
} from "./resnet.js";

/** What every block of one UNet shares. */
export interface BlockCommon {
  tembChannels: number;
  groups: number;
  eps: number;
  act: string;
  /** ResNet output divisor (resnet_out_scale_factor; mid_block_scale_factor in the mid block). */
  outputScaleFactor: number;
}

/** The cross-attention part of a block; null for DownBlock2D / UpBlock2D. */
export interface BlockAttention {
  heads: number;
  /** BasicTransformerBlocks per Transformer2DModel. */
  layers: number;
  crossAttentionDim: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

function transformerConfig(channels: number, a: BlockAttention, groups: number): TransformerConfig {
  if (channels % a.heads !== 0)
    throw new Error(`UNet: ${channels} channels are not divisible by ${a.heads} attention heads`);
  return {
    heads: a.heads,
    dimHead: channels / a.heads,
    inChannels: channels,
    layers: a.layers,
    crossAttentionDim: a.crossAttentionDim,
    groups,
    useLinearProjection: a.useLinearProjection,
    onlyCrossAttention: a.onlyCrossAttention,
  };
}

function resnetConfig(c: BlockCommon, inChannels: number, outChannels: number): ResnetBlock2DConfig {
  return {
    inChannels,
    outChannels,
    tembChannels: c.tembChannels,
    groups: c.groups,
    eps: c.eps,
    act: c.act,
    outputScaleFactor: c.outputScaleFactor,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Down

export interface DownBlockConfig extends BlockCommon {
  inChannels: number;
  outChannels: number;
  numLayers: number;
  addDownsample: boolean;
  downsamplePadding: number;
  /** Cross-attention after every resnet (CrossAttnDownBlock2D) or null (DownBlock2D). */
  attention: BlockAttention | null;
}

export interface DownBlockOutput {
  /** (B, C, h', w') after the downsampler (if any). */
  out: Tensor;
  /** Skip connections in order: each resnet(+attention) output, then the downsampled map. */
  skips: Tensor[];
}

/** CrossAttnDownBlock2D (with `attention`) or DownBlock2D (without). */
export class DownBlock extends PathModule {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(
    readonly config: DownBlockConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const rc: ResnetBlock2DConfig[] = [];
    for (let i = 0; i < c.numLayers; i++)
      rc.push(resnetConfig(c, i === 0 ? c.inChannels : c.outChannels, c.outChannels));
    this.resnets = this.child("resnets", resnetList(rc, o));
    const a = c.attention;
    this.attentions = a
      ? this.child(
          "attentions",
          new ModuleList(
            rc.map(() => new Transformer2DModel(transformerConfig(c.outChannels, a, c.groups), o)),
          ),
        )
      : null;
    this.downsamplers = c.addDownsample
      ? this.child("downsamplers", new ModuleList([new Downsample2D(c.outChannels, c.downsamplePadding, o)]))
      : null;
  }

  forward(x: Tensor, temb: Tensor, text: Tensor, ctx: ForwardContext = {}): DownBlockOutput {
    return scoped(ctx.rec, () => {
      const skips: Tensor[] = [];
      let h = x;
      this.resnets.items.forEach((resnet, i) => {
        h = resnet.forward(h, temb, ctx);
        if (this.attentions) h = this.attentions.at(i).forward(h, text, ctx);
        skips.push(h);
      });
      if (this.downsamplers) {
        h = this.downsamplers.at(0).forward(h);
        skips.push(h);
      }
      ctx.rec?.record(this.path, h);
      return { out: h, skips };
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Mid

export interface MidBlockConfig extends BlockCommon {
  channels: number;
  attention: BlockAttention;
}

/** UNetMidBlock2DCrossAttn: resnets.0, then (attentions.j, resnets.j+1) pairs. */
export class MidBlockCrossAttn extends PathModule {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel>;

  constructor(
    readonly config: MidBlockConfig,
    o: nn.InitOptions = {},
    numLayers = 1,
  ) {
    super();
    const c = config;
    const rc = Array.from({ length: numLayers + 1 }, () => resnetConfig(c, c.channels, c.channels));
    this.resnets = this.child("resnets", resnetList(rc, o));
    this.attentions = this.child(
      "attentions",
      new ModuleList(
        Array.from(
          { length: numLayers },
          () => new Transformer2DModel(transformerConfig(c.channels, c.attention, c.groups), o),
        ),
      ),
    );
  }

  forward(x: Tensor, temb: Tensor, text: Tensor, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      let h = this.resnets.at(0).forward(x, temb, ctx);
      this.attentions.items.forEach((attn, i) => {
        h = attn.forward(h, text, ctx);
        h = this.resnets.at(i + 1).forward(h, temb, ctx);
      });
      ctx.rec?.record(this.path, h);
      return h;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Up

export interface UpBlockConfig extends BlockCommon {
  /** Channels of the skip taken by the last resnet (the down level below's input width). */
  inChannels: number;
  outChannels: number;
  /** Channels arriving from the previous up block (or the mid block). */
  prevOutputChannels: number;
  numLayers: number;
  addUpsample: boolean;
  attention: BlockAttention | null;
}

/** CrossAttnUpBlock2D (with `attention`) or UpBlock2D: each resnet eats [h; skip] along channels. */
export class UpBlock extends PathModule {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(
    readonly config: UpBlockConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    const rc: ResnetBlock2DConfig[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const skip = i === c.numLayers - 1 ? c.inChannels : c.outChannels;
      const input = i === 0 ? c.prevOutputChannels : c.outChannels;
      rc.push(resnetConfig(c, input + skip, c.outChannels));
    }
    this.resnets = this.child("resnets", resnetList(rc, o));
    const a = c.attention;
    this.attentions = a
      ? this.child(
          "attentions",
          new ModuleList(
            rc.map(() => new Transformer2DModel(transformerConfig(c.outChannels, a, c.groups), o)),
          ),
        )
      : null;
    this.upsamplers = c.addUpsample
      ? this.child("upsamplers", new ModuleList([new Upsample2D(c.outChannels, o)]))
      : null;
  }

  /**
   * `skips` holds this block's skip maps in the order they were produced (the last one is consumed first).
   * `upsampleSize` is the spatial size of the next level's skips (diffusers forward_upsample_size).
   */
  forward(
    x: Tensor,
    skips: Tensor[],
    temb: Tensor,
    text: Tensor,
    upsampleSize: [number, number] | undefined,
    ctx: ForwardContext = {},
  ): Tensor {
    if (skips.length !== this.resnets.length)
      throw new Error(`UpBlock ${this.path}: ${skips.length} skips for ${this.resnets.length} resnets`);
    return scoped(ctx.rec, () => {
      let h = x;
      this.resnets.items.forEach((resnet, i) => {
        const skip = skips[skips.length - 1 - i]!;
        h = resnet.forward(cat([h, skip], 1), temb, ctx);
        if (this.attentions) h = this.attentions.at(i).forward(h, text, ctx);
      });
      if (this.upsamplers) h = this.upsamplers.at(0).forward(h, upsampleSize);
      ctx.rec?.record(this.path, h);
      return h;
    });
  }
}
