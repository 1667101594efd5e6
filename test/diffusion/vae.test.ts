// The VAE (src/diffusion/vae.ts): fixture parity of the encoder and decoder halves, posterior sampling, and
// strict loading of one half.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AutoencoderKL, imageToLatent, samplePosterior } from "../../src/diffusion/vae.js";
import { runVaeDecoderCase, runVaeEncoderCase, vaeConfigFromCase } from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { Generator, noGrad, randn, tidy } from "../../src/torch/tensor.js";
import { fixtures, maxDiff } from "./helpers.js";

describe("diffusion fixture parity", () => {
  for (const [name, run] of [
    ["sd_vae_encoder", runVaeEncoderCase],
    ["sd_vae_decoder", runVaeDecoderCase],
  ] as const) {
    test(name, () => {
      const results = run(loadFixture(join(fixtures, name)));
      for (const r of results) assert.ok(r.ok, `${r.name}: max |err| ${r.maxAbsError} ${r.note ?? ""}`);
      assert.ok(results.some((r) => r.name.startsWith("outputs.")));
      assert.ok(results.some((r) => r.name.startsWith("intermediates.")));
    });
  }
});

describe("strict loading", () => {
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
