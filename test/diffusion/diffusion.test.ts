// Stable Diffusion branch: fixture parity of the VAE halves and the UNet (+ DDIM x̂0), the noise schedule
// against hand-computed values, x̂0 parameterisations, configs, taps, strict loading, chunked attention.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  DEDOS_SCHEDULER_CONFIG,
  readDiffusersConfig,
  readSchedulerConfig,
  readUNet2DConditionConfig,
  type SchedulerConfig,
  SD_PRESETS,
} from "../../src/diffusion/config.js";
import {
  ddimStep,
  ddimTimesteps,
  NoiseSchedule,
  noisyLabelX0,
  predictX0,
} from "../../src/diffusion/schedule.js";
import { timestepEmbedding, UNet2DConditionModel, unetTapSpecs } from "../../src/diffusion/unet.js";
import {
  AutoencoderKL,
  convertDeprecatedAttentionKeys,
  imageToLatent,
  latentToImage01,
  samplePosterior,
} from "../../src/diffusion/vae.js";
import {
  runUnetCase,
  runVaeDecoderCase,
  runVaeEncoderCase,
  unetConfigFromCase,
  vaeConfigFromCase,
} from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { Generator, noGrad, randn, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { assertClose } from "../helpers.js";

const fixtures = join(PACKAGE_ROOT, "test/fixtures");
const tmp = mkdtempSync(join(tmpdir(), "dedos-diffusion-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const unetFixture = () => loadFixture(join(fixtures, "sd_unet"));

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

/** A small UNet of the fixture's architecture with seeded random weights. */
function tinyUnet(seed = 3, patch: object = {}): UNet2DConditionModel {
  return new UNet2DConditionModel(
    { ...unetConfigFromCase(unetFixture()), ...patch },
    { generator: new Generator(seed) },
  ).eval();
}

describe("diffusion fixture parity", () => {
  for (const [name, run] of [
    ["sd_vae_encoder", runVaeEncoderCase],
    ["sd_vae_decoder", runVaeDecoderCase],
    ["sd_unet", runUnetCase],
  ] as const) {
    test(name, () => {
      const results = run(loadFixture(join(fixtures, name)));
      for (const r of results) assert.ok(r.ok, `${r.name}: max |err| ${r.maxAbsError} ${r.note ?? ""}`);
      assert.ok(results.some((r) => r.name.startsWith("outputs.")));
      assert.ok(results.some((r) => r.name.startsWith("intermediates.")));
    });
  }
});

describe("noise schedule", () => {
  const s = new NoiseSchedule(DEDOS_SCHEDULER_CONFIG);

  /** ᾱ_t in float64 from the definition: β_i = (√β0 + i·(√β1 − √β0)/(T−1))², ᾱ_t = Π_{i≤t}(1 − β_i). */
  function handAlphaBar(t: number): number {
    const a = Math.sqrt(0.00085);
    const b = Math.sqrt(0.012);
    let p = 1;
    for (let i = 0; i <= t; i++) p *= 1 - (a + (i * (b - a)) / 999) ** 2;
    return p;
  }

  test("scaled-linear ᾱ_t matches the hand computation", () => {
    for (const t of [0, 1, 50, 100, 200, 537, 999]) {
      const want = handAlphaBar(t);
      const got = s.alphaProd(t);
      assert.ok(Math.abs(got - want) <= 2e-6 * want + 1e-7, `ᾱ_${t}: ${got} vs ${want}`);
    }
    assert.ok(Math.abs(s.alphaProd(0) - (1 - 0.00085)) < 1e-7);
    assert.equal(s.betas.length, 1000);
    assert.ok(Math.abs(s.betas[999]! - 0.012) < 1e-8);
    // The float32 values diffusers holds (case.json of sd_unet records them).
    const perT = unetFixture().json.scheduler.per_t;
    for (const t of [50, 100, 200]) {
      assert.equal(s.alphaProd(t), perT[`t${t}`].alpha_prod_t);
      assert.equal(s.alphaProd(t - 20), perT[`t${t}`].alpha_prod_t_prev);
    }
    assert.equal(s.alphaProd(-20), 1); // set_alpha_to_one
  });

  test("linear and squaredcos_cap_v2 betas", () => {
    const lin = new NoiseSchedule({
      ...DEDOS_SCHEDULER_CONFIG,
      beta_schedule: "linear",
      num_train_timesteps: 5,
    });
    assertClose(
      Array.from(lin.betas),
      [0, 1, 2, 3, 4].map((i) => 0.00085 + (i * (0.012 - 0.00085)) / 4),
      1e-9,
      1e-6,
    );
    const cos = new NoiseSchedule({
      ...DEDOS_SCHEDULER_CONFIG,
      beta_schedule: "squaredcos_cap_v2",
      num_train_timesteps: 4,
    });
    const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    // ᾱ_1 = (1 − β_0)(1 − β_1) = ᾱ(2/T) / ᾱ(0) (the product telescopes).
    assertClose([cos.alphasCumprod[1]!], [abar(2 / 4) / abar(0)], 1e-6);
  });

  test("DDIM inference timesteps (leading, offset, trailing, linspace)", () => {
    const lead = ddimTimesteps(DEDOS_SCHEDULER_CONFIG, 50);
    assert.equal(lead.length, 50);
    assert.deepEqual([lead[0], lead[1], lead[49]], [980, 960, 0]);
    assert.equal(ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, steps_offset: 1 }, 50)[0], 981);
    assert.deepEqual(
      ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, timestep_spacing: "trailing" }, 4),
      [999, 749, 499, 249],
    );
    assert.deepEqual(
      ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, timestep_spacing: "linspace" }, 4),
      [999, 666, 333, 0],
    );
  });

  test("x̂0: epsilon (clamped / unclamped), v-prediction and sample on a tiny hand case", () => {
    const t = 100;
    const a = s.alphaProd(t);
    const x = [0.5, -1, 2, 0.25];
    const m = [0.2, 0.3, -0.1, 4];
    tidy(() => {
      const xt = tensor(x);
      const mt = tensor(m);
      const eps = x.map((xi, i) => (xi - Math.sqrt(1 - a) * m[i]!) / Math.sqrt(a));
      const unclamped = predictX0(s, mt, t, xt, { clipSample: false }).x0;
      assertClose(unclamped.toArray(), eps, 1e-6, 1e-6, "epsilon x̂0");
      const clamped = predictX0(s, mt, t, xt).x0; // DEDOS default: clip_sample true
      assertClose(
        clamped.toArray(),
        eps.map((v) => Math.max(-1, Math.min(1, v))),
        1e-6,
        1e-6,
        "clamped x̂0",
      );
      assertClose(noisyLabelX0(s, mt, t, xt).toArray(), clamped.toArray(), 0, 0, "noisyLabelX0");

      // v-prediction: x̂0 = √ᾱ·x − √(1−ᾱ)·v, ε = √ᾱ·v + √(1−ᾱ)·x.
      const v = predictX0(s, mt, t, xt, { predictionType: "v_prediction", clipSample: false });
      const vx0 = x.map((xi, i) => Math.sqrt(a) * xi - Math.sqrt(1 - a) * m[i]!);
      assertClose(v.x0.toArray(), vx0, 1e-6, 1e-6, "v x̂0");
      assertClose(
        v.epsilon.toArray(),
        x.map((xi, i) => Math.sqrt(a) * m[i]! + Math.sqrt(1 - a) * xi),
        1e-6,
        1e-6,
        "v ε",
      );
      // A v-prediction scheduler config does the same by default.
      const vs = new NoiseSchedule({
        ...DEDOS_SCHEDULER_CONFIG,
        prediction_type: "v_prediction",
        clip_sample: false,
      });
      assertClose(predictX0(vs, mt, t, xt).x0.toArray(), vx0, 1e-6, 1e-6, "v config");

      const smp = predictX0(s, mt, t, xt, { predictionType: "sample", clipSample: false });
      assertClose(smp.x0.toArray(), m.map(Math.fround), 0, 0, "sample x̂0");

      // DDIM step, eta 0: √ᾱ_prev·x̂0 (clamped) + √(1−ᾱ_prev)·ε̂.
      const ap = s.alphaProd(t - 20);
      const step = ddimStep(s, mt, t, xt, 50);
      const clampedEps = eps.map((v2) => Math.max(-1, Math.min(1, v2)));
      assertClose(
        step.prevSample.toArray(),
        clampedEps.map((x0, i) => Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * m[i]!),
        1e-6,
        1e-6,
        "prev sample",
      );
    });
  });
});

describe("configs", () => {
  test("readDiffusersConfig: SD-2-base unet/config.json with defaults filled", () => {
    const json = JSON.stringify({
      _class_name: "UNet2DConditionModel",
      _diffusers_version: "0.8.0",
      act_fn: "silu",
      attention_head_dim: [5, 10, 20, 20],
      block_out_channels: [320, 640, 1280, 1280],
      center_input_sample: false,
      cross_attention_dim: 1024,
      down_block_types: [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
      ],
      downsample_padding: 1,
      dual_cross_attention: false,
      flip_sin_to_cos: true,
      freq_shift: 0,
      in_channels: 4,
      layers_per_block: 2,
      mid_block_scale_factor: 1,
      norm_eps: 1e-5,
      norm_num_groups: 32,
      out_channels: 4,
      sample_size: 64,
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      use_linear_projection: true,
    });
    const r = readDiffusersConfig(json);
    assert.equal(r.kind, "unet");
    assert.deepEqual(r.config, SD_PRESETS["sd-2-base"].unet);
    assert.equal(r.kind === "unet" && r.config.transformer_layers_per_block, 1); // default
    assert.throws(
      () => readUNet2DConditionConfig({ layers_per_block: "2" }),
      /"layers_per_block" must be int\|int\[\]/,
    );
  });

  test("scheduler_config.json (SD-2-base PNDM) and the DEDOS scheduler", () => {
    const r = readDiffusersConfig({
      _class_name: "PNDMScheduler",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      clip_sample: false,
      num_train_timesteps: 1000,
      prediction_type: "epsilon",
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
    });
    assert.equal(r.kind, "scheduler");
    const c = r.config as SchedulerConfig;
    assert.deepEqual(c, SD_PRESETS["sd-2-base"].scheduler);
    assert.equal(c.timestep_spacing, "leading");
    // DEDOS: DDIMScheduler(beta_start, beta_end, beta_schedule, num_train_timesteps) → clip_sample true.
    assert.equal(DEDOS_SCHEDULER_CONFIG.clip_sample, true);
    assert.deepEqual(
      readSchedulerConfig({ beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear" }),
      DEDOS_SCHEDULER_CONFIG,
    );
    assert.throws(() => readSchedulerConfig({ prediction_type: "flow" }), /prediction_type/);
    assert.equal(readDiffusersConfig({ _class_name: "AutoencoderKL", latent_channels: 4 }).kind, "vae");
    assert.throws(() => readDiffusersConfig({}), /_class_name/);
  });

  test("unsupported UNet features are rejected by name", () => {
    assert.throws(() => tinyUnet(1, { class_embed_type: "timestep" }), /class embeddings/);
    assert.throws(
      () => tinyUnet(1, { down_block_types: ["CrossAttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"] }),
      /AttnDownBlock2D/,
    );
  });
});

describe("UNet", () => {
  test("tap layout: SD-2-base and SD-1.5 have 16 transformer taps (down 6, mid 1, up 9)", () => {
    for (const p of ["sd-2-base", "sd-1.5"] as const) {
      const specs = unetTapSpecs(SD_PRESETS[p].unet);
      assert.equal(specs.length, 16);
      assert.equal(specs.filter((s) => s.path.startsWith("down_blocks.")).length, 6);
      assert.equal(specs.filter((s) => s.path.startsWith("mid_block.")).length, 1);
      assert.equal(specs.filter((s) => s.path.startsWith("up_blocks.")).length, 9);
      assert.deepEqual(specs[0], {
        path: "down_blocks.0.attentions.0.transformer_blocks.0",
        channels: 320,
        stride: 1,
      });
      assert.deepEqual(specs[6], {
        path: "mid_block.attentions.0.transformer_blocks.0",
        channels: 1280,
        stride: 8,
      });
      assert.deepEqual(specs[15], {
        path: "up_blocks.3.attentions.2.transformer_blocks.0",
        channels: 320,
        stride: 1,
      });
    }
  });

  test("forward taps: one per transformer, (B, h·w, C), in execution order, output unchanged", () => {
    const unet = tinyUnet();
    noGrad(() =>
      tidy(() => {
        const z = randn([2, 4, 8, 12], { generator: new Generator(1) });
        const text = randn([2, 2, 32], { generator: new Generator(2) });
        const r = unet.forward(z, 50, text);
        const specs = unet.tapSpecs();
        assert.deepEqual(
          r.taps.map((t) => t.path),
          specs.map((s) => s.path),
        );
        r.taps.forEach((t, i) => {
          const st = specs[i]!.stride;
          assert.deepEqual(t.size, [8 / st, 12 / st]);
          assert.deepEqual(t.tokens.shape, [2, (8 / st) * (12 / st), specs[i]!.channels]);
        });
        // DEDOS's released hook point (attn2 output = to_out.1) is recordable by path too.
        const a2 = unet.forward(z, 50, text, {
          taps: false,
          record: (p) => p.endsWith("transformer_blocks.0.attn2"),
        });
        assert.equal(a2.recorded.size, specs.length);
        assert.deepEqual(
          a2.recorded.get("up_blocks.2.attentions.2.transformer_blocks.0.attn2")?.shape,
          [2, 96, 16],
        );
        assert.equal(maxDiff(a2.sample, r.sample), 0);
        const plain = unet.forward(z, 50, text, { taps: false });
        assert.equal(plain.taps.length, 0);
        assert.equal(maxDiff(plain.sample, r.sample), 0);
        // A (B) timestep tensor gives the same as the scalar.
        const tt = unet.forward(z, tensor([50, 50], undefined, { dtype: "int64" }), text, { taps: false });
        assert.equal(maxDiff(tt.sample, r.sample), 0);
      }),
    );
    unet.dispose();
  });

  test("odd latent sizes upsample to the skip sizes; chunked attention gives the same result", () => {
    const unet = tinyUnet();
    noGrad(() =>
      tidy(() => {
        const z = randn([1, 4, 7, 9], { generator: new Generator(4) });
        const text = randn([1, 3, 32], { generator: new Generator(5) });
        const a = unet.forward(z, 200, text);
        assert.deepEqual(a.sample.shape, [1, 4, 7, 9]);
        const b = unet.forward(z, 200, text, { attentionBudgetBytes: 64 }); // forces 1–2 queries per chunk
        assert.ok(maxDiff(a.sample, b.sample) < 1e-6);
        assert.ok(maxDiff(a.taps[0]!.tokens, b.taps[0]!.tokens) < 1e-6);
      }),
    );
    unet.dispose();
  });

  test("conv projections (SD-1.5 style), scalar head count, 2 transformer layers", () => {
    const unet = tinyUnet(7, {
      use_linear_projection: false,
      attention_head_dim: 2,
      transformer_layers_per_block: 2,
    });
    const sd = unet.stateDict();
    assert.deepEqual(sd.get("down_blocks.0.attentions.0.proj_in.weight")?.shape, [16, 16, 1, 1]);
    assert.ok(sd.has("up_blocks.2.attentions.2.transformer_blocks.1.ff.net.2.weight"));
    noGrad(() =>
      tidy(() => {
        const r = unet.forward(randn([1, 4, 8, 8]), 10, randn([1, 2, 32]));
        assert.deepEqual(r.sample.shape, [1, 4, 8, 8]);
        assert.equal(r.taps.length, unet.tapSpecs().length);
      }),
    );
    unet.dispose();
  });

  test("sinusoidal embedding: flip_sin_to_cos puts cos first", () => {
    tidy(() => {
      const e = timestepEmbedding(tensor([3]), 4, true, 0).toArray();
      // half 2: freqs exp(−ln(1e4)·k/2) = [1, 0.01]
      assertClose(e, [Math.cos(3), Math.cos(0.03), Math.sin(3), Math.sin(0.03)], 1e-6);
      assertClose(
        timestepEmbedding(tensor([3]), 5, false, 1)
          .toArray()
          .slice(4),
        [0],
        0,
      );
    });
  });
});

describe("strict loading", () => {
  test("a wrong shape, a missing and an unexpected key are all named", () => {
    const unet = tinyUnet();
    const src = tinyUnet(9);
    const sd = new Map(src.stateDict());
    const bad = randn([16, 4, 3, 1]);
    sd.set("conv_in.weight", bad);
    sd.delete("up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight");
    sd.set("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias", bad);
    let err: unknown;
    try {
      unet.loadStateDict(sd, { source: "unet.safetensors" });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof StateDictError, String(err));
    assert.match(
      err.message,
      /conv_in\.weight: the model expects shape \[16, 4, 3, 3\], unet\.safetensors has \[16, 4, 3, 1\]/,
    );
    assert.deepEqual(err.missing, ["up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight"]);
    assert.deepEqual(err.unexpected, ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias"]);
    bad.dispose();
    unet.dispose();
    src.dispose();
  });

  test("VAE halves: a full state dict does not fit an encoder-only model; the matching half does", () => {
    const config = vaeConfigFromCase(loadFixture(join(fixtures, "sd_vae_encoder")));
    const full = new AutoencoderKL(config, { generator: new Generator(1) });
    const enc = new AutoencoderKL(config, { parts: "encoder", generator: new Generator(2) });
    assert.throws(
      () => enc.loadStateDict(full.stateDict(), { source: "vae.safetensors" }),
      (e: Error) =>
        e instanceof StateDictError &&
        e.unexpected.includes("post_quant_conv.weight") &&
        e.missing.length === 0,
    );
    const half = new Map(
      [...full.stateDict()].filter(([k]) => k.startsWith("encoder.") || k.startsWith("quant_conv.")),
    );
    enc.loadStateDict(half);
    noGrad(() =>
      tidy(() => {
        const img = randn([1, 3, 16, 24]).mul(60).add(128);
        assert.equal(maxDiff(imageToLatent(enc, img), imageToLatent(full, img)), 0);
      }),
    );
    full.dispose();
    enc.dispose();
  });
});

describe("VAE", () => {
  test("posterior sampling with a generator is reproducible and is mean + std·N(0,1)", () => {
    const config = vaeConfigFromCase(loadFixture(join(fixtures, "sd_vae_encoder")));
    const vae = new AutoencoderKL(config, { parts: "encoder", generator: new Generator(3) }).eval();
    noGrad(() =>
      tidy(() => {
        const img = randn([2, 3, 16, 16], { generator: new Generator(8) })
          .mul(60)
          .add(128);
        const z1 = imageToLatent(vae, img, { sample: new Generator(42) });
        const z2 = imageToLatent(vae, img, { sample: new Generator(42) });
        assert.equal(maxDiff(z1, z2), 0);
        const zMean = imageToLatent(vae, img);
        assert.ok(maxDiff(z1, zMean) > 0);
        const post = vae.encode(img.div(255).mul(2).sub(1));
        const manual = post.mean.add(post.std.mul(randn(post.mean.shape, { generator: new Generator(42) })));
        assert.ok(maxDiff(z1, manual.mul(config.scaling_factor)) < 1e-7);
        assert.ok(maxDiff(samplePosterior(post, new Generator(42)), manual) < 1e-7);
        assert.deepEqual(zMean.shape, [2, 4, 4, 4]);
        // Odd sizes: the (0,1,0,1) pad before each stride-2 conv floors them.
        assert.deepEqual(imageToLatent(vae, randn([1, 3, 17, 23])).shape, [1, 4, 4, 5]);
      }),
    );
    vae.dispose();
  });
});

describe("checkpoint files", () => {
  test("a legacy-named VAE file (query/key/value/proj_attn, 1×1-conv shapes) loads and decodes identically", () => {
    const config = vaeConfigFromCase(loadFixture(join(fixtures, "sd_vae_decoder")));
    const src = new AutoencoderKL(config, { generator: new Generator(5) }).eval();
    const legacy = new Map<string, Tensor>();
    const names: Record<string, string> = {
      to_q: "query",
      to_k: "key",
      to_v: "value",
      "to_out.0": "proj_attn",
    };
    const views: Tensor[] = [];
    for (const [k, t] of src.stateDict()) {
      const m = /^(.*mid_block\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k);
      if (!m) legacy.set(k, t);
      else {
        const v = m[3] === "weight" ? t.view(t.size(0), t.size(1), 1, 1) : t;
        if (v !== t) views.push(v);
        legacy.set(`${m[1]}${names[m[2]!]}.${m[3]}`, v);
      }
    }
    assert.ok(legacy.has("decoder.mid_block.attentions.0.proj_attn.weight"));
    const converted = convertDeprecatedAttentionKeys(legacy);
    assert.deepEqual([...converted.keys()].sort(), [...src.stateDict().keys()].sort());
    const file = join(tmp, "vae-legacy.safetensors");
    saveSafetensors(file, legacy);
    const loaded = AutoencoderKL.fromCheckpoint(file, config);
    noGrad(() =>
      tidy(() => {
        const z = randn([1, 4, 6, 5], { generator: new Generator(6) });
        assert.equal(maxDiff(latentToImage01(loaded, z).raw, latentToImage01(src, z).raw), 0);
        const img = randn([1, 3, 24, 20]).mul(50).add(120);
        assert.equal(maxDiff(imageToLatent(loaded, img), imageToLatent(src, img)), 0);
      }),
    );
    // Decoder-only from the same file: the encoder keys are unexpected and named.
    assert.throws(
      () => AutoencoderKL.fromCheckpoint(file, config, { parts: "decoder" }),
      (e: Error) =>
        e instanceof StateDictError && e.message.includes(file) && e.unexpected.includes("quant_conv.weight"),
    );
    const legacyTensors = new Set(legacy.values());
    for (const t of converted.values()) if (!legacyTensors.has(t)) t.dispose(); // the squeezed views
    for (const v of views) v.dispose();
    loaded.dispose();
    src.dispose();
  });

  test("UNet.fromCheckpoint round trip; a different config fails naming the file and a shape", () => {
    const src = tinyUnet(11);
    const file = join(tmp, "unet.safetensors");
    saveSafetensors(file, src.stateDict());
    const loaded = UNet2DConditionModel.fromCheckpoint(file, src.config);
    noGrad(() =>
      tidy(() => {
        const z = randn([1, 4, 8, 8]);
        const text = randn([1, 2, 32]);
        assert.equal(maxDiff(loaded.forward(z, 100, text).sample, src.forward(z, 100, text).sample), 0);
      }),
    );
    assert.throws(
      () => UNet2DConditionModel.fromCheckpoint(file, { ...src.config, cross_attention_dim: 24 }),
      (e: Error) =>
        e instanceof StateDictError &&
        e.message.includes(file) &&
        /attn2\.to_k\.weight: the model expects shape \[16, 24\], .* has \[16, 32\]/.test(e.message),
    );
    loaded.dispose();
    src.dispose();
  });
});
