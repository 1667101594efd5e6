// OpenAI CLIP ViT image tower as CAT-Seg runs it (cat_seg/third_party/model_vpt.py `VisualTransformer`),
// with OpenAI's parameter names: `conv1.weight`, `class_embedding`, `positional_embedding`, `ln_pre`,
// `transformer.resblocks.i.*`, `ln_post`, `proj`.
//
//   pixels (B, 3, H, W) → conv1 patches (B, D, gh, gw) → [CLS; patches] + positional embedding
//   (resized bicubically when the grid is not the native one) → ln_pre → transformer (LND)
//   → dense: last block value path only (CAT-Seg) → ln_post on every token → @ proj
//
// Also the CLIP pixel normalisation and the bilinear resize of CATSeg.forward.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { cat, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, type ClipVisionConfig, nativeGrid } from "./config.js";
import { type ClipInitOptions, ClipTransformer, initParam } from "./text.js";

export interface ClipVisionForwardOptions {
  /** CAT-Seg dense mode: the last block keeps only its value path; every token is a local feature. */
  dense?: boolean;
  /** Block indices whose outputs (LND) to return (CAT-Seg guidance taps, e.g. [3, 7] for ViT-B/16). */
  taps?: readonly number[];
  /** Replaces each block's output (DEDOS query injection); see TransformerRunOptions.blockHook. */
  blockHook?: (layer: number, x: Tensor) => Tensor;
  /** Also return the positional embedding used, ln_pre output and every block output. */
  debug?: boolean;
}

export interface ClipVisionOutput {
  /** (B, 1 + gh·gw, outputDim): ln_post then proj on every token, CLS first. */
  tokens: Tensor;
  /** (B, outputDim): the standard CLIP image embedding (CLS token), only when not dense. */
  pooled?: Tensor;
  /** (B, 1 + gh·gw, width): ln_post on every token before proj (DEDOS's dense feature). */
  lnPostDense: Tensor;
  /**
   * (1 + gh·gw, B, width) per requested layer, in request order. In dense mode the last block's tap is its
   * `forwardDense` output (in CAT-Seg a hook on that block would not fire at all).
   */
  taps: Tensor[];
  /** Patch grid [gh, gw]. */
  grid: [number, number];
  debug?: { posEmbed: Tensor; lnPre: Tensor; blocks: Tensor[] };
}

export class ClipVisionEncoder extends Module {
  readonly conv1: nn.Conv2d;
  readonly ln_pre: nn.LayerNorm;
  readonly transformer: ClipTransformer;
  readonly ln_post: nn.LayerNorm;

  constructor(
    readonly config: ClipVisionConfig,
    o: ClipInitOptions = {},
  ) {
    super();
    const c = config;
    if (c.width % c.heads !== 0)
      throw new Error(`ClipVisionEncoder: width ${c.width} is not divisible by ${c.heads} heads`);
    const g = nativeGrid(c);
    const scale = c.width ** -0.5;
    // Registration order = OpenAI's state_dict order.
    this.param("class_embedding", initParam([c.width], scale, o)); // (D)
    this.param("positional_embedding", initParam([g * g + 1, c.width], scale, o)); // (1 + g², D)
    this.param("proj", initParam([c.width, c.outputDim], scale, o)); // (D, E)
    this.conv1 = this.child(
      "conv1",
      new nn.Conv2d(3, c.width, c.patchSize, { stride: c.patchSize, bias: false }, o),
    );
    this.ln_pre = this.child("ln_pre", new nn.LayerNorm(c.width, 1e-5));
    this.transformer = this.child("transformer", new ClipTransformer(c.width, c.layers, c.heads, o));
    this.ln_post = this.child("ln_post", new nn.LayerNorm(c.width, 1e-5));
  }

  get classEmbedding(): Tensor {
    return this.get("class_embedding");
  }
  get positionalEmbedding(): Tensor {
    return this.get("positional_embedding");
  }
  get proj(): Tensor {
    return this.get("proj");
  }

  /**
   * Positional embedding for a gh×gw grid (1 + gh·gw, D): the native one, or CAT-Seg `resized_pos_embed`:
   * the CLS row kept, the g×g grid resized bicubically (align_corners=False), rows in (h, w) order.
   */
  positionalEmbeddingFor(gh: number, gw: number): Tensor {
    const g = nativeGrid(this.config);
    if (gh === g && gw === g) return tidy(() => this.positionalEmbedding.view(g * g + 1, -1));
    return tidy(() => {
      const pos = this.positionalEmbedding;
      const D = pos.size(1);
      const grid = pos
        .narrow(0, 1, g * g)
        .reshape(1, g, g, D)
        .permute(0, 3, 1, 2); // (1, D, g, g)
      const resized = F.interpolate(grid, { size: [gh, gw], mode: "bicubic", alignCorners: false }); // (1, D, gh, gw)
      return cat([pos.narrow(0, 0, 1), resized.reshape(D, gh * gw).transpose(0, 1)], 0); // (1 + gh·gw, D)
    });
  }

  /** Normalised pixels (B, 3, H, W) → tokens, taps and (when not dense) the pooled embedding. */
  forward(pixels: Tensor, o: ClipVisionForwardOptions = {}): ClipVisionOutput {
    if (pixels.ndim !== 4 || pixels.size(1) !== 3) {
      throw new Error(`ClipVisionEncoder: pixels must be (B, 3, H, W), got [${pixels.shape.join(", ")}]`);
    }
    const c = this.config;
    return tidy(() => {
      const patches = this.conv1.forward(pixels); // (B, D, gh, gw)
      const [B, D, gh, gw] = patches.shape as [number, number, number, number];
      const x0 = patches.reshape(B, D, gh * gw).permute(0, 2, 1); // (B, gh·gw, D)
      const cls = this.classEmbedding.view(1, 1, D).expand(B, 1, D); // (B, 1, D)
      // The grid, not just the token count, decides the resize (CAT-Seg compares counts: same for squares).
      const posEmbed = this.positionalEmbeddingFor(gh, gw); // (1 + gh·gw, D)
      const lnPre = this.ln_pre.forward(cat([cls, x0], 1).add(posEmbed)); // (B, L, D)
      const taps = o.debug ? [...Array(c.layers).keys()] : (o.taps ?? []);
      const run = this.transformer.run(lnPre.permute(1, 0, 2), {
        denseLast: o.dense ?? false,
        taps,
        blockHook: o.blockHook,
      }); // LND
      // ln_post is per token, so normalising all tokens and reading CLS equals the reference's ln_post(x[:, 0]).
      const lnPostDense = this.ln_post.forward(run.out.permute(1, 0, 2)); // (B, L, D)
      const tokens = lnPostDense.matmul(this.proj); // (B, L, E)
      const out: ClipVisionOutput = { tokens, lnPostDense, taps: [], grid: [gh, gw] };
      if (!o.dense) out.pooled = tokens.select(1, 0); // (B, E)
      if (o.debug) {
        out.debug = { posEmbed, lnPre, blocks: run.taps };
        out.taps = (o.taps ?? []).map((l) => run.taps[l]!);
      } else {
        out.taps = run.taps;
      }
      return out;
    });
  }

  /** (B, 3, H, W) normalised → (B, outputDim) pooled, or (B, 1 + HW, outputDim) when dense. */
  encodeImage(pixels: Tensor, o: { dense?: boolean } = {}): Tensor {
    return tidy(() => {
      const r = this.forward(pixels, { dense: o.dense });
      return o.dense ? r.tokens : r.pooled!;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pre-processing (CATSeg.forward)

/** (x − mean) / std per channel on the 0–255 scale: (B, 3, H, W) → (B, 3, H, W). */
export function normalizeClipPixels(x: Tensor): Tensor {
  return tidy(() => {
    const mean = tensor(Float32Array.from(CLIP_PIXEL_MEAN), [1, 3, 1, 1]).to(x.dtype);
    const std = tensor(Float32Array.from(CLIP_PIXEL_STD), [1, 3, 1, 1]).to(x.dtype);
    // Subtract then divide, in the reference's order (not a multiply by 1/std), for bitwise-close results.
    return x.sub(mean).div(std);
  });
}

/** Bilinear resize (align_corners=False, no antialias) to size×size or [h, w]; a no-op copy-free view if equal. */
export function resizeForClip(x: Tensor, size: number | readonly [number, number]): Tensor {
  const [h, w] = typeof size === "number" ? [size, size] : size;
  if (x.size(-2) === h && x.size(-1) === w) return tidy(() => x.view(...x.shape));
  return F.interpolate(x, { size: [h, w], mode: "bilinear", alignCorners: false });
}

/** CATSeg.forward's CLIP input: normalise raw 0–255 pixels, then bilinear-resize to the CLIP resolution. */
export function prepareClipInput(raw: Tensor, size: number | readonly [number, number]): Tensor {
  return tidy(() => resizeForClip(normalizeClipPixels(raw), size));
}
