// The UNet (src/diffusion/unet.ts with its blocks and attention): fixture parity (+ DDIM x̂0), tap layout and
// forward taps, odd sizes and chunked attention, conv projections, the timestep embedding, strict loading.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SD_PRESETS } from "../../src/diffusion/config.js";
import { timestepEmbedding, unetTapSpecs } from "../../src/diffusion/unet.js";
import { runUnetCase } from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { Generator, noGrad, randn, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose } from "../helpers.js";
import { fixtures, maxDiff, tinyUnet } from "./helpers.js";

describe("diffusion fixture parity", () => {
  for (const [name, run] of [["sd_unet", runUnetCase]] as const) {
    test(name, () => {
      const results = run(loadFixture(join(fixtures, name)));
      for (const r of results) assert.ok(r.ok, `${r.name}: max |err| ${r.maxAbsError} ${r.note ?? ""}`);
      assert.ok(results.some((r) => r.name.startsWith("outputs.")));
      assert.ok(results.some((r) => r.name.startsWith("intermediates.")));
    });
  }
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
});
