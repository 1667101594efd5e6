// Parity cases "sd_vae_encoder", "sd_vae_decoder" and "sd_unet": the diffusers AutoencoderKL halves and
// UNet2DConditionModel built from case.json, weights loaded strictly under diffusers' key names (the fixture's
// `weights.<key>`), run as DEDOS runs them, and every `outputs.*` tensor plus the forward-hook
// `intermediates.*` compared under the case tolerance. An `outputs.*` tensor nobody compared fails.
import type { AutoencoderKLConfig, SchedulerConfig, UNet2DConditionConfig } from "../../diffusion/config.js";
import {
  readAutoencoderKLConfig,
  readSchedulerConfig,
  readUNet2DConditionConfig,
} from "../../diffusion/config.js";
import { ddimStep, NoiseSchedule, predictX0 } from "../../diffusion/schedule.js";
import { UNet2DConditionModel } from "../../diffusion/unet.js";
import {
  AutoencoderKL,
  imageToLatent,
  latentToImage01,
  normalizeImage255,
  type VaeParts,
} from "../../diffusion/vae.js";
import { noGrad, type Tensor, tidy } from "../../torch/tensor.js";
import { Checker, checkModel, fixtureTensor } from "../checker.js";
import type { Comparison, Fixture } from "../fixture.js";
import { loadFixtureWeights } from "../fixture-weights.js";

/** case.json config keys carry explanations after the name ("scaling_factor (DEDOS …)"): strip them. */
function plainKeys(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k.split(" ")[0]!] = v;
  return out;
}

export function vaeConfigFromCase(f: Fixture): AutoencoderKLConfig {
  return readAutoencoderKLConfig(plainKeys(f.json.config));
}

export function unetConfigFromCase(f: Fixture): UNet2DConditionConfig {
  return readUNet2DConditionConfig(plainKeys(f.json.config));
}

/** The scheduler DEDOS builds, as recorded in case.json `scheduler.dedos` (plus `set_timesteps`). */
export function dedosSchedulerFromCase(f: Fixture): { config: SchedulerConfig; numInferenceSteps: number } {
  const d = f.json.scheduler?.dedos;
  if (!d) throw new Error(`${f.dir}/case.json: no scheduler.dedos`);
  const { class: _cls, set_timesteps, eta, ...rest } = d as Record<string, unknown>;
  if (eta !== undefined && eta !== 0)
    throw new Error(`${f.dir}/case.json: DDIM eta ${eta} (only 0 is implemented)`);
  return { config: readSchedulerConfig(rest), numInferenceSteps: Number(set_timesteps ?? 50) };
}

function buildVae(f: Fixture, parts: VaeParts): AutoencoderKL {
  const vae = new AutoencoderKL(vaeConfigFromCase(f), { parts }).eval();
  try {
    loadFixtureWeights(f, vae, "weights.");
  } catch (e) {
    vae.dispose();
    throw e;
  }
  return vae;
}

/** img_process_ + norm_img_to_latent, plus `vae.encode(x).latent_dist.mean` and the block hooks. */
export function runVaeEncoderCase(f: Fixture): Comparison[] {
  return checkModel(f, buildVae(f, "encoder"), (c, vae) => {
    const image = fixtureTensor(f, "inputs.image"); // (B, 3, H, W) 0–255
    const rgbNorm = normalizeImage255(image);
    c.check("intermediates.rgb_norm", rgbNorm);
    const post = vae.encode(rgbNorm, { record: (p) => p.startsWith("encoder.") || p === "quant_conv" });
    c.check("outputs.posterior_mean", post.mean);
    c.check("intermediates.moments", post.moments);
    c.checkRecorded("intermediates.encoder.", prefixed(post.recorded, "encoder."));
    c.check("outputs.latent_scaled", imageToLatent(vae, image)); // the DEDOS helper end to end
  });
}

/** latent_to_img_tensor, with `decoder_raw` before the clamp and the block hooks. */
export function runVaeDecoderCase(f: Fixture): Comparison[] {
  return checkModel(f, buildVae(f, "decoder"), (c, vae) => {
    const latent = fixtureTensor(f, "inputs.latent_scaled"); // (B, 4, h, w)
    const r = latentToImage01(vae, latent, { record: () => true });
    c.check("outputs.decoder_raw", r.raw);
    c.check("outputs.image01", r.image01);
    c.checkRecorded("intermediates.", r.recorded);
  });
}

/**
 * DEDOS feature_extraction without noise: ε̂ = unet(z, t, s) for every `outputs.eps_t<t>`; for the t with
 * x0 outputs, DDIM step with DEDOS's scheduler (x̂0 clamped; prev_sample) and x̂0 without the clamp; the
 * forward hooks at the t of `intermediates.t<t>.*`; ᾱ against `intermediates.alphas_cumprod`.
 */
export function runUnetCase(f: Fixture): Comparison[] {
  const config = unetConfigFromCase(f);
  const unet = new UNet2DConditionModel(config).eval();
  try {
    loadFixtureWeights(f, unet, "weights.");
    const c = new Checker(f);
    const { config: sched, numInferenceSteps } = dedosSchedulerFromCase(f);
    const schedule = new NoiseSchedule(sched);
    const timesteps = [...f.records.keys()]
      .map((k) => /^outputs\.eps_t(\d+)$/.exec(k)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const hooked = new Set(
      [...f.records.keys()]
        .map((k) => /^intermediates\.t(\d+)\./.exec(k)?.[1])
        .filter((x) => x !== undefined)
        .map(Number),
    );
    noGrad(() =>
      tidy(() => {
        c.check("intermediates.alphas_cumprod", schedule.alphasCumprodTensor());
        const z = fixtureTensor(f, "inputs.latent"); // (B, 4, h, w)
        const text = fixtureTensor(f, "inputs.encoder_hidden_states"); // (B, S, cross)
        for (const t of timesteps) {
          tidy(() => {
            const r = unet.forward(z, t, text, { record: hooked.has(t) ? () => true : undefined });
            c.check(`outputs.eps_t${t}`, r.sample);
            if (hooked.has(t)) {
              const all = new Map(r.recorded);
              for (const tap of r.taps) all.set(tap.path, tap.tokens);
              c.checkRecorded(`intermediates.t${t}.`, all);
            }
            if (c.has(`outputs.x0_t${t}`) || c.has(`outputs.prev_sample_t${t}`)) {
              const step = ddimStep(schedule, r.sample, t, z, numInferenceSteps);
              c.check(`outputs.x0_t${t}`, step.predOriginalSample);
              c.check(`outputs.prev_sample_t${t}`, step.prevSample);
            }
            if (c.has(`outputs.x0_unclipped_t${t}`)) {
              c.check(
                `outputs.x0_unclipped_t${t}`,
                predictX0(schedule, r.sample, t, z, { clipSample: false }).x0,
              );
            }
          });
        }
      }),
    );
    return c.finish();
  } finally {
    unet.dispose();
  }
}

/** The recorder's paths under `prefix` with the prefix removed. */
function prefixed(m: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of m) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}
