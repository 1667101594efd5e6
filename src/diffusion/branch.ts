// DEDOS's frozen diffusion branch (spec §2) on a Stable Diffusion's VAE and UNet: VAE-encode the crop,
// then per timestep one UNet pass on z (no noise added) with the empty prompt, x̂0, and the 16 (SD-2)
// transformer-block taps. Every forward runs under noGrad, so no autograd graph (activation memory) is kept.
// The components come from a diffusers folder (models/diffusers.ts) or are built in memory (tests).

import type { Device } from "../torch/dtype.js";
import type { Module } from "../torch/nn/module.js";
import { dispose, noGrad, type Tensor, tidy } from "../torch/tensor.js";
import { DEDOS_SCHEDULER_CONFIG, type SchedulerConfig } from "./config.js";
import { NoiseSchedule, predictX0 } from "./schedule.js";
import type { PromptPadding } from "./text-encoder.js";
import type { UNet2DConditionModel, UNetTap } from "./unet.js";
import { type AutoencoderKL, imageToLatent, latentToImage01 } from "./vae.js";

export type PipelineDType = "float32" | "float16";

/** requiresGrad off, eval mode. */
export function freeze<M extends Module>(m: M): M {
  return m.requiresGrad_(false).eval();
}

export interface DiffusionBranchOptions {
  /** Timesteps of the one-step x̂0 (default [50, 100, 200], spec §2 `diffusion.timesteps`). */
  timesteps?: number[];
  /** Clamp x̂0 to [−1, 1] (default true, the DDIM default DEDOS relies on: `diffusion.clipSample`). */
  clipSample?: boolean;
  /** The empty prompt: "none" (default, BOS + EOS) or "max-length" (`diffusion.promptPadding`). */
  promptPadding?: PromptPadding;
  /** Byte budget of one attention score matrix before queries are chunked (UNet and VAE). */
  attentionBudgetBytes?: number;
}

/**
 * What the branch needs from a Stable Diffusion: a DiffusersFolder, or components built in memory (tests,
 * tiny models).
 */
export interface DiffusionComponents {
  readonly vae: AutoencoderKL;
  readonly unet: UNet2DConditionModel;
  /** The folder's own scheduler config (only prediction_type is read). */
  readonly scheduler: SchedulerConfig;
  readonly dtype: PipelineDType;
  readonly device: Device;
  /** The empty-prompt text embedding (1, S, cross_attention_dim), S = 2 (`none`) or the context length. */
  emptyPromptEmbedding(padding?: PromptPadding): Tensor;
}

/** One timestep's results. */
export interface DiffusionStep {
  t: number;
  /** The UNet's raw output (ε̂ for epsilon models, v̂ for v-prediction). */
  output: Tensor;
  /** ε̂ (for v-prediction the ε implied by v̂ and z). */
  eps: Tensor;
  /** x̂0, clamped when clipSample. */
  x0: Tensor;
  /** The 16 (SD-2) transformer-block taps, in execution order. */
  taps: UNetTap[];
}

/**
 * DEDOS's frozen diffusion branch: VAE-encode the crop, then per t one UNet pass on z (no noise added) with
 * the empty prompt, x̂0 from DEDOS's DDIM scheduler (scaled-linear 0.00085→0.012, 1000 steps, clip_sample
 * per options) using the folder's prediction_type. Everything runs under noGrad.
 */
export class DiffusionBranch {
  readonly schedule: NoiseSchedule;
  readonly timesteps: number[];
  private readonly text: Tensor;

  constructor(
    readonly folder: DiffusionComponents,
    private readonly o: DiffusionBranchOptions = {},
  ) {
    this.schedule = new NoiseSchedule({
      ...DEDOS_SCHEDULER_CONFIG,
      prediction_type: folder.scheduler.prediction_type,
      clip_sample: o.clipSample ?? true,
    });
    this.timesteps = [...(o.timesteps ?? [50, 100, 200])];
    for (const t of this.timesteps) this.schedule.alphaProd(t); // validates
    this.text = folder.emptyPromptEmbedding(o.promptPadding ?? "none");
  }

  /** Pixels 0–255 (B, 3, H, W) → z = posterior mean · scaling_factor (B, 4, H/8, W/8), device and dtype of the folder. */
  encodeImage(img255: Tensor): Tensor {
    const f = this.folder;
    return noGrad(() =>
      tidy(() =>
        imageToLatent(f.vae, img255.to({ dtype: f.dtype, device: f.device }), {
          attentionBudgetBytes: this.o.attentionBudgetBytes,
        }),
      ),
    );
  }

  /** One UNet pass per t on z (B, 4, h, w): the raw output, ε̂, x̂0 and the taps. */
  run(z: Tensor, timesteps: number[] = this.timesteps): DiffusionStep[] {
    const f = this.folder;
    return noGrad(() =>
      tidy(() => {
        const B = z.size(0);
        const text = this.text.expand(B, this.text.size(1), this.text.size(2));
        return timesteps.map((t) =>
          tidy(() => {
            const u = f.unet.forward(z, t, text, { attentionBudgetBytes: this.o.attentionBudgetBytes });
            const p = predictX0(this.schedule, u.sample, t, z);
            return { t, output: u.sample, eps: p.epsilon, x0: p.x0, taps: u.taps };
          }),
        );
      }),
    );
  }

  /** x̂0 latents (B, 4, h, w) → the decoded "denoised image" on the 0–255 scale (B, 3, 8h, 8w), fp32. */
  decodeImage255(x0: Tensor): Tensor {
    const f = this.folder;
    return noGrad(() =>
      tidy(() =>
        latentToImage01(f.vae, x0.to({ dtype: f.dtype, device: f.device }), {
          attentionBudgetBytes: this.o.attentionBudgetBytes,
        })
          .image01.float()
          .mul(255),
      ),
    );
  }

  /** encodeImage then run. */
  forward(img255: Tensor, timesteps?: number[]): { z: Tensor; steps: DiffusionStep[] } {
    return tidy(() => {
      const z = this.encodeImage(img255);
      return { z, steps: this.run(z, timesteps) };
    });
  }
}

/** Frees a run's tensors. */
export function disposeSteps(steps: DiffusionStep[]): void {
  for (const s of steps) dispose([s.output, s.eps, s.x0, s.taps.map((t) => t.tokens)]);
}
