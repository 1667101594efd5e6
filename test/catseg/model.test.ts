// The whole CAT-Seg model on a tiny random config: checkpoint layout and round trips (bit for bit), strict
// loading errors, text embeddings, pooling modes, and the sliding-window inference (shapes, probabilities,
// exact class chunking, and the window / global-view averaging on stand-in models with known outputs).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { catSegPreset, validateCatSegConfig } from "../../src/catseg/config.js";
import {
  type SegmentationModel,
  segmentTensor,
  WINDOW_PRESETS,
  windowGrid,
} from "../../src/catseg/inference.js";
import { CatSegModel } from "../../src/catseg/model.js";
import { CATSEG_CLIP_PREFIX, catsegStateDict } from "../../src/catseg/weights.js";
import { createModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import {
  dispose,
  full,
  Generator,
  liveTensorBytes,
  noGrad,
  rand,
  randn,
  type Tensor,
  tensor,
  tidy,
} from "../../src/torch/tensor.js";
import { assertClose } from "../helpers.js";
import { TINY_CATSEG } from "../tiny-models.js";

const tmp = mkdtempSync(join(tmpdir(), "dedos-catseg-model-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = TINY_CATSEG;

function tinyModel(seed = 1): CatSegModel {
  return new CatSegModel(TINY, { generator: new Generator(seed) }).eval();
}
function values(t: Tensor): number[] {
  return Array.from(t.toTypedArray() as ArrayLike<number>);
}
function unitText(T: number, seed: number): Tensor {
  return tidy(() => {
    const t = randn([T, 1, 16], { generator: new Generator(seed) });
    return t.div(t.norm(2, -1, true));
  });
}
function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected an error");
}

let model: CatSegModel;
let images: Tensor;
let text5: Tensor;
before(() => {
  model = tinyModel(1);
  images = rand([2, 3, 40, 56], { generator: new Generator(3) })
    .mul(255)
    .keep();
  text5 = unitText(5, 4).keep();
});
after(() => {
  model.dispose();
  dispose([images, text5]);
});

describe("CatSegModel", () => {
  test("presets are consistent; a mismatched config is refused", () => {
    for (const name of ["vitb_384", "vitl_336"]) validateCatSegConfig(catSegPreset(name));
    const b = catSegPreset("vitb_384");
    assert.equal(b.clipResolution, 384);
    assert.deepEqual(b.taps, [3, 7]);
    assert.deepEqual(catSegPreset("vitl_336").taps, [7, 15]);
    assert.throws(() => catSegPreset("vith"), /unknown CAT-Seg preset/);
    const bad = { ...TINY, clipResolution: 48 };
    assert.throws(() => new CatSegModel(bad), /featureResolution 4×4 differs from the CLIP grid 6×6/);
  });

  test("checkpoint key layout: CAT-Seg names, CLIP attention split", () => {
    const sd = catsegStateDict(model);
    const keys = [...sd.keys()];
    for (const k of [
      "upsample1.weight",
      "upsample1.bias",
      "upsample2.weight",
      "upsample2.bias",
      `${CATSEG_CLIP_PREFIX}visual.conv1.weight`,
      `${CATSEG_CLIP_PREFIX}visual.transformer.resblocks.0.attn.q_proj_weight`,
      `${CATSEG_CLIP_PREFIX}transformer.resblocks.0.attn.v_proj_weight`,
      `${CATSEG_CLIP_PREFIX}logit_scale`,
      "sem_seg_head.predictor.transformer.conv1.weight",
      "sem_seg_head.predictor.transformer.head.weight",
    ])
      assert.ok(sd.has(k), k);
    assert.ok(!keys.some((k) => k.endsWith("in_proj_weight")));
    assert.deepEqual(sd.get("upsample1.weight")!.shape, [32, 16, 2, 2]);
    assert.deepEqual(sd.get("upsample2.weight")!.shape, [32, 8, 4, 4]);
    // Every key lives under one of the three CATSeg owners.
    assert.ok(
      keys.every((k) => /^(sem_seg_head\.predictor\.(clip_model|transformer)\.|upsample[12]\.)/.test(k)),
    );
  });

  test("forward: logits (B, T, 4g, 4g)", () => {
    const out = noGrad(() => model.forward(images, text5));
    assert.deepEqual(out.shape, [2, 5, 16, 16]);
    assert.ok(tidy(() => out.isfinite().all().item()));
    out.dispose();
  });

  test("state dict saved (packed, CAT-Seg split layout, torch.save .pth), reloaded: same output bit for bit", () => {
    const ref = noGrad(() => model.forward(images, text5));
    // Packed (this model's own state dict).
    const packed = join(tmp, "packed.safetensors");
    saveSafetensors(packed, model.stateDict());
    // The .pth layout: split attention plus OpenAI's non-parameter entries.
    const split = join(tmp, "model_final.safetensors");
    const sd = new Map([...catsegStateDict(model)].map(([k, t]) => [k, t.detach().contiguous()]));
    sd.set(`${CATSEG_CLIP_PREFIX}input_resolution`, tensor([32], [], { dtype: "int64" }));
    saveSafetensors(split, sd);
    // A real detectron2 `model_final.pth` layout, written by PyTorch's torch.save ({"model": …, "iteration"}).
    const pth = join(tmp, "model_final.pth");
    const conv = spawnSync("/usr/bin/python3", ["scripts/safetensors-to-pth.py", split, pth], {
      encoding: "utf8",
    });
    assert.equal(conv.status, 0, `python3-torch conversion failed: ${conv.stderr}`);
    for (const file of [packed, split, pth]) {
      const loaded = createModel({ arch: "catseg", config: TINY, weights: file });
      assert.equal(loaded.training, false);
      const out = noGrad(() => loaded.forward(images, text5));
      assert.deepEqual(values(out), values(ref), file);
      out.dispose();
      loaded.dispose();
    }
    // A differently seeded model really differs (the comparison is not vacuous).
    const other = tinyModel(2);
    const o2 = noGrad(() => other.forward(images, text5));
    assert.notDeepEqual(values(o2), values(ref));
    dispose([ref, o2, ...sd.values()]);
    other.dispose();
  });

  test("strict loading names wrong shapes, missing and unexpected keys", () => {
    const sd = new Map([...catsegStateDict(model)].map(([k, t]) => [k, t.detach().contiguous()]));
    const bad = rand([32, 17, 2, 2]);
    sd.set("upsample1.weight", bad);
    sd.delete("sem_seg_head.predictor.transformer.head.bias");
    const extra = rand([3]);
    sd.set("sem_seg_head.predictor.prompt_tokens", extra);
    const file = join(tmp, "bad.safetensors");
    saveSafetensors(file, sd);
    const err = captureError(() => createModel({ arch: "catseg", config: TINY, weights: file }));
    assert.ok(err instanceof StateDictError, String(err));
    assert.match(err.message, /bad\.safetensors/);
    assert.match(
      err.message,
      /upsample1\.weight: the model expects shape \[32, 16, 2, 2\], .* has \[32, 17, 2, 2\]/,
    );
    assert.deepEqual(err.missing, ["sem_seg_head.predictor.transformer.head.bias"]);
    assert.deepEqual(err.unexpected, ["sem_seg_head.predictor.prompt_tokens"]);
    // A truncated split attention is reported by the CLIP conversion.
    const sd2 = new Map([...catsegStateDict(model)].map(([k, t]) => [k, t.detach().contiguous()]));
    sd2.delete(`${CATSEG_CLIP_PREFIX}visual.transformer.resblocks.1.attn.k_proj_weight`);
    const file2 = join(tmp, "bad2.safetensors");
    saveSafetensors(file2, sd2);
    assert.throws(
      () => createModel({ arch: "catseg", config: TINY, weights: file2 }),
      /bad2\.safetensors.*missing .*resblocks\.1\.attn\.k_proj_weight/,
    );
    dispose([...sd.values(), ...sd2.values()]);
  });

  test("pooling: (2, 2) in training, (1, 1) at test; explicit sizes override the mode", () => {
    const evalOut = noGrad(() => model.forward(images, text5));
    model.train();
    try {
      const trainOut = noGrad(() => model.forward(images, text5));
      const trainAsTest = noGrad(() => model.forward(images, text5, { poolingSize: [1, 1] }));
      assert.notDeepEqual(values(trainOut), values(evalOut));
      assert.deepEqual(values(trainAsTest), values(evalOut));
      dispose([trainOut, trainAsTest]);
    } finally {
      model.eval();
    }
    evalOut.dispose();
  });

  test("textEmbeddings: (T, 1, E) unit vectors, first synonym by default", () => {
    const e = model.textEmbeddings(["sky", "sofa, couch", "tree"], { cache: false });
    assert.deepEqual(e.shape, [3, 1, 16]);
    assertClose(values(tidy(() => e.norm(2, -1))), [1, 1, 1], 1e-5);
    const first = model.textEmbeddings(["sofa"], { cache: false });
    // Batched with other texts vs alone: equal up to the text encoder's batching (last-bit differences).
    assertClose(values(tidy(() => e.select(0, 1))), values(first.select(0, 0)), 1e-6);
    const avg = model.textEmbeddings(["sofa, couch"], { cache: false, synonyms: "average" });
    assert.notDeepEqual(values(avg), values(first));
    const multi = model.textEmbeddings(["sky"], { cache: false, templates: ["a {}", "the {}."] });
    assert.deepEqual(multi.shape, [1, 1, 16]);
    dispose([e, first, avg, multi]);
  });
});

describe("sliding-window inference", () => {
  test("geometry: CAT-Seg 384 / stride 256, DEDOS 512 / stride 128, both 2×2 on 640", () => {
    assert.deepEqual(windowGrid(WINDOW_PRESETS.catseg, 640), { kernel: 384, stride: 256, perSide: 2 });
    assert.deepEqual(windowGrid(WINDOW_PRESETS.dedos, 640), { kernel: 512, stride: 128, perSide: 2 });
    assert.throws(() => windowGrid({ kernel: 384, overlap: 0.5 }, 640), /do not tile 640×640/);
  });

  test("non-square image: scores (T, H, W) in [0, 1], labels their argmax; both windows", () => {
    const image = rand([1, 3, 50, 70], { generator: new Generator(9) }).mul(255);
    for (const window of ["catseg", "dedos"] as const) {
      const r = segmentTensor(model, image, text5, { window, output: "both" });
      assert.deepEqual(r.scores!.shape, [5, 50, 70]);
      assert.deepEqual(r.labels!.shape, [50, 70]);
      assert.equal(r.labels!.dtype, "int64");
      assert.equal(r.windows.views, 5);
      tidy(() => {
        assert.ok(r.scores!.ge(0).all().item() && r.scores!.le(1).all().item());
        assert.ok(r.labels!.equal(r.scores!.argmax(0)));
      });
      dispose([r.scores, r.labels]);
    }
    image.dispose();
  });

  test("class chunks are exact: chunked = unchunked bit for bit (T ≤ pad_len and the top-k path)", () => {
    const image = rand([1, 3, 48, 64], { generator: new Generator(10) }).mul(255);
    const text10 = unitText(10, 11); // > pad_len 8: the head cuts to the top 8, the rest −100
    for (const text of [text5, text10]) {
      const whole = segmentTensor(model, image, text, { output: "both", classChunk: 1000 });
      for (const classChunk of [1, 2, 3]) {
        const parts = segmentTensor(model, image, text, { output: "both", classChunk });
        assert.deepEqual(values(parts.scores!), values(whole.scores!), `chunk ${classChunk}`);
        assert.deepEqual(values(parts.labels!), values(whole.labels!), `chunk ${classChunk}`);
        const labelsOnly = segmentTensor(model, image, text, { classChunk });
        assert.equal(labelsOnly.scores, undefined);
        assert.deepEqual(values(labelsOnly.labels!), values(whole.labels!));
        dispose([parts.scores, parts.labels, labelsOnly.labels]);
      }
      // Splitting before the head into chunks that hold every class changes nothing either.
      const head = segmentTensor(model, image, text, { output: "scores", headChunk: text.size(0) });
      assert.deepEqual(values(head.scores!), values(whole.scores!));
      dispose([whole.scores, whole.labels, head.scores]);
    }
    dispose([image, text10]);
  });

  test("memory: nothing but the results survives a call", () => {
    const image = rand([1, 3, 30, 40], { generator: new Generator(12) }).mul(255);
    const baseline = liveTensorBytes();
    const r = segmentTensor(model, image, text5, { output: "both", classChunk: 2 });
    dispose([r.scores, r.labels]);
    assert.equal(liveTensorBytes(), baseline);
    image.dispose();
  });
});

/**
 * A stand-in whose logits are constant per (view, class): `perView[v]` + `perClass[t]` (the last view is
 * the global one). It sees no pixels, so the sliding-window arithmetic is all that shapes the result; the
 * tests pass every view in one batch (`viewBatch`) so that the batch position names the view.
 */
function constantModel(perView: number[], perClass: number[]): SegmentationModel<{ n: number }> {
  return {
    padLen: 256,
    encodeImage: (views: Tensor) => {
      assert.deepEqual(views.shape.slice(1), [3, 384, 384]);
      return { n: views.size(0) };
    },
    head: (f, text) =>
      tidy(() => {
        assert.equal(f.n, perView.length);
        const T = text.size(0);
        const v = tensor(Float32Array.from(perView), [f.n, 1, 1, 1]);
        const c = tensor(Float32Array.from(perClass.slice(0, T)), [1, T, 1, 1]);
        return v.add(c).add(full([f.n, T, 6, 6], 0));
      }),
  };
}
const sig = (x: number) => 1 / (1 + Math.exp(-x));

describe("window and global-view averaging (stand-in models)", () => {
  const text3 = tensor(new Float32Array(3 * 4), [3, 1, 4]);
  after(() => text3.dispose());

  test("constant per class → the constant's sigmoid everywhere; labels its argmax", () => {
    const perClass = [-1, 2, 0.5];
    const m = constantModel([0, 0, 0, 0, 0], perClass);
    const image = rand([1, 3, 37, 90], { generator: new Generator(5) }).mul(255);
    const r = segmentTensor(m, image, text3, { viewBatch: 8, output: "both", classChunk: 2 });
    assert.deepEqual(r.scores!.shape, [3, 37, 90]);
    for (let t = 0; t < 3; t++) {
      const s = values(tidy(() => r.scores!.select(0, t)));
      assertClose(s, new Array(s.length).fill(sig(perClass[t]!)), 1e-6, 0, `class ${t}`);
    }
    assert.ok(tidy(() => r.labels!.eq(1).all().item()));
    dispose([r.scores, r.labels, image]);
  });

  test("windows averaged where they overlap, then with the global view", () => {
    // 640×640 input: no resize anywhere, so every pixel's value is predictable.
    const a = [0.3, -0.7, 1.1, -2]; // windows in unfold order: (0,0), (0,256), (256,0), (256,256)
    const g = 0.9; // the global view
    const m = constantModel([...a, g], [0, 0, 0]);
    const image = rand([1, 3, 640, 640], { generator: new Generator(6) }).mul(255);
    const r = segmentTensor(m, image, text3, { viewBatch: 8, output: "scores" });
    const at = (y: number, x: number) => tidy(() => r.scores!.select(0, 0).select(0, y).select(0, x).item());
    const s = a.map(sig);
    const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    const expect: [number, number, number][] = [
      [10, 10, (s[0]! + sig(g)) / 2], // only window 0
      [10, 600, (s[1]! + sig(g)) / 2], // only window 1
      [600, 10, (s[2]! + sig(g)) / 2], // only window 2
      [600, 600, (s[3]! + sig(g)) / 2], // only window 3
      [10, 300, (mean([s[0]!, s[1]!]) + sig(g)) / 2], // windows 0 and 1
      [300, 300, (mean(s) + sig(g)) / 2], // all four
    ];
    for (const [y, x, want] of expect) assertClose([at(y, x)], [want], 1e-6, 0, `pixel (${y}, ${x})`);
    // Without the global view: the window average alone.
    const w = segmentTensor(constantModel(a, [0, 0, 0]), image, text3, {
      viewBatch: 8,
      output: "scores",
      globalView: false,
    });
    assertClose([tidy(() => w.scores!.select(0, 0).select(0, 300).select(0, 300).item())], [mean(s)], 1e-6);
    dispose([r.scores, w.scores, image]);
  });
});
