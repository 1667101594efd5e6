// Building blocks shared by the Stable Diffusion VAE and UNet (diffusers models/resnet.py, downsampling.py,
// upsampling.py): ResnetBlock2D, Downsample2D, Upsample2D; plus the forward-output recorder that stands in
// for PyTorch forward hooks (DEDOS taps, fixture intermediates) without changing any output.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { type Tensor, tidy } from "../torch/tensor.js";
import { Conv2d, Linear } from "./layers.js";

// ---------------------------------------------------------------------------------------------------------
// Recording module outputs ("forward hooks")

/**
 * Collects module outputs by their diffusers module path (`down_blocks.0.attentions.1`,
 * `encoder.mid_block`, …) when `want(path)` says so. Tensors recorded inside nested scopes survive them:
 * every scope of a recording forward is closed with `scoped`, which keeps what was recorded.
 */
export class Recorder {
  readonly outputs = new Map<string, Tensor>();
  /** Spatial size (h, w) of token outputs (B, h·w, C), by path. */
  readonly sizes = new Map<string, [number, number]>();
  constructor(readonly want: (path: string) => boolean) {}

  record(path: string, t: Tensor, hw?: [number, number]): void {
    if (!this.want(path)) return;
    this.outputs.set(path, t);
    if (hw) this.sizes.set(path, hw);
  }
}

/** `tidy(fn)` that also keeps every tensor recorded so far (they move to the enclosing scope). */
export function scoped<T>(rec: Recorder | undefined, fn: () => T): T {
  if (!rec) return tidy(fn);
  return tidy(() => ({ value: fn(), recorded: rec.outputs })).value;
}

/** What forwards pass down besides tensors. */
export interface ForwardContext {
  rec?: Recorder;
  /** Bytes one attention score matrix may take before queries are chunked (default 128 MiB). */
  attentionBudgetBytes?: number;
}

/** A module that knows its diffusers path (set by the root model with `assignModulePaths`). */
export abstract class PathModule extends Module {
  path = "";
}

/** Gives every PathModule under `root` its dotted state-dict path (what diffusers' hooks are named by). */
export function assignModulePaths(root: Module, prefix = ""): void {
  for (const [p, m] of root.namedModules(prefix)) if (m instanceof PathModule) m.path = p;
}

// ---------------------------------------------------------------------------------------------------------
// Activations

/** diffusers get_activation for the activations the engine has. */
export function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case "silu":
    case "swish":
      return F.silu;
    case "gelu":
      return (x) => F.gelu(x);
    case "relu":
      return F.relu;
    default:
      throw new Error(`unsupported activation "${name}" (silu, swish, gelu, relu)`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// ResnetBlock2D (time_embedding_norm "default", pre-norm)

export interface ResnetBlock2DConfig {
  inChannels: number;
  outChannels: number;
  /** Time-embedding width (UNet), or null (VAE: no time_emb_proj). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  act: string;
  /** Output divisor (diffusers output_scale_factor). */
  outputScaleFactor: number;
}

/**
 *   h = conv1(act(norm1(x)));  h += time_emb_proj(act(temb))[:, :, None, None]
 *   h = conv2(act(norm2(h)));  out = (shortcut(x) + h) / output_scale_factor
 * with a 1×1 `conv_shortcut` when the channel count changes.
 */
export class ResnetBlock2D extends PathModule {
  readonly norm1: nn.GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: nn.Linear | null;
  readonly norm2: nn.GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: nn.Conv2d | null;
  private readonly act: (x: Tensor) => Tensor;
  private readonly fusedAct: "silu" | "gelu" | null;

  constructor(
    readonly config: ResnetBlock2DConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const c = config;
    this.norm1 = this.child("norm1", new nn.GroupNorm(c.groups, c.inChannels, c.eps));
    this.conv1 = this.child("conv1", new Conv2d(c.inChannels, c.outChannels, 3, { padding: 1 }, o));
    this.time_emb_proj =
      c.tembChannels === null
        ? null
        : this.child("time_emb_proj", new Linear(c.tembChannels, c.outChannels, true, o));
    this.norm2 = this.child("norm2", new nn.GroupNorm(c.groups, c.outChannels, c.eps));
    this.conv2 = this.child("conv2", new Conv2d(c.outChannels, c.outChannels, 3, { padding: 1 }, o));
    this.conv_shortcut =
      c.inChannels === c.outChannels
        ? null
        : this.child("conv_shortcut", new Conv2d(c.inChannels, c.outChannels, 1, {}, o));
    this.act = activation(c.act);
    this.fusedAct = c.act === "silu" || c.act === "swish" ? "silu" : c.act === "gelu" ? "gelu" : null;
  }

  /** act(norm(x)); GroupNorm applies SiLU / GELU itself (in place at inference). */
  private normAct(norm: nn.GroupNorm, x: Tensor): Tensor {
    return this.fusedAct ? norm.forward(x, this.fusedAct) : this.act(norm.forward(x));
  }

  /** (B, Cin, H, W), temb (B, T) or null → (B, Cout, H, W) */
  forward(x: Tensor, temb: Tensor | null, ctx: ForwardContext = {}): Tensor {
    return scoped(ctx.rec, () => {
      const xa = this.normAct(this.norm1, x);
      let h: Tensor;
      if (this.time_emb_proj && temb) {
        const t = this.time_emb_proj.forward(this.act(temb)); // (B, Cout)
        const b = this.conv1.bias;
        // One sample: the time embedding joins conv1's bias (one pass less over the map).
        h =
          t.size(0) === 1
            ? this.conv1.forwardWithBias(xa, b ? b.add(t.view(-1)) : t.view(-1))
            : this.conv1.forward(xa).add(t.view(t.size(0), t.size(1), 1, 1));
      } else h = this.conv1.forward(xa);
      const skip = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
      // out = skip + conv2(act(norm2(h))), the residual joined to conv2's bias
      let out = this.conv2.forwardWithBias(this.normAct(this.norm2, h), this.conv2.bias, skip);
      if (this.config.outputScaleFactor !== 1) out = out.div(this.config.outputScaleFactor);
      ctx.rec?.record(this.path, out);
      return out;
    });
  }
}

/** `resnets.j` of a block. */
export function resnetList(configs: ResnetBlock2DConfig[], o: nn.InitOptions): ModuleList<ResnetBlock2D> {
  return new ModuleList(configs.map((c) => new ResnetBlock2D(c, o)));
}

// ---------------------------------------------------------------------------------------------------------
// Resampling

/**
 * Stride-2 3×3 conv (`conv`). padding 1 (UNet) or padding 0 after a (0, 1, 0, 1) zero pad (VAE encoder,
 * diffusers `downsample_padding=0`).
 */
export class Downsample2D extends Module {
  readonly conv: nn.Conv2d;
  constructor(
    channels: number,
    readonly padding: number,
    o: nn.InitOptions = {},
  ) {
    super();
    this.conv = this.child("conv", new Conv2d(channels, channels, 3, { stride: 2, padding }, o));
  }
  /** (B, C, H, W) → (B, C, ⌈H/2⌉, ⌈W/2⌉) for padding 1, (B, C, ⌊H/2⌋, ⌊W/2⌋) for the VAE's padding 0. */
  forward(x: Tensor): Tensor {
    return tidy(() => this.conv.forward(this.padding === 0 ? F.pad(x, [0, 1, 0, 1]) : x));
  }
}

/** Nearest ×2 (or to an explicit size) then a 3×3 conv (`conv`). */
export class Upsample2D extends Module {
  readonly conv: nn.Conv2d;
  constructor(channels: number, o: nn.InitOptions = {}) {
    super();
    this.conv = this.child("conv", new Conv2d(channels, channels, 3, { padding: 1 }, o));
  }
  /** (B, C, H, W) → (B, C, 2H, 2W), or (B, C, size) when the UNet forwards its skip's size. */
  forward(x: Tensor, size?: [number, number]): Tensor {
    return tidy(() => {
      const [h, w] = size ?? [x.size(2) * 2, x.size(3) * 2];
      return this.conv.forward(F.interpolate(x, { size: [h, w], mode: "nearest" }));
    });
  }
}
