// The diffusion noise schedule and the one-step x̂0 of DEDOS ("images as noisy labels", spec §2), as
// diffusers' DDIMScheduler computes them (schedulers/scheduling_ddim.py):
//
//   β: "scaled_linear" = linspace(√β_start, √β_end, T)² (SD), "linear" = linspace(β_start, β_end, T),
//      "squaredcos_cap_v2" (cosine ᾱ), or trained_betas;     ᾱ_t = Π_{s ≤ t} (1 − β_s)     (float32)
//   x̂0 (epsilon)      = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t
//   x̂0 (v_prediction) = √ᾱ_t·x_t − √(1−ᾱ_t)·v̂
//   x̂0 (sample)       = model output
//   then clamped to ±clip_sample_range when clip_sample (DEDOS: the DDIM default, true).
//
// Every scalar is the float32 value diffusers holds (its alphas_cumprod is a float32 tensor), so the results
// match the reference to the last bit or nearly.

import { linspace, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { roundHalfEven } from "../util/math.js";
import { type PredictionType, readSchedulerConfig, type SchedulerConfig } from "./config.js";

const f32 = Math.fround;

/** β_t for t = 0…T−1 as float32, computed with the same ops (and libtorch kernels) diffusers uses. */
export function makeBetas(c: SchedulerConfig): Float32Array {
  const T = c.num_train_timesteps;
  if (c.trained_betas !== null) {
    if (c.trained_betas.length !== T)
      throw new Error(`scheduler: ${c.trained_betas.length} trained_betas for ${T} timesteps`);
    return Float32Array.from(c.trained_betas);
  }
  switch (c.beta_schedule) {
    case "linear":
      return tidy(() => linspace(c.beta_start, c.beta_end, T, { dtype: "float32" }).toFloat32Array());
    case "scaled_linear":
      return tidy(() =>
        linspace(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), T, { dtype: "float32" })
          .pow(2)
          .toFloat32Array(),
      );
    case "squaredcos_cap_v2": {
      // betas_for_alpha_bar (cosine): min(1 − ᾱ((i+1)/T) / ᾱ(i/T), 0.999) in float64, then float32.
      const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      return Float32Array.from({ length: T }, (_, i) => Math.min(1 - abar((i + 1) / T) / abar(i / T), 0.999));
    }
    default:
      throw new Error(`scheduler: unknown beta_schedule "${c.beta_schedule as string}"`);
  }
}

/** The schedule of one scheduler config: β, ᾱ (float32) and the ᾱ used before step 0. */
export class NoiseSchedule {
  readonly config: SchedulerConfig;
  readonly betas: Float32Array;
  /** ᾱ_t = cumprod(1 − β), float32, t = 0…T−1 (diffusers `alphas_cumprod`). */
  readonly alphasCumprod: Float32Array;
  /** ᾱ for prev_timestep < 0: 1 when set_alpha_to_one, else ᾱ_0. */
  readonly finalAlphaCumprod: number;

  constructor(config: SchedulerConfig | object) {
    const c = isSchedulerConfig(config) ? config : readSchedulerConfig(config);
    if (c.rescale_betas_zero_snr) throw new Error("scheduler: rescale_betas_zero_snr is not supported");
    if (c.thresholding) throw new Error("scheduler: thresholding (dynamic) is not supported");
    this.config = c;
    this.betas = makeBetas(c);
    this.alphasCumprod = tidy(() => tensor(this.betas).rsub(1).cumprod(0).toFloat32Array());
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  get numTrainTimesteps(): number {
    return this.config.num_train_timesteps;
  }

  /** ᾱ_t as float32 (t must be an integer in [0, T); negative t gives finalAlphaCumprod). */
  alphaProd(t: number): number {
    if (!Number.isInteger(t) || t >= this.numTrainTimesteps)
      throw new Error(`scheduler: timestep ${t} is not an integer in [0, ${this.numTrainTimesteps})`);
    return t < 0 ? this.finalAlphaCumprod : this.alphasCumprod[t]!;
  }

  /** ᾱ as a (T) float32 tensor. */
  alphasCumprodTensor(): Tensor {
    return tensor(this.alphasCumprod);
  }
}

function isSchedulerConfig(c: object): c is SchedulerConfig {
  return "beta_schedule" in c && "num_train_timesteps" in c && "clip_sample" in c && "prediction_type" in c;
}

/** DDIMScheduler.set_timesteps: the inference timesteps, descending. */
export function ddimTimesteps(c: SchedulerConfig, numInferenceSteps: number): number[] {
  const T = c.num_train_timesteps;
  const n = numInferenceSteps;
  if (!Number.isInteger(n) || n < 1 || n > T)
    throw new Error(`scheduler: num_inference_steps ${n} must be an integer in [1, ${T}]`);
  switch (c.timestep_spacing) {
    case "leading": {
      const ratio = Math.floor(T / n);
      return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + c.steps_offset);
    }
    case "trailing": {
      const ratio = T / n;
      const out: number[] = [];
      for (let t = T; t > 0; t -= ratio) out.push(roundHalfEven(t) - 1);
      return out;
    }
    case "linspace":
      return Array.from({ length: n }, (_, i) =>
        roundHalfEven(n === 1 ? 0 : ((T - 1) * (n - 1 - i)) / (n - 1)),
      );
  }
}

export interface X0Options {
  /** Default: the schedule's prediction_type. */
  predictionType?: PredictionType;
  /** Clamp x̂0 to ±clip_sample_range. Default: the schedule's clip_sample (DEDOS: true). */
  clipSample?: boolean;
}

/** x̂0 and the ε it implies (before clamping, as DDIM uses it), both shaped like the sample. */
export interface X0Prediction {
  x0: Tensor;
  epsilon: Tensor;
}

/**
 * One-step x̂0 from the model output at integer timestep t for the noisy sample x_t (DEDOS feeds the clean
 * latent z as x_t): epsilon, v_prediction or sample parameterisation, clamped when clipSample.
 */
export function predictX0(
  s: NoiseSchedule,
  modelOutput: Tensor,
  t: number,
  sample: Tensor,
  o: X0Options = {},
): X0Prediction {
  const a = s.alphaProd(t);
  const sa = f32(Math.sqrt(a)); // alpha_prod_t ** 0.5 (float32)
  const sb = f32(Math.sqrt(f32(1 - a))); // beta_prod_t ** 0.5
  const type = o.predictionType ?? s.config.prediction_type;
  const clip = o.clipSample ?? s.config.clip_sample;
  return tidy(() => {
    let x0: Tensor;
    let eps: Tensor;
    switch (type) {
      case "epsilon":
        x0 = sample.sub(modelOutput.mul(sb)).div(sa);
        eps = modelOutput;
        break;
      case "v_prediction":
        x0 = sample.mul(sa).sub(modelOutput.mul(sb));
        eps = modelOutput.mul(sa).add(sample.mul(sb));
        break;
      case "sample":
        x0 = modelOutput;
        eps = sample.sub(modelOutput.mul(sa)).div(sb);
        break;
      default:
        throw new Error(`scheduler: unknown prediction_type "${type as string}"`);
    }
    if (clip) {
      const r = s.config.clip_sample_range;
      x0 = x0.clamp(-r, r);
    }
    // Always fresh tensors, so callers may dispose the result without touching their inputs.
    return { x0: x0 === modelOutput ? x0.clone() : x0, epsilon: eps === modelOutput ? eps.clone() : eps };
  });
}

/** DEDOS's x̂0 (spec §2): the clean latent z as x_t, ε̂ from the UNet at t, clamped per the schedule. */
export function noisyLabelX0(
  s: NoiseSchedule,
  eps: Tensor,
  t: number,
  z: Tensor,
  clipSample?: boolean,
): Tensor {
  return tidy(() => predictX0(s, eps, t, z, { clipSample, predictionType: "epsilon" }).x0);
}

/**
 * DDIMScheduler.step with eta 0: prev = t − T / numInferenceSteps,
 * x_prev = √ᾱ_prev·x̂0 + √(1 − ᾱ_prev)·ε. Returns both (`prevSample`, `predOriginalSample`).
 */
export function ddimStep(
  s: NoiseSchedule,
  modelOutput: Tensor,
  t: number,
  sample: Tensor,
  numInferenceSteps: number,
): { prevSample: Tensor; predOriginalSample: Tensor } {
  const prev = t - Math.floor(s.numTrainTimesteps / numInferenceSteps);
  const aPrev = s.alphaProd(prev);
  const cx = f32(Math.sqrt(aPrev)); // alpha_prod_t_prev ** 0.5
  const ce = f32(Math.sqrt(f32(1 - aPrev))); // (1 − alpha_prod_t_prev − 0) ** 0.5
  return tidy(() => {
    const p = predictX0(s, modelOutput, t, sample);
    return { prevSample: p.x0.mul(cx).add(p.epsilon.mul(ce)), predOriginalSample: p.x0 };
  });
}
