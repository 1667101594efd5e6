// `dedos export` on the tiny CAT-Seg: the written graphs, run by onnxruntime-node, equal libtorch at class and
// prompt counts that were not traced; float16 weights stay within the stated bound; the manifest is the
// contract of docs/EXPORT.md; the folder is written as one set (and only after the checks).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CatSegModel } from "../../src/catseg/model.js";
import { ClipTokenizer } from "../../src/clip/tokenizer.js";
import { exportSegmentationModel } from "../../src/export/segmentation.js";
import { OnnxChecker } from "../../src/export/verify.js";
import { Generator, noGrad, rand, randn, type Tensor, tensor, tidy } from "../../src/torch/index.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

/** The stated float16 bound: max |error| ≤ FP16_RELATIVE_BOUND · max(1, max |output|) (docs/EXPORT.md). */
const FP16_RELATIVE_BOUND = 1e-2;
const KERNEL = 64;

function viewInputs(T: number, g: Generator): { image: Tensor; text: Tensor } {
  const P = TINY_CATSEG.aggregator.promptChannel;
  const E = TINY_CATSEG.clip.text.embedDim;
  return {
    image: rand([1, 3, KERNEL, KERNEL], { generator: g }).mul(255),
    text: randn([T, P, E], { generator: g }),
  };
}

function tokens(texts: string[]): Tensor {
  const tok = ClipTokenizer.load().tokenize(texts, { contextLength: 77 });
  return tidy(() => tensor(tok.ids, [texts.length, 77]).long());
}

describe("dedos export (tiny CAT-Seg)", () => {
  let model: CatSegModel;
  const dir = tempDir("dedos-export-");
  const out32 = join(dir, "fp32");
  const out16 = join(dir, "fp16");
  const head = (x: { image: Tensor; text: Tensor }) =>
    noGrad(() => tidy(() => model.head(model.encodeImage(x.image), x.text, { poolingSize: [1, 1] })));

  before(async () => {
    model = new CatSegModel(TINY_CATSEG, { generator: new Generator(3) }).eval();
    await exportSegmentationModel(model, out32, { version: "test", kernel: KERNEL });
  });
  after(() => model.dispose());

  it("writes the manifest of the contract", () => {
    const m = JSON.parse(readFileSync(join(out32, "manifest.json"), "utf8"));
    assert.equal(m.format, "dedos-onnx");
    assert.equal(m.version, 1);
    assert.equal(m.arch, "catseg");
    assert.equal(m.dtype, "float32");
    assert.deepEqual(m.config, model.config);
    assert.equal(m.scoreKind, "logits");
    assert.equal(m.padLen, TINY_CATSEG.aggregator.padLen);
    assert.equal(m.promptChannel, 1);
    assert.deepEqual(m.templates, ["A photo of a {} in the scene"]);
    assert.deepEqual(m.text, {
      file: "text.onnx",
      input: "tokens",
      inputType: "int64",
      contextLength: 77,
      output: "features",
      dynamicBatch: true,
    });
    assert.deepEqual(m.view, {
      file: "view.onnx",
      kernel: KERNEL,
      inputs: { image: "image", text: "text" },
      output: "logits",
      outputSize: [16, 16],
      maxClasses: null,
    });
    assert.deepEqual(m.viewTopK, {
      file: "view-topk.onnx",
      minClasses: TINY_CATSEG.aggregator.padLen + 1,
      inputs: { image: "image", text: "text" },
      output: "logits",
      outputSize: [16, 16],
    });
    for (const f of ["text.onnx", "view.onnx", "view-topk.onnx"]) {
      assert.equal(m.verified[f].inputs, "traced+random");
      assert.ok(m.verified[f].maxAbsError <= 1e-4, `${f}: ${m.verified[f].maxAbsError}`);
    }
    assert.match(m.exportedBy, /^dedos /);
    assert.deepEqual(readdirSync(out32).sort(), [
      "manifest.json",
      "text.onnx",
      "view-topk.onnx",
      "view.onnx",
    ]);
  });

  it("view.onnx equals libtorch for T = 2, 4, 7 classes (traced at 3 and 5), ≤ 1e-4", async () => {
    const checker = await OnnxChecker.open(join(out32, "view.onnx"));
    const g = new Generator(11);
    try {
      for (const T of [2, 4, 7]) {
        const x = viewInputs(T, g);
        const want = head(x);
        const r = await checker.compare(x, "logits", want);
        assert.ok(r.maxAbsError <= 1e-4, `T = ${T}: ${r.maxAbsError}`);
        assert.deepEqual(want.shape, [1, T, 16, 16]);
      }
    } finally {
      await checker.close();
    }
  });

  it("view-topk.onnx equals libtorch for T = 10, 16 classes (> pad_len 8: top-k path), ≤ 1e-4", async () => {
    const checker = await OnnxChecker.open(join(out32, "view-topk.onnx"));
    const g = new Generator(13);
    try {
      for (const T of [10, 16]) {
        const x = viewInputs(T, g);
        const want = head(x);
        const r = await checker.compare(x, "logits", want);
        assert.ok(r.maxAbsError <= 1e-4, `T = ${T}: ${r.maxAbsError}`);
      }
    } finally {
      await checker.close();
    }
  });

  it("text.onnx equals libtorch for 1 and 4 prompts (traced at 2 and 3), ≤ 1e-4", async () => {
    const checker = await OnnxChecker.open(join(out32, "text.onnx"));
    try {
      for (const texts of [
        ["a cat"],
        ["road", "A photo of a wet road in the scene", "sky", "traffic cone"],
      ]) {
        const ids = tokens(texts);
        const want = noGrad(() => model.clip.encodeText(ids));
        const r = await checker.compare({ tokens: ids }, "features", want);
        assert.ok(r.maxAbsError <= 1e-4, `${texts.length} prompts: ${r.maxAbsError}`);
      }
    } finally {
      await checker.close();
    }
  });

  it("float16 weights: half the bytes, within 1e-2 · output scale of the float32 model", async () => {
    const before = model.clip.visual.proj.toArray();
    const r = await exportSegmentationModel(model, out16, {
      version: "test",
      kernel: KERNEL,
      fp16: true,
      topK: false,
    });
    assert.equal(r.manifest.dtype, "float16");
    const size = (d: string, f: string) => readFileSync(join(d, f)).length;
    assert.ok(size(out16, "text.onnx") < 0.55 * size(out32, "text.onnx"));
    // The model's own float32 weights are back after the export.
    assert.deepEqual(model.clip.visual.proj.toArray(), before);
    const checker = await OnnxChecker.open(join(out16, "view.onnx"));
    const g = new Generator(12);
    try {
      for (const T of [2, 7]) {
        const x = viewInputs(T, g);
        const c = await checker.compare(x, "logits", head(x));
        assert.ok(c.maxAbsError > 0, "float16 weights should differ from float32 ones");
        assert.ok(c.maxAbsError <= FP16_RELATIVE_BOUND * Math.max(1, c.maxAbs), `T = ${T}: ${c.maxAbsError}`);
      }
    } finally {
      await checker.close();
    }
    const v = r.manifest.verified["view.onnx"]!;
    assert.ok(v.maxAbsError <= 1e-4, "the graph equals libtorch on the same float16-rounded weights");
    assert.ok(
      v.vsFloat32 && v.vsFloat32.maxAbsError <= FP16_RELATIVE_BOUND * Math.max(1, v.vsFloat32.maxAbs),
    );
  });

  it("view.onnx and view-topk.onnx can share one weights file", async () => {
    const shared = join(dir, "shared");
    const r = await exportSegmentationModel(model, shared, {
      version: "test",
      kernel: KERNEL,
      shareViewWeights: true,
    });
    assert.deepEqual(readdirSync(shared).sort(), [
      "manifest.json",
      "text.onnx",
      "view-topk.onnx",
      "view.onnx",
      "view.onnx.data",
    ]);
    assert.equal(r.manifest.files["view.onnx"]!.externalData, "view.onnx.data");
    assert.equal(r.manifest.files["view-topk.onnx"]!.externalData, "view.onnx.data");
    assert.ok(r.viewTopK!.maxAbsError <= 1e-4 && r.view.maxAbsError <= 1e-4);
    // every weight once: the data file is no larger than one graph's inline weights
    const inline = readFileSync(join(out32, "view.onnx")).length;
    assert.ok(readFileSync(join(shared, "view.onnx.data")).length < inline);
  });

  it("keeps weights beyond the threshold in external data files (ONNX's convention)", async () => {
    const ext = join(dir, "external");
    const r = await exportSegmentationModel(model, ext, {
      version: "test",
      kernel: KERNEL,
      externalAbove: 1,
      topK: false,
    });
    assert.equal(r.manifest.view.maxClasses, TINY_CATSEG.aggregator.padLen);
    assert.deepEqual(readdirSync(ext).sort(), [
      "manifest.json",
      "text.onnx",
      "text.onnx.data",
      "view.onnx",
      "view.onnx.data",
    ]);
    assert.equal(r.manifest.files["view.onnx"]!.externalData, "view.onnx.data");
    assert.ok(r.view.maxAbsError <= 1e-4);
    // Exporting again without external data removes the stale data files with the new set.
    await exportSegmentationModel(model, ext, { version: "test", kernel: KERNEL, topK: false });
    assert.ok(!existsSync(join(ext, "view.onnx.data")));
  });
});
