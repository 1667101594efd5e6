// DEDOS mask-decoder head, pixel decoder (spec §6): a ViTDet-style simple feature pyramid from the CLIP
// features at the g×g grid, then an FPN top-down fusion. Plain convolutions and GroupNorm only (no custom
// operators, no BatchNorm, so data-parallel training is exact).
//
//   taps[0] (B, D, g, g) → scale4: ConvT(D → D/2, 2, s2) → GN → GELU → ConvT(D/2 → D/4, 2, s2)   4g
//   taps[1] (B, D, g, g) → scale2: ConvT(D → D/2, 2, s2)                                           2g
//   final   (B, D, g, g)                                                                            g
//   final   → MaxPool2d(2)                                                                          g/2
//   FPN, coarse → fine: y = GN(lateral 1×1(level)) + nearest-resize(y_coarser); out = ReLU(GN(3×3(y)))
//   mask_features: 1×1 conv (hidden → maskDim) on the 4g output; memory: the memoryLevels coarsest outputs.
//
// Level index i in `lateral_convs.{i}` / `output_convs.{i}` runs coarse → fine (0 = g/2, 3 = 4g).

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { type Tensor, tidy } from "../torch/tensor.js";
import type { MaskHeadConfig } from "./config.js";

/** Number of pyramid levels (g/2, g, 2g, 4g). */
export const PYRAMID_LEVELS = 4;

class GELU extends Module {
  forward(x: Tensor): Tensor {
    return F.gelu(x);
  }
}

/** conv (no bias) → GroupNorm, optionally → ReLU; children `conv`, `norm`. */
export class ConvNorm extends Module {
  readonly conv: nn.Conv2d;
  readonly norm: nn.GroupNorm;
  constructor(
    inCh: number,
    outCh: number,
    kernel: number,
    groups: number,
    readonly relu: boolean,
    o: nn.InitOptions = {},
  ) {
    super();
    this.conv = this.child(
      "conv",
      new nn.Conv2d(inCh, outCh, kernel, { padding: (kernel - 1) / 2, bias: false }, o),
    );
    this.norm = this.child("norm", new nn.GroupNorm(groups, outCh));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.norm.forward(this.conv.forward(x));
      return this.relu ? F.relu(y) : y;
    });
  }
}

export interface PixelDecoderInput {
  /** CLIP tap maps (B, D, g, g): taps[0] (earlier layer) feeds the 4g level, taps[1] the 2g level. */
  taps: [Tensor, Tensor];
  /** The dense final features (after ln_post, before the projection), (B, D, g, g). */
  final: Tensor;
}

export interface PixelDecoderOutput {
  /** (B, maskDim, 4g, 4g). */
  maskFeatures: Tensor;
  /** The memoryLevels coarsest FPN outputs, coarse → fine (g/2, g, 2g), each (B, hiddenDim, h, w). */
  memory: Tensor[];
}

export interface PixelDecoderDetail extends PixelDecoderOutput {
  /**
   * The simple-pyramid levels before the FPN, coarse → fine: (B, D, g/2), (B, D, g), (B, D/2, 2g),
   * (B, D/4, 4g). The g level IS the input `final` (do not dispose it with the rest).
   */
  pyramid: Tensor[];
  /** All FPN outputs, coarse → fine, each (B, hiddenDim, h, w). */
  outputs: Tensor[];
}

export class PixelDecoder extends Module {
  readonly scale4: nn.Sequential;
  readonly scale2: nn.ConvTranspose2d;
  readonly lateral_convs: ModuleList<ConvNorm>;
  readonly output_convs: ModuleList<ConvNorm>;
  readonly mask_features: nn.Conv2d;

  constructor(
    readonly clipWidth: number,
    readonly cfg: MaskHeadConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const D = clipWidth;
    const G = cfg.normGroups;
    if (D % 4 !== 0) throw new Error(`PixelDecoder: CLIP width ${D} is not divisible by 4`);
    if ((D / 2) % G !== 0 || cfg.hiddenDim % G !== 0)
      throw new Error(
        `PixelDecoder: normGroups ${G} must divide the CLIP width / 2 (${D / 2}) and hiddenDim`,
      );
    if (cfg.memoryLevels < 1 || cfg.memoryLevels > PYRAMID_LEVELS - 1)
      throw new Error(`PixelDecoder: memoryLevels must be 1..${PYRAMID_LEVELS - 1}, got ${cfg.memoryLevels}`);
    this.scale4 = this.child(
      "scale4",
      new nn.Sequential([
        new nn.ConvTranspose2d(D, D / 2, 2, { stride: 2 }, o),
        new nn.GroupNorm(G, D / 2),
        new GELU(),
        new nn.ConvTranspose2d(D / 2, D / 4, 2, { stride: 2 }, o),
      ]),
    );
    this.scale2 = this.child("scale2", new nn.ConvTranspose2d(D, D / 2, 2, { stride: 2 }, o));
    const inChannels = [D, D, D / 2, D / 4]; // coarse → fine
    const H = cfg.hiddenDim;
    this.lateral_convs = this.child(
      "lateral_convs",
      new ModuleList(inChannels.map((c) => new ConvNorm(c, H, 1, G, false, o))),
    );
    this.output_convs = this.child(
      "output_convs",
      new ModuleList(inChannels.map(() => new ConvNorm(H, H, 3, G, true, o))),
    );
    this.mask_features = this.child("mask_features", new nn.Conv2d(H, cfg.maskDim, 1, {}, o));
  }

  /** The simple pyramid, coarse → fine: g/2, g, 2g, 4g. */
  pyramid(x: PixelDecoderInput): Tensor[] {
    return tidy(() => [
      F.maxPool2d(x.final, 2),
      x.final,
      this.scale2.forward(x.taps[1]),
      this.scale4.forward(x.taps[0]),
    ]);
  }

  forwardDetailed(x: PixelDecoderInput): PixelDecoderDetail {
    return tidy(() => {
      const pyramid = this.pyramid(x);
      const outputs: Tensor[] = [];
      let y: Tensor | null = null;
      for (const [i, level] of pyramid.entries()) {
        const lat = this.lateral_convs.at(i).forward(level);
        const size: [number, number] = [lat.size(2), lat.size(3)];
        y = y ? lat.add(F.interpolate(y, { size, mode: "nearest" })) : lat;
        outputs.push(this.output_convs.at(i).forward(y));
      }
      const maskFeatures = this.mask_features.forward(outputs[outputs.length - 1]!);
      return { pyramid, outputs, maskFeatures, memory: outputs.slice(0, this.cfg.memoryLevels) };
    });
  }

  forward(x: PixelDecoderInput): PixelDecoderOutput {
    return tidy(() => {
      const d = this.forwardDetailed(x);
      return { maskFeatures: d.maskFeatures, memory: d.memory };
    });
  }
}
