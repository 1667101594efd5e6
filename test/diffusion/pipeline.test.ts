// Diffusers folder loading, the empty-prompt cache, the frozen DEDOS diffusion branch and the CLIPTextModel
// text encoder, on a tiny diffusers folder written to a temp dir (configs mirroring the sd_* fixtures,
// random weights).
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EOT_ID, SOT_ID } from "../../src/clip/tokenizer.js";
import {
  DiffusionBranch,
  disposeSteps,
  emptyPromptCacheName,
  emptyPromptEmbeddingDetailed,
  loadDiffusersFolder,
} from "../../src/diffusion/pipeline.js";
import { noisyLabelX0 } from "../../src/diffusion/schedule.js";
import {
  CLIP_TEXT_MODEL_DEFAULTS,
  ClipTextModel,
  type ClipTextModelConfig,
  emptyPromptIds,
  promptIds,
  readClipTextModelConfig,
  readPromptTokenSpec,
} from "../../src/diffusion/text-encoder.js";
import { UNet2DConditionModel, unetTapSpecs } from "../../src/diffusion/unet.js";
import { AutoencoderKL } from "../../src/diffusion/vae.js";
import { unetConfigFromCase, vaeConfigFromCase } from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import {
  loadCheckpoint,
  readCheckpointRecords,
  releaseMappings,
  saveSafetensors,
} from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import {
  arange,
  dispose,
  Generator,
  noGrad,
  rand,
  type Tensor,
  tensor,
  tidy,
} from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

const fixtures = join(PACKAGE_ROOT, "test/fixtures");
const tmp = mkdtempSync(join(tmpdir(), "dedos-pipeline-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.float().sub(b.float()).abs().max().item());
}

/** Tiny text encoder: small vocabulary whose special ids come from the folder's tokenizer/vocab.json. */
const TINY_TE: ClipTextModelConfig = {
  ...CLIP_TEXT_MODEL_DEFAULTS,
  vocab_size: 64,
  hidden_size: 32, // = the fixture UNet's cross_attention_dim
  intermediate_size: 64,
  projection_dim: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 77,
  hidden_act: "gelu",
};
const TINY_VOCAB = { "!": 0, '"': 1, "<|startoftext|>": 62, "<|endoftext|>": 63 };

function writeJson(file: string, v: unknown): void {
  writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

function saveModule(
  file: string,
  m: { stateDict(): Map<string, Tensor> },
  extra?: Map<string, Tensor>,
): void {
  saveSafetensors(file, new Map([...m.stateDict(), ...(extra ?? [])]));
}

function writeTextEncoder(dir: string, seed: number, extra?: Map<string, Tensor>): void {
  const te = new ClipTextModel(TINY_TE, { generator: new Generator(seed) });
  saveModule(join(dir, "text_encoder/model.safetensors"), te, extra);
  te.dispose();
}

/** A complete tiny diffusers folder. */
function writeTinyFolder(dir: string): void {
  for (const s of ["vae", "unet", "text_encoder", "scheduler", "tokenizer"])
    mkdirSync(join(dir, s), { recursive: true });
  const vaeConfig = vaeConfigFromCase(loadFixture(join(fixtures, "sd_vae_encoder")));
  const unetConfig = unetConfigFromCase(loadFixture(join(fixtures, "sd_unet")));
  writeJson(join(dir, "vae/config.json"), { _class_name: "AutoencoderKL", ...vaeConfig });
  writeJson(join(dir, "unet/config.json"), { _class_name: "UNet2DConditionModel", ...unetConfig });
  writeJson(join(dir, "text_encoder/config.json"), { architectures: ["CLIPTextModel"], ...TINY_TE });
  writeJson(join(dir, "scheduler/scheduler_config.json"), {
    _class_name: "PNDMScheduler",
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    set_alpha_to_one: false,
    steps_offset: 1,
    clip_sample: false,
  });
  writeJson(join(dir, "tokenizer/special_tokens_map.json"), {
    bos_token: { content: "<|startoftext|>" },
    eos_token: { content: "<|endoftext|>" },
    pad_token: "!",
  });
  writeJson(join(dir, "tokenizer/vocab.json"), TINY_VOCAB);
  const g = new Generator(11);
  const vae = new AutoencoderKL(vaeConfig, { generator: g });
  saveModule(join(dir, "vae/diffusion_pytorch_model.safetensors"), vae);
  vae.dispose();
  const unet = new UNet2DConditionModel(unetConfig, { generator: g });
  saveModule(join(dir, "unet/diffusion_pytorch_model.safetensors"), unet);
  unet.dispose();
  // transformers < 4.31 saved the position_ids buffer: it must be ignored, as transformers does.
  writeTextEncoder(
    dir,
    5,
    new Map([["text_model.embeddings.position_ids", tidy(() => arange(0, 77).view(1, 77))]]),
  );
}

const base = join(tmp, "base");
let copies = 0;
/** A fresh copy of the tiny folder (tests modify their copies). */
function copyFolder(): string {
  const d = join(tmp, `copy${copies++}`);
  cpSync(base, d, { recursive: true });
  for (const p of ["none", "max-length"] as const) rmSync(join(d, emptyPromptCacheName(p)), { force: true });
  return d;
}

/** Rewrites one component's weight file through `edit`. */
function editWeights(file: string, edit: (sd: Map<string, Tensor>) => Map<string, Tensor>): void {
  const ck = loadCheckpoint(file);
  const sd = new Map([...ck.tensors].map(([k, t]) => [k, t.clone()]));
  dispose(ck.tensors);
  releaseMappings();
  saveSafetensors(file, edit(sd));
  dispose(sd);
}

before(() => writeTinyFolder(base));

describe("loadDiffusersFolder", () => {
  test("loads every component from its own config, frozen and in eval mode", () => {
    const f = loadDiffusersFolder(base);
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
    const d = copyFolder();
    const file = join(d, "unet/diffusion_pytorch_model.safetensors");
    editWeights(file, (sd) => {
      const t = sd.get("conv_out.bias")!;
      sd.delete("conv_out.bias");
      sd.set("conv_out.bias_renamed", t);
      return sd;
    });
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
    const d = copyFolder();
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
    const d = copyFolder();
    rmSync(join(d, "scheduler"), { recursive: true });
    assert.throws(() => loadDiffusersFolder(d), /missing subfolder "scheduler\/"/);
    const d2 = copyFolder();
    rmSync(join(d2, "unet/diffusion_pytorch_model.safetensors"));
    assert.throws(
      () => loadDiffusersFolder(d2),
      /no weight file in .*unet.*diffusion_pytorch_model\.safetensors/,
    );
    const d3 = copyFolder();
    rmSync(join(d3, "vae/config.json"));
    assert.throws(() => loadDiffusersFolder(d3), /missing .*vae[\\/]config\.json/);
    const d4 = copyFolder();
    rmSync(join(d4, "text_encoder/model.safetensors"));
    assert.throws(() => loadDiffusersFolder(d4), /no weight file in .*text_encoder/);
    assert.throws(() => loadDiffusersFolder(join(tmp, "nope")), /does not exist/);
  });

  test("torch .bin names and scheduler/config.json are accepted", () => {
    const d = copyFolder();
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
    assert.throws(() => loadDiffusersFolder(base, { dtype: "float16" }), /float16 runs only on CUDA/);
    assert.throws(
      () => loadDiffusersFolder(base, { dtype: "bfloat16" as "float16" }),
      /dtype must be "float32" or "float16"/,
    );
  });
});

describe("empty-prompt embedding cache", () => {
  test("computed once with the folder's text encoder, then read from the file (max-length padding)", () => {
    const d = copyFolder();
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
    const te = ClipTextModel.fromCheckpoint(join(d, "text_encoder/model.safetensors"), TINY_TE);
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
    const d = copyFolder();
    const f = loadDiffusersFolder(d);
    const none = emptyPromptEmbeddingDetailed(f);
    assert.equal(none.from, "computed");
    assert.deepEqual(none.embedding.shape, [1, 2, 32]);
    assert.ok(existsSync(join(d, emptyPromptCacheName("none"))));
    assert.ok(!existsSync(join(d, emptyPromptCacheName("max-length"))));
    assert.equal(readCheckpointRecords(join(d, emptyPromptCacheName("none"))).extra.prompt_ids, "62,63");
    const te = ClipTextModel.fromCheckpoint(join(d, "text_encoder/model.safetensors"), TINY_TE);
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
    const d = copyFolder();
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
    const d = copyFolder();
    const file = join(d, "text_encoder/model.safetensors");
    editWeights(file, (sd) => {
      const t = sd.get("text_model.final_layer_norm.weight")!;
      sd.delete("text_model.final_layer_norm.weight");
      sd.set("text_model.final_layernorm.weight", t);
      return sd;
    });
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

describe("DiffusionBranch", () => {
  test("encode → per-t UNet pass with the empty prompt: ε̂, clamped x̂0, 11 taps; frozen, no grads", () => {
    const d = copyFolder();
    const f = loadDiffusersFolder(d);
    const branch = new DiffusionBranch(f, { timesteps: [50, 200] });
    const img = rand([2, 3, 16, 24], { generator: new Generator(2) }).mul(255);
    const z = branch.encodeImage(img);
    assert.deepEqual(z.shape, [2, 4, 4, 6]); // the fixture VAE downsamples by 4
    const steps = branch.run(z);
    assert.deepEqual(
      steps.map((s) => s.t),
      [50, 200],
    );
    const nTaps = unetTapSpecs(f.unet.config).length;
    assert.equal(nTaps, 11); // fixture UNet: down 2×2, mid 1, up 2×3
    const text = f.emptyPromptEmbedding();
    assert.deepEqual(text.shape, [1, 2, 32], "the default empty prompt is [BOS, EOS]");
    for (const s of steps) {
      assert.equal(s.taps.length, nTaps);
      assert.deepEqual(s.eps.shape, [2, 4, 4, 6]);
      assert.ok(tidy(() => s.x0.abs().max().item()) <= 1);
      // x̂0 is DEDOS's formula on the same ε̂, and ε̂ the UNet's output with the empty prompt.
      const ref = noisyLabelX0(branch.schedule, s.eps, s.t, z, true);
      assert.equal(maxDiff(ref, s.x0), 0);
      const direct = noGrad(() =>
        f.unet.forward(
          z,
          s.t,
          tidy(() => text.expand(2, 2, 32).contiguous()),
        ),
      );
      assert.ok(maxDiff(direct.sample, s.eps) < 1e-5);
      for (const o of [s.output, s.eps, s.x0, ...s.taps.map((t) => t.tokens)])
        assert.equal(o.requiresGrad, false);
      dispose([ref, direct]);
    }
    // A backward through anything the branch returned is impossible (no graph), and no parameter has .grad.
    assert.throws(() => steps[0]!.x0.sum().backward());
    for (const m of [f.vae, f.unet]) assert.ok(m.parameters().every((p) => p.grad === null));
    // The switch: the 77-token prompt conditions the UNet differently.
    const padded = new DiffusionBranch(f, { timesteps: [50], promptPadding: "max-length" }).run(z);
    const text77 = f.emptyPromptEmbedding("max-length");
    const direct77 = noGrad(() =>
      f.unet.forward(
        z,
        50,
        tidy(() => text77.expand(2, 77, 32).contiguous()),
      ),
    );
    assert.ok(maxDiff(direct77.sample, padded[0]!.eps) < 1e-5);
    assert.ok(maxDiff(padded[0]!.eps, steps[0]!.eps) > 1e-4, "max-length and none differ");
    disposeSteps(padded);
    dispose([direct77]);
    disposeSteps(steps);
    dispose([img, z]);
    f.dispose();
  });

  test("rejects timesteps outside the schedule", () => {
    const f = loadDiffusersFolder(copyFolder());
    assert.throws(() => new DiffusionBranch(f, { timesteps: [1000] }), /timestep 1000/);
    f.dispose();
  });
});

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
    const s = readPromptTokenSpec(d, { ...CLIP_TEXT_MODEL_DEFAULTS, hidden_act: "gelu" });
    assert.equal(s.padId, EOT_ID);
    assert.equal(s.contextLength, 77);
    writeJson(join(d, "special_tokens_map.json"), { pad_token: "<unk>" });
    assert.throws(() => readPromptTokenSpec(d, CLIP_TEXT_MODEL_DEFAULTS), /pad token "<unk>" is not in/);
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
