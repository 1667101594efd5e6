// CLIP towers: fixture parity, config inference, checkpoint layouts (OpenAI packed, CAT-Seg split and
// prefixed, fp16), loader errors, class-name prompts and zero-shot classification.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  CLIP_PRESETS,
  type ClipConfig,
  type ClipTextConfig,
  type ClipVisionConfig,
  inferClipConfig,
} from "../../src/clip/config.js";
import { ClipModel } from "../../src/clip/model.js";
import {
  clearPromptCache,
  embedClassNames,
  encodeTexts,
  l2normalize,
  promptCacheSize,
  resolveTemplates,
  splitSynonyms,
} from "../../src/clip/prompts.js";
import { idsTensor } from "../../src/clip/text.js";
import { ClipTokenizer } from "../../src/clip/tokenizer.js";
import { ClipVisionEncoder, normalizeClipPixels } from "../../src/clip/vision.js";
import {
  detectClipPrefix,
  loadClipWeights,
  packedToSplitAttention,
  splitToPackedAttention,
} from "../../src/clip/weights.js";
import { zeroShotClassify } from "../../src/clip/zero-shot.js";
import { createModel } from "../../src/models/factory.js";
import {
  clipTextConfigFromCase,
  clipVisionConfigFromCase,
  runClipTextCase,
  runClipVisionCase,
} from "../../src/parity/cases/clip.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import { dispose, Generator, noGrad, rand, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

const fixtures = join(PACKAGE_ROOT, "test/fixtures");
const tmp = mkdtempSync(join(tmpdir(), "dedos-clip-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TINY: ClipConfig = {
  vision: { width: 32, layers: 2, heads: 2, patchSize: 8, imageSize: 32, outputDim: 16 },
  text: { width: 32, layers: 2, heads: 2, contextLength: 77, vocabSize: 49408, embedDim: 16 },
};
const CATSEG_PREFIX = "sem_seg_head.predictor.clip_model.";

function tinyModel(seed = 1): ClipModel {
  return new ClipModel(TINY, { generator: new Generator(seed) }).eval();
}

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

/** Runs both towers on fixed inputs (image features and text features). */
function probe(m: ClipModel): { img: Tensor; txt: Tensor } {
  return noGrad(() =>
    tidy(() => {
      const px = rand([2, 3, 32, 48], { generator: new Generator(7) });
      const ids = tensor([[49406, 320, 1125, 49407, 0, 0]], undefined, { dtype: "int64" });
      return { img: m.visual.forward(px, { dense: true }).tokens, txt: m.encodeText(ids) };
    }),
  );
}

function assertSameOutputs(a: ClipModel, b: ClipModel, tol: number): void {
  const pa = probe(a);
  const pb = probe(b);
  assert.ok(maxDiff(pa.img, pb.img) <= tol, `image features differ by ${maxDiff(pa.img, pb.img)}`);
  assert.ok(maxDiff(pa.txt, pb.txt) <= tol, `text features differ by ${maxDiff(pa.txt, pb.txt)}`);
  dispose([pa, pb]);
}

describe("CLIP fixture parity", () => {
  for (const [name, run] of [
    ["clip_text", runClipTextCase],
    ["clip_vision", runClipVisionCase],
  ] as const) {
    test(name, () => {
      const results = run(loadFixture(join(fixtures, name)));
      assert.ok(results.length > 0);
      for (const r of results) assert.ok(r.ok, `${r.name}: max |err| ${r.maxAbsError} ${r.note ?? ""}`);
      assert.ok(results.some((r) => r.name.startsWith("outputs.")));
    });
  }
});

describe("config", () => {
  test("inferred from the fixtures' shapes", () => {
    const text = loadFixture(join(fixtures, "clip_text"));
    const vision = loadFixture(join(fixtures, "clip_vision"));
    // The tiny fixtures use 16-channel heads (OpenAI models: 64).
    assert.deepEqual(
      inferClipConfig(text.records, { prefix: "weights.", headWidth: 16 }).text,
      clipTextConfigFromCase(text),
    );
    const inferred = inferClipConfig(vision.records, { prefix: "weights.", headWidth: 16 });
    assert.deepEqual(inferred.vision, clipVisionConfigFromCase(vision));
    assert.equal(inferred.text, undefined);
  });

  test("inferred from OpenAI-layout shapes as build_model does (every preset)", () => {
    for (const p of Object.values(CLIP_PRESETS)) {
      const shapes = openaiShapes(p.vision, p.text);
      assert.deepEqual(inferClipConfig(shapes), { vision: p.vision, text: p.text }, p.name);
      const prefixed = new Map([...shapes].map(([k, s]) => [CATSEG_PREFIX + k, s]));
      assert.deepEqual(inferClipConfig(prefixed, { prefix: CATSEG_PREFIX }).vision, p.vision);
    }
    assert.equal(CLIP_PRESETS["ViT-B/16"].clipResolution / CLIP_PRESETS["ViT-B/16"].vision.patchSize, 24);
    assert.equal(
      CLIP_PRESETS["ViT-L/14@336px"].vision.imageSize / CLIP_PRESETS["ViT-L/14@336px"].vision.patchSize,
      24,
    );
  });

  test("round trip through a model's state dict, split layout included", () => {
    const m = tinyModel();
    const sd = m.stateDict();
    const heads = { headWidth: 16 };
    assert.deepEqual(inferClipConfig(sd, heads), TINY);
    assert.deepEqual(inferClipConfig(packedToSplitAttention(sd), heads), TINY);
    m.dispose();
  });

  test("a hole in the block indices is a truncated checkpoint", () => {
    const shapes = openaiShapes(TINY.vision, TINY.text);
    for (const k of [...shapes.keys()]) if (k.startsWith("visual.transformer.resblocks.0.")) shapes.delete(k);
    assert.throws(() => inferClipConfig(shapes, { headWidth: 16 }), /resblocks\.0\.\*" is missing/);
  });
});

/** Key → shape of an OpenAI ViT checkpoint, written out independently of the modules. */
function openaiShapes(v: ClipVisionConfig, t: ClipTextConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const block = (p: string, w: number) => {
    m.set(`${p}attn.in_proj_weight`, [3 * w, w]);
    m.set(`${p}attn.in_proj_bias`, [3 * w]);
    m.set(`${p}attn.out_proj.weight`, [w, w]);
    m.set(`${p}attn.out_proj.bias`, [w]);
    for (const ln of ["ln_1", "ln_2"]) for (const s of ["weight", "bias"]) m.set(`${p}${ln}.${s}`, [w]);
    m.set(`${p}mlp.c_fc.weight`, [4 * w, w]);
    m.set(`${p}mlp.c_fc.bias`, [4 * w]);
    m.set(`${p}mlp.c_proj.weight`, [w, 4 * w]);
    m.set(`${p}mlp.c_proj.bias`, [w]);
  };
  const g = v.imageSize / v.patchSize;
  m.set("positional_embedding", [t.contextLength, t.width]);
  m.set("text_projection", [t.width, t.embedDim]);
  m.set("logit_scale", []);
  m.set("visual.class_embedding", [v.width]);
  m.set("visual.positional_embedding", [g * g + 1, v.width]);
  m.set("visual.proj", [v.width, v.outputDim]);
  m.set("visual.conv1.weight", [v.width, 3, v.patchSize, v.patchSize]);
  for (const s of ["weight", "bias"]) {
    m.set(`visual.ln_pre.${s}`, [v.width]);
    m.set(`visual.ln_post.${s}`, [v.width]);
    m.set(`ln_final.${s}`, [t.width]);
  }
  for (let i = 0; i < v.layers; i++) block(`visual.transformer.resblocks.${i}.`, v.width);
  for (let i = 0; i < t.layers; i++) block(`transformer.resblocks.${i}.`, t.width);
  m.set("token_embedding.weight", [t.vocabSize, t.width]);
  for (const k of ["input_resolution", "context_length", "vocab_size"]) m.set(k, []);
  return m;
}

describe("checkpoint layouts", () => {
  test("the module's state dict has OpenAI's key names", () => {
    const m = tinyModel();
    const own = [...m.stateDict()].map(([k, t]) => [k, t.shape] as const);
    const want = openaiShapes(TINY.vision, TINY.text);
    for (const k of ["input_resolution", "context_length", "vocab_size"]) want.delete(k);
    assert.deepEqual(new Map(own), want);
    m.dispose();
  });

  test("split ↔ packed attention conversion is exact", () => {
    const m = tinyModel();
    const sd = m.stateDict();
    const split = packedToSplitAttention(sd);
    const stem = "visual.transformer.resblocks.1.attn.";
    assert.ok(!split.has(`${stem}in_proj_weight`));
    assert.deepEqual(split.get(`${stem}q_proj_weight`)!.shape, [32, 32]);
    assert.ok(split.has(`${stem}in_proj_bias`) && split.has(`${stem}out_proj.weight`));
    assert.equal(split.size, sd.size + 2 * (TINY.vision.layers + TINY.text.layers));
    const { stateDict: packed, created } = splitToPackedAttention(split);
    assert.deepEqual([...packed.keys()].sort(), [...sd.keys()].sort());
    for (const [k, t] of sd) assert.ok(packed.get(k)!.equal(t), k);
    // q rows come first, v rows last.
    assert.ok(split.get(`${stem}v_proj_weight`)!.equal(sd.get(`${stem}in_proj_weight`)!.narrow(0, 64, 32)));
    dispose(created);
    split.delete(`${stem}k_proj_weight`);
    assert.throws(
      () => splitToPackedAttention(split, "x.pth"),
      /x\.pth: .*missing .*resblocks\.1\.attn\.k_proj_weight/,
    );
    m.dispose();
  });

  test("CAT-Seg checkpoint: prefixed split layout among other keys", () => {
    const src = tinyModel(3);
    const file = join(tmp, "catseg.safetensors");
    const sd = new Map(
      [...packedToSplitAttention(src.stateDict())].map(([k, t]) => [CATSEG_PREFIX + k, t.contiguous()]),
    );
    sd.set("sem_seg_head.predictor.transformer.conv1.weight", rand([4, 4]));
    saveSafetensors(file, sd);
    assert.equal(detectClipPrefix(sd.keys()), CATSEG_PREFIX);
    const loaded = createModel({ arch: "clip", weights: file, clip: { headWidth: 16 } });
    assert.deepEqual(loaded.config, TINY);
    assertSameOutputs(src, loaded, 0);
    dispose([...sd.values()]);
    src.dispose();
    loaded.dispose();
  });

  test("OpenAI layout in fp16 with the non-parameter entries", () => {
    const src = tinyModel(4);
    const file = join(tmp, "openai-fp16.safetensors");
    const sd = new Map([...src.stateDict()].map(([k, t]) => [k, t.detach().to("float16")]));
    sd.set("input_resolution", tensor([32], [], { dtype: "int64" }));
    sd.set("context_length", tensor([77], [], { dtype: "int64" }));
    sd.set("vocab_size", tensor([49408], [], { dtype: "int64" }));
    saveSafetensors(file, sd);
    const loaded = createModel({ arch: "clip", weights: file, clip: { headWidth: 16 } });
    for (const [k, t] of loaded.stateDict()) assert.equal(t.dtype, "float32", k);
    // Values are the fp16-rounded weights.
    const ref = tidy(() => sd.get("visual.proj")!.float());
    assert.ok(loaded.visual.proj.equal(ref));
    assertSameOutputs(src, loaded, 0.05);
    dispose([...sd.values(), ref]);
    src.dispose();
    loaded.dispose();
  });

  test("a wrong shape names the file, the key and both shapes", () => {
    const src = tinyModel();
    const file = join(tmp, "wrong-shape.safetensors");
    const sd = new Map(src.stateDict());
    const bad = rand([32, 17]);
    sd.set("text_projection", bad);
    saveSafetensors(file, sd);
    const m = tinyModel();
    const err = captureError(() => createModel({ arch: "clip", weights: file, config: TINY }));
    assert.ok(err instanceof StateDictError, String(err));
    assert.match(err.message, new RegExp(file.replaceAll(".", "\\.")));
    assert.match(err.message, /text_projection: the model expects shape \[32, 16\], .* has \[32, 17\]/);
    // The same through loadClipWeights with a prefix.
    const prefixed = new Map([...sd].map(([k, t]) => [`weights.${k}`, t]));
    assert.throws(
      () => loadClipWeights(m, prefixed, { prefix: "weights.", source: "f.safetensors" }),
      /f\.safetensors \(prefix "weights\."\)[\s\S]*text_projection/,
    );
    bad.dispose();
    src.dispose();
    m.dispose();
  });

  test("truncated weights: missing keys and a cut file", () => {
    const src = tinyModel();
    const sd = new Map(src.stateDict());
    sd.delete("visual.transformer.resblocks.1.mlp.c_proj.weight");
    const file = join(tmp, "missing.safetensors");
    saveSafetensors(file, sd);
    const err = captureError(() => createModel({ arch: "clip", weights: file, config: TINY }));
    assert.ok(err instanceof StateDictError, String(err));
    assert.deepEqual(err.missing, ["visual.transformer.resblocks.1.mlp.c_proj.weight"]);
    assert.match(err.message, /missing\.safetensors/);

    const full = join(tmp, "full.safetensors");
    saveSafetensors(full, src.stateDict());
    const bytes = readFileSync(full);
    const cut = join(tmp, "cut.safetensors");
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    assert.throws(
      () => createModel({ arch: "clip", weights: cut }),
      (e: Error) => e.message.includes(cut) && /truncated|end of file|bytes/.test(e.message),
    );
    src.dispose();
  });
});

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

describe("vision tower", () => {
  test("non-square grids resize the positional embedding; taps are LND", () => {
    const m = tinyModel();
    noGrad(() =>
      tidy(() => {
        const px = normalizeClipPixels(rand([1, 3, 32, 56]).mul(255)); // grid 4×7
        const r = m.visual.forward(px, { dense: true, taps: [1, 0] });
        assert.deepEqual(r.grid, [4, 7]);
        assert.deepEqual(r.tokens.shape, [1, 29, 16]);
        assert.deepEqual(r.lnPostDense.shape, [1, 29, 32]);
        assert.deepEqual(r.taps[1]!.shape, [29, 1, 32]);
        assert.equal(r.pooled, undefined);
        // The native grid uses the stored embedding unchanged.
        assert.ok(m.visual.positionalEmbeddingFor(4, 4).equal(m.visual.positionalEmbedding));
        // Non-dense: pooled is the projected CLS token; earlier blocks are shared with the dense pass.
        const s = m.visual.forward(px, { taps: [0] });
        assert.deepEqual(s.pooled!.shape, [1, 16]);
        assert.ok(s.taps[0]!.equal(r.taps[1]!));
        assert.ok(maxDiff(s.tokens, r.tokens) > 1e-3);
      }),
    );
    m.dispose();
  });

  test("bad taps and inputs are rejected", () => {
    const v = new ClipVisionEncoder(TINY.vision);
    assert.throws(() => v.forward(rand([1, 3, 32, 32]), { taps: [2] }), /tap layer 2/);
    assert.throws(() => v.forward(rand([1, 1, 32, 32])), /\(B, 3, H, W\)/);
    v.dispose();
  });
});

describe("prompts", () => {
  const tok = ClipTokenizer.load();

  test("templates and synonyms", () => {
    assert.deepEqual(resolveTemplates(), ["A photo of a {} in the scene"]);
    assert.equal(resolveTemplates("imagenet").length, 80);
    assert.throws(() => resolveTemplates(["no slot"]), /exactly one/);
    assert.deepEqual(splitSynonyms("person, child, girl"), ["person", "child", "girl"]);
  });

  test("trimming the context after the EOT does not change the features", () => {
    const m = tinyModel();
    noGrad(() =>
      tidy(() => {
        const texts = ["A photo of a cat in the scene", "a"];
        const trimmed = encodeTexts(m, tok, texts);
        const b = tok.tokenize(texts);
        const full = m.encodeText(idsTensor(b.ids, b.shape));
        assert.ok(maxDiff(trimmed, full) < 1e-5);
      }),
    );
    m.dispose();
  });

  test("synonyms: first only, or averaged after per-text normalisation", () => {
    const m = tinyModel();
    noGrad(() =>
      tidy(() => {
        const first = embedClassNames(m, tok, ["cat, kitty", "dog"], { cache: false });
        assert.deepEqual(first.shape, [2, 1, 16]);
        const cat = l2normalize(encodeTexts(m, tok, ["A photo of a cat in the scene"]));
        assert.ok(maxDiff(first.select(0, 0), cat) < 1e-6);
        const avg = embedClassNames(m, tok, ["cat, kitty"], { synonyms: "average", cache: false });
        const both = l2normalize(
          encodeTexts(m, tok, ["A photo of a cat in the scene", "A photo of a kitty in the scene"]),
        );
        assert.ok(maxDiff(avg.select(0, 0), l2normalize(both.mean(0, true))) < 1e-6);
        assert.ok(Math.abs(avg.norm().item() - 1) < 1e-5);
      }),
    );
    m.dispose();
  });

  test("template ensembles: averaged then renormalised, or kept as P prompts", () => {
    const m = tinyModel();
    noGrad(() =>
      tidy(() => {
        const each = embedClassNames(m, tok, ["car", "sky"], {
          templates: "imagenet_select",
          templateReduction: "none",
          cache: false,
        });
        assert.deepEqual(each.shape, [2, 8, 16]);
        const mean = embedClassNames(m, tok, ["car", "sky"], { templates: "imagenet_select", cache: false });
        assert.deepEqual(mean.shape, [2, 1, 16]);
        assert.ok(maxDiff(mean, l2normalize(each.mean(1, true))) < 1e-6);
      }),
    );
    m.dispose();
  });

  test("cached per model, class list and templates", () => {
    const m = tinyModel();
    const other = tinyModel(2);
    const a = embedClassNames(m, tok, ["wall", "floor"]);
    const b = embedClassNames(m, tok, ["wall", "floor"]);
    assert.equal(promptCacheSize(m), 1);
    assert.ok(a !== b && a.equal(b));
    a.dispose(); // the caller's copy; the cache keeps its own
    assert.ok(embedClassNames(m, tok, ["wall", "floor"]).equal(b));
    embedClassNames(m, tok, ["wall"]);
    embedClassNames(m, tok, ["wall", "floor"], { templates: ["a {}"] });
    assert.equal(promptCacheSize(m), 3);
    const c = embedClassNames(other, tok, ["wall", "floor"]);
    assert.equal(promptCacheSize(other), 1);
    assert.ok(!c.equal(b));
    clearPromptCache(m);
    assert.equal(promptCacheSize(m), 0);
    clearPromptCache(other);
    m.dispose();
    other.dispose();
  });
});

describe("zero-shot", () => {
  test("probabilities over the labels sum to 1", () => {
    const m = tinyModel();
    const tok = ClipTokenizer.load();
    const probs = zeroShotClassify(m, tok, rand([3, 3, 40, 60]).mul(255), ["cat", "dog", "car, automobile"]);
    assert.deepEqual(probs.shape, [3, 3]);
    const sums = tidy(() => probs.sum(-1).toArray());
    for (const s of sums) assert.ok(Math.abs(s - 1) < 1e-5);
    assert.ok(probs.toArray().every((p) => p >= 0 && p <= 1));
    clearPromptCache(m);
    probs.dispose();
    m.dispose();
  });
});
