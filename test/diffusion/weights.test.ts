// Stable Diffusion weight files (src/diffusion/weights.ts): a legacy-named VAE file converted and loaded,
// a UNet file round trip, and a wrong config failing with the file and the shape named.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { UNet2DConditionModel } from "../../src/diffusion/unet.js";
import { AutoencoderKL, imageToLatent, latentToImage01 } from "../../src/diffusion/vae.js";
import {
  convertDeprecatedAttentionKeys,
  loadUNetWeights,
  loadVaeWeights,
} from "../../src/diffusion/weights.js";
import { loadModuleFile } from "../../src/models/load.js";
import { vaeConfigFromCase } from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { Generator, noGrad, randn, type Tensor, tidy } from "../../src/torch/tensor.js";
import { fixtures, maxDiff, tinyUnet } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "dedos-diffusion-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

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
    const loaded = loadModuleFile(file, () => new AutoencoderKL(config), loadVaeWeights);
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
      () => loadModuleFile(file, () => new AutoencoderKL(config, { parts: "decoder" }), loadVaeWeights),
      (e: Error) =>
        e instanceof StateDictError && e.message.includes(file) && e.unexpected.includes("quant_conv.weight"),
    );
    const legacyTensors = new Set(legacy.values());
    for (const t of converted.values()) if (!legacyTensors.has(t)) t.dispose(); // the squeezed views
    for (const v of views) v.dispose();
    loaded.dispose();
    src.dispose();
  });

  test("UNet weights file round trip; a different config fails naming the file and a shape", () => {
    const src = tinyUnet(11);
    const file = join(tmp, "unet.safetensors");
    saveSafetensors(file, src.stateDict());
    const loaded = loadModuleFile(file, () => new UNet2DConditionModel(src.config), loadUNetWeights);
    noGrad(() =>
      tidy(() => {
        const z = randn([1, 4, 8, 8]);
        const text = randn([1, 2, 32]);
        assert.equal(maxDiff(loaded.forward(z, 100, text).sample, src.forward(z, 100, text).sample), 0);
      }),
    );
    assert.throws(
      () =>
        loadModuleFile(
          file,
          () => new UNet2DConditionModel({ ...src.config, cross_attention_dim: 24 }),
          loadUNetWeights,
        ),
      (e: Error) =>
        e instanceof StateDictError &&
        e.message.includes(file) &&
        /attn2\.to_k\.weight: the model expects shape \[16, 24\], .* has \[16, 32\]/.test(e.message),
    );
    loaded.dispose();
    src.dispose();
  });
});
