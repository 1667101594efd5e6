// The diffusers folder loader (src/models/diffusers.ts): components from their configs, strict weights,
// named failures, and the empty-prompt embedding cache.
import assert from "node:assert/strict";
import { cpSync, existsSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ClipTextModel, emptyPromptIds } from "../../src/diffusion/text-encoder.js";
import { loadTextEncoderWeights } from "../../src/diffusion/weights.js";
import {
  emptyPromptCacheName,
  emptyPromptEmbeddingDetailed,
  loadDiffusersFolder,
} from "../../src/models/diffusers.js";
import { loadModuleFile } from "../../src/models/load.js";
import { loadCheckpoint, readCheckpointRecords, releaseMappings } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { dispose, noGrad, tensor, tidy } from "../../src/torch/tensor.js";
import {
  editWeights,
  maxDiff,
  renameKey,
  TINY_TE,
  tinyDiffusersFolders,
  writeJson,
  writeTextEncoder,
} from "../diffusion/tiny-folder.js";

const folders = tinyDiffusersFolders();

describe("loadDiffusersFolder", () => {
  test("loads every component from its own config, frozen and in eval mode", () => {
    const f = loadDiffusersFolder(folders.base);
    try {
      assert.deepEqual(f.unet.config.block_out_channels, [16, 32, 32]);
      assert.equal(f.vae.config.norm_num_groups, 8);
      assert.equal(f.scheduler.prediction_type, "epsilon");
      assert.equal(f.scheduler.steps_offset, 1);
      assert.equal(f.textEncoderConfig.hidden_act, "gelu");
      assert.deepEqual(
        { bos: f.tokens.bosId, eos: f.tokens.eosId, pad: f.tokens.padId, L: f.tokens.contextLength },
        { bos: 62, eos: 63, pad: 0, L: 77 },
      );
      for (const m of [f.vae, f.unet]) {
        assert.ok(m.parameters().length > 0);
        assert.ok(m.parameters().every((p) => !p.requiresGrad && p.dtype === "float32"));
        assert.ok([...m.namedModules()].every(([, mm]) => !mm.training));
      }
      // Loaded, not re-initialised: equal to the file.
      const ck = loadCheckpoint(f.files.unet.weights!);
      const sd = f.unet.stateDict();
      assert.equal(maxDiff(sd.get("conv_in.weight")!, ck.tensors.get("conv_in.weight")!), 0);
      dispose(ck.tensors);
      releaseMappings();
    } finally {
      f.dispose();
    }
  });

  test("a renamed UNet key fails strictly, naming the file and both keys", () => {
    const d = folders.copy();
    const file = join(d, "unet/diffusion_pytorch_model.safetensors");
    renameKey(file, "conv_out.bias", "conv_out.bias_renamed");
    assert.throws(
      () => loadDiffusersFolder(d),
      (e: unknown) =>
        e instanceof StateDictError &&
        e.message.includes(file) &&
        e.missing.includes("conv_out.bias") &&
        e.unexpected.includes("conv_out.bias_renamed"),
    );
  });

  test("a wrong VAE shape fails, naming the file, the key and both shapes", () => {
    const d = folders.copy();
    const file = join(d, "vae/diffusion_pytorch_model.safetensors");
    editWeights(file, (sd) => {
      sd.set(
        "quant_conv.bias",
        tidy(() => tensor(new Float32Array(7))),
      );
      return sd;
    });
    assert.throws(
      () => loadDiffusersFolder(d),
      (e: unknown) =>
        e instanceof StateDictError &&
        e.message.includes(file) &&
        /quant_conv\.bias: the model expects shape \[8\], .* has \[7\]/.test(e.message),
    );
  });

  test("missing subfolders, configs and weight files are named", () => {
    const d = folders.copy();
    rmSync(join(d, "scheduler"), { recursive: true });
    assert.throws(() => loadDiffusersFolder(d), /missing subfolder "scheduler\/"/);
    const d2 = folders.copy();
    rmSync(join(d2, "unet/diffusion_pytorch_model.safetensors"));
    assert.throws(
      () => loadDiffusersFolder(d2),
      /no weight file in .*unet.*diffusion_pytorch_model\.safetensors/,
    );
    const d3 = folders.copy();
    rmSync(join(d3, "vae/config.json"));
    assert.throws(() => loadDiffusersFolder(d3), /missing .*vae[\\/]config\.json/);
    const d4 = folders.copy();
    rmSync(join(d4, "text_encoder/model.safetensors"));
    assert.throws(() => loadDiffusersFolder(d4), /no weight file in .*text_encoder/);
    assert.throws(() => loadDiffusersFolder(join(folders.tmp, "nope")), /does not exist/);
  });

  test("torch .bin names and scheduler/config.json are accepted", () => {
    const d = folders.copy();
    // A safetensors file under the .bin name: the loader sniffs the format, the resolver only the name.
    cpSync(join(d, "vae/diffusion_pytorch_model.safetensors"), join(d, "vae/diffusion_pytorch_model.bin"));
    rmSync(join(d, "vae/diffusion_pytorch_model.safetensors"));
    cpSync(join(d, "scheduler/scheduler_config.json"), join(d, "scheduler/config.json"));
    rmSync(join(d, "scheduler/scheduler_config.json"));
    const f = loadDiffusersFolder(d);
    assert.match(f.files.vae.weights!, /diffusion_pytorch_model\.bin$/);
    assert.match(f.files.scheduler, /config\.json$/);
    f.dispose();
  });

  test("float16 is refused off CUDA with a clear error", () => {
    assert.throws(() => loadDiffusersFolder(folders.base, { dtype: "float16" }), /float16 runs only on CUDA/);
    assert.throws(
      () => loadDiffusersFolder(folders.base, { dtype: "bfloat16" as "float16" }),
      /dtype must be "float32" or "float16"/,
    );
  });
});

describe("empty-prompt embedding cache", () => {
  test("computed once with the folder's text encoder, then read from the file (max-length padding)", () => {
    const d = folders.copy();
    const cache = join(d, emptyPromptCacheName("max-length"));
    const f1 = loadDiffusersFolder(d);
    const r1 = emptyPromptEmbeddingDetailed(f1, "max-length");
    assert.equal(r1.from, "computed");
    assert.ok(existsSync(cache));
    assert.ok(!f1.textEncoderLoaded, "the text encoder is released after computing");
    assert.deepEqual(r1.embedding.shape, [1, 77, 32]);
    assert.equal(r1.embedding.requiresGrad, false);
    const meta = readCheckpointRecords(cache).extra;
    assert.match(String(meta.text_encoder_weights), /"name":"model\.safetensors","size":\d+/);
    assert.equal(String(meta.prompt_ids).split(",").slice(0, 3).join(","), "62,63,0");

    // Against a direct run of the text encoder on [BOS, EOS, pad "!"…].
    const te = loadModuleFile(
      join(d, "text_encoder/model.safetensors"),
      () => new ClipTextModel(TINY_TE),
      loadTextEncoderWeights,
    );
    releaseMappings();
    const ids = [62, 63, ...Array(75).fill(0)];
    const direct = noGrad(() => te.forward(tidy(() => tensor(Int32Array.from(ids), [1, 77]).long())));
    assert.equal(maxDiff(direct, r1.embedding), 0);
    te.dispose();

    // A second folder object reads the file, also after the text encoder weights are deleted.
    const f2 = loadDiffusersFolder(d);
    const r2 = emptyPromptEmbeddingDetailed(f2, "max-length");
    assert.equal(r2.from, "cache");
    assert.equal(maxDiff(r2.embedding, r1.embedding), 0);
    rmSync(join(d, "text_encoder/model.safetensors"));
    const f3 = loadDiffusersFolder(d);
    const r3 = emptyPromptEmbeddingDetailed(f3, "max-length");
    assert.equal(r3.from, "cache");
    assert.equal(maxDiff(r3.embedding, r1.embedding), 0);
    // The folder keeps its own copy in memory.
    assert.equal(f3.emptyPromptEmbedding("max-length"), f3.emptyPromptEmbedding("max-length"));
    for (const f of [f1, f2, f3]) f.dispose();
    dispose([r1, r2, r3, direct]);
  });

  test("default padding none: [BOS, EOS] only, its own cache file; the causal encoder's first two rows", () => {
    const d = folders.copy();
    const f = loadDiffusersFolder(d);
    const none = emptyPromptEmbeddingDetailed(f);
    assert.equal(none.from, "computed");
    assert.deepEqual(none.embedding.shape, [1, 2, 32]);
    assert.ok(existsSync(join(d, emptyPromptCacheName("none"))));
    assert.ok(!existsSync(join(d, emptyPromptCacheName("max-length"))));
    assert.equal(readCheckpointRecords(join(d, emptyPromptCacheName("none"))).extra.prompt_ids, "62,63");
    const te = loadModuleFile(
      join(d, "text_encoder/model.safetensors"),
      () => new ClipTextModel(TINY_TE),
      loadTextEncoderWeights,
    );
    releaseMappings();
    const direct = noGrad(() => te.forward(tidy(() => tensor(Int32Array.from([62, 63]), [1, 2]).long())));
    assert.equal(maxDiff(direct, none.embedding), 0);
    te.dispose();
    // The switch gives 77 rows; with causal attention the first two are the 2-token result.
    const padded = emptyPromptEmbeddingDetailed(f, "max-length");
    assert.deepEqual(padded.embedding.shape, [1, 77, 32]);
    const head = padded.embedding.narrow(1, 0, 2);
    assert.ok(maxDiff(head, none.embedding) < 1e-5);
    // The folder's in-memory copies are per padding.
    assert.deepEqual(f.emptyPromptEmbedding().shape, [1, 2, 32]);
    assert.deepEqual(f.emptyPromptEmbedding("max-length").shape, [1, 77, 32]);
    assert.throws(
      () => emptyPromptIds(f.tokens, "longest" as "none"),
      /padding must be "none" or "max-length"/,
    );
    f.dispose();
    dispose([none, padded, direct, head]);
  });

  test("a changed text encoder weight file or config invalidates the cache", () => {
    const d = folders.copy();
    const f = loadDiffusersFolder(d);
    const r1 = emptyPromptEmbeddingDetailed(f);
    assert.equal(r1.from, "computed");
    writeTextEncoder(d, 99); // other weights, same size
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(d, "text_encoder/model.safetensors"), old, old);
    const r2 = emptyPromptEmbeddingDetailed(f);
    assert.equal(r2.from, "computed");
    assert.ok(maxDiff(r2.embedding, r1.embedding) > 1e-3, "recomputed with the new weights");
    assert.equal(emptyPromptEmbeddingDetailed(f).from, "cache");
    // Config change (same weights): layer_norm_eps differs → stale.
    writeJson(join(d, "text_encoder/config.json"), { ...TINY_TE, layer_norm_eps: 1e-6 });
    const g = loadDiffusersFolder(d);
    assert.equal(emptyPromptEmbeddingDetailed(g).from, "computed");
    // With the weights deleted, a stale cache is an error naming both.
    writeJson(join(d, "text_encoder/config.json"), { ...TINY_TE, layer_norm_eps: 1e-7 });
    rmSync(join(d, "text_encoder/model.safetensors"));
    const h = loadDiffusersFolder(d);
    assert.throws(
      () => emptyPromptEmbeddingDetailed(h),
      /cache .* is missing or stale and the text encoder weights are missing/,
    );
    for (const x of [f, g, h]) x.dispose();
    dispose([r1, r2]);
  });

  test("a renamed text encoder key fails strictly when the embedding is computed", () => {
    const d = folders.copy();
    const file = join(d, "text_encoder/model.safetensors");
    renameKey(file, "text_model.final_layer_norm.weight", "text_model.final_layernorm.weight");
    const f = loadDiffusersFolder(d);
    assert.throws(
      () => emptyPromptEmbeddingDetailed(f),
      (e: unknown) =>
        e instanceof StateDictError &&
        e.message.includes(file) &&
        e.missing.includes("text_model.final_layer_norm.weight"),
    );
    assert.ok(!existsSync(join(d, emptyPromptCacheName("none"))));
    f.dispose();
  });
});
