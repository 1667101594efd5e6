// The transformers CLIPTextModel and the prompt ids of diffusers folders (src/diffusion/text-encoder.ts).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { EOT_ID, SOT_ID } from "../../src/clip/tokenizer.js";
import {
  CLIP_TEXT_MODEL_DEFAULTS,
  ClipTextModel,
  type ClipTextModelConfig,
  emptyPromptIds,
  promptIds,
  readClipTextModelConfig,
  readPromptTokenSpec,
} from "../../src/diffusion/text-encoder.js";
import { readTokenizerFiles } from "../../src/models/diffusers.js";
import { dispose, Generator, noGrad, tensor, tidy } from "../../src/torch/tensor.js";
import { tempDir } from "../temp-dir.js";
import { maxDiff, TINY_TE, writeJson } from "./tiny-folder.js";

const tmp = tempDir("dedos-text-encoder-");

describe("ClipTextModel (transformers CLIPTextModel layout)", () => {
  const cfg = (patch: Partial<ClipTextModelConfig> = {}) => ({ ...TINY_TE, vocab_size: 100, ...patch });

  test("state-dict keys are transformers' names", () => {
    const m = new ClipTextModel(cfg({ num_hidden_layers: 1 }));
    const keys = [...m.stateDict().keys()];
    for (const k of [
      "text_model.embeddings.token_embedding.weight",
      "text_model.embeddings.position_embedding.weight",
      "text_model.encoder.layers.0.self_attn.q_proj.weight",
      "text_model.encoder.layers.0.self_attn.out_proj.bias",
      "text_model.encoder.layers.0.layer_norm1.weight",
      "text_model.encoder.layers.0.mlp.fc1.weight",
      "text_model.encoder.layers.0.mlp.fc2.bias",
      "text_model.encoder.layers.0.layer_norm2.bias",
      "text_model.final_layer_norm.weight",
    ])
      assert.ok(keys.includes(k), k);
    assert.equal(keys.length, 2 + 16 + 2);
    m.dispose();
  });

  test("causal: changing a later token leaves earlier positions unchanged", () => {
    const m = new ClipTextModel(cfg(), { generator: new Generator(4) });
    const a = [1, 5, 7, 9, 11, 13, 2, 0, 0, 0];
    const b = [...a];
    b[5] = 42;
    const run = (ids: number[]) =>
      noGrad(() => m.forward(tidy(() => tensor(Int32Array.from(ids), [1, ids.length]).long())));
    const ya = run(a);
    const yb = run(b);
    assert.equal(maxDiff(ya.narrow(1, 0, 5), yb.narrow(1, 0, 5)), 0);
    assert.ok(maxDiff(ya.narrow(1, 5, 5), yb.narrow(1, 5, 5)) > 1e-4);
    // Trailing tokens do not matter to a prefix: a length-5 input gives the same first 5 positions.
    const yc = run(a.slice(0, 5));
    assert.ok(maxDiff(yc, ya.narrow(1, 0, 5)) < 1e-6);
    dispose([ya, yb, yc]);
    m.dispose();
  });

  test("hidden_act from the config: exact gelu vs quick_gelu in the MLP", () => {
    const g = loadedPair();
    const x = tidy(() =>
      tensor(Float32Array.from([-2, -0.5, 0, 0.3, 1.5, 3]), [1, 6])
        .repeat(1, 6)
        .narrow(1, 0, 32),
    );
    for (const [m, act] of g) {
      const mlp = m.text_model.encoder.layers.at(0).mlp;
      const y = noGrad(() => mlp.forward(x));
      const expected = noGrad(() =>
        tidy(() => {
          const h = x.matmul(mlp.fc1.weight.transpose(0, 1)).add(mlp.fc1.bias!);
          const a =
            act === "gelu" ? h.mul(h.div(Math.SQRT2).erf().add(1)).mul(0.5) : h.mul(h.mul(1.702).sigmoid());
          return a.matmul(mlp.fc2.weight.transpose(0, 1)).add(mlp.fc2.bias!);
        }),
      );
      assert.ok(maxDiff(y, expected) < 1e-5, act);
      dispose([y, expected]);
    }
    const [gelu, quick] = [g[0]![0], g[1]![0]];
    const ids = tidy(() => tensor(Int32Array.from([1, 2, 3]), [1, 3]).long());
    const ya = noGrad(() => gelu.forward(ids));
    const yb = noGrad(() => quick.forward(ids));
    assert.ok(maxDiff(ya, yb) > 1e-4, "same weights, different activation");
    dispose([x, ids, ya, yb]);
    gelu.dispose();
    quick.dispose();
  });

  function loadedPair(): [ClipTextModel, string][] {
    const a = new ClipTextModel(cfg({ hidden_act: "gelu" }), { generator: new Generator(8) });
    const b = new ClipTextModel(cfg({ hidden_act: "quick_gelu" }));
    b.loadStateDict(a.stateDict());
    return [
      [a, "gelu"],
      [b, "quick_gelu"],
    ];
  }

  test("one token: attention is the identity mix, so the layer is hand-computable", () => {
    const m = new ClipTextModel(cfg({ num_hidden_layers: 1 }), { generator: new Generator(9) });
    const tm = m.text_model;
    const layer = tm.encoder.layers.at(0);
    const y = noGrad(() => m.forward(tidy(() => tensor(Int32Array.from([7]), [1, 1]).long())));
    const expected = noGrad(() =>
      tidy(() => {
        const e = tm.embeddings.token_embedding.weight
          .narrow(0, 7, 1)
          .add(tm.embeddings.position_embedding.weight.narrow(0, 0, 1)); // (1, D)
        const v = layer.self_attn.v_proj.forward(layer.layer_norm1.forward(e));
        const h = e.add(layer.self_attn.out_proj.forward(v));
        const out = h.add(layer.mlp.forward(layer.layer_norm2.forward(h)));
        return tm.final_layer_norm.forward(out).view(1, 1, -1);
      }),
    );
    assert.ok(maxDiff(y, expected) < 1e-5);
    dispose([y, expected]);
    m.dispose();
  });

  test("config reading: defaults, CLIPConfig.text_config, bad values", () => {
    const c = readClipTextModelConfig({ hidden_size: 1024, num_attention_heads: 16, hidden_act: "gelu" });
    assert.equal(c.intermediate_size, 2048);
    assert.equal(c.max_position_embeddings, 77);
    assert.equal(
      readClipTextModelConfig({ text_config: { hidden_size: 768, num_attention_heads: 12 } }).hidden_size,
      768,
    );
    assert.throws(() => readClipTextModelConfig({ hidden_act: "swiglu" }), /hidden_act "swiglu"/);
    assert.throws(
      () => readClipTextModelConfig({ hidden_size: 10, num_attention_heads: 3 }),
      /not divisible/,
    );
    assert.throws(
      () => readClipTextModelConfig({ num_hidden_layers: 1.5 }),
      /"num_hidden_layers" must be an integer/,
    );
  });
});

describe("prompt ids (diffusers padding)", () => {
  test("pad token per model when the folder has no tokenizer files", () => {
    const sd2 = readPromptTokenSpec(null, { ...CLIP_TEXT_MODEL_DEFAULTS, hidden_act: "gelu" });
    const sd15 = readPromptTokenSpec(null, { ...CLIP_TEXT_MODEL_DEFAULTS, hidden_act: "quick_gelu" });
    assert.deepEqual([sd2.bosId, sd2.eosId, sd2.padId], [SOT_ID, EOT_ID, 0]);
    assert.deepEqual([sd15.bosId, sd15.eosId, sd15.padId], [SOT_ID, EOT_ID, EOT_ID]);
    const e = tidy(() =>
      Array.from(emptyPromptIds(sd15, "max-length").toTypedArray() as BigInt64Array, Number),
    );
    assert.deepEqual(e, [SOT_ID, ...Array(76).fill(EOT_ID)]);
    const short = tidy(() => Array.from(emptyPromptIds(sd15).toTypedArray() as BigInt64Array, Number));
    assert.deepEqual(short, [SOT_ID, EOT_ID]);
  });

  test("pad token from tokenizer_config.json (AddedToken form) and model_max_length", () => {
    const d = join(tmp, "tok");
    mkdirSync(d, { recursive: true });
    writeJson(join(d, "tokenizer_config.json"), {
      pad_token: { content: "<|endoftext|>", lstrip: false },
      model_max_length: 77,
    });
    const s = readPromptTokenSpec(readTokenizerFiles(d), { ...CLIP_TEXT_MODEL_DEFAULTS, hidden_act: "gelu" });
    assert.equal(s.padId, EOT_ID);
    assert.equal(s.contextLength, 77);
    writeJson(join(d, "special_tokens_map.json"), { pad_token: "<unk>" });
    assert.throws(
      () => readPromptTokenSpec(readTokenizerFiles(d), CLIP_TEXT_MODEL_DEFAULTS),
      /pad token "<unk>" is not in/,
    );
  });

  test("promptIds pads real prompts like diffusers; '' equals emptyPromptIds", () => {
    const spec = readPromptTokenSpec(null, { ...CLIP_TEXT_MODEL_DEFAULTS, hidden_act: "quick_gelu" });
    const ids = tidy(() =>
      Array.from(promptIds(["", "a photo"], spec).toTypedArray() as BigInt64Array, Number),
    );
    const empty = tidy(() =>
      Array.from(emptyPromptIds(spec, "max-length").toTypedArray() as BigInt64Array, Number),
    );
    assert.deepEqual(ids.slice(0, 77), empty);
    const row = ids.slice(77);
    assert.equal(row[0], SOT_ID);
    const eos = row.indexOf(EOT_ID);
    assert.ok(eos >= 3);
    assert.ok(row.slice(eos).every((v) => v === EOT_ID));
  });
});
