// The onnx backend of Segmenter (src/onnx/, backend: "onnx") with stand-in sessions: behind them the same
// libtorch model the torch backend runs (so the whole TypeScript half — tokenizer, templates, class-embedding
// math, sliding window, stitching, argmax — is compared with the libtorch path), or pure functions in a
// process where libtorch cannot load at all.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Segmenter } from "../../src/api/segmenter.js";
import type { CatSegModel } from "../../src/catseg/model.js";
import { embedClassNames } from "../../src/clip/prompts.js";
import { ClipTokenizer } from "../../src/clip/tokenizer.js";
import { readImageRGB } from "../../src/data/image-decode.js";
import { createModel } from "../../src/models/factory.js";
import { checkManifest } from "../../src/onnx/manifest.js";
import { openExportFolder } from "../../src/onnx/node.js";
import type { OrtModule, SessionCreateOptions } from "../../src/onnx/runtime.js";
import { OnnxSegmentation } from "../../src/onnx/segmentation.js";
import { noGrad } from "../../src/torch/tensor.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";
import { pureRuntime, torchRuntime, writeFakeExport } from "./fake-ort.js";

const IMAGE = "assets/images/chelsea.png";
const CLASSES = ["cat", "wall, brick wall", "floor", "blanket"];

function tinyModel(seed: number): CatSegModel {
  return createModel({ arch: "catseg", config: TINY_CATSEG, weights: "random", seed }) as CatSegModel;
}

describe("Segmenter, backend onnx (stand-in sessions)", () => {
  it("labels and scores equal the libtorch Segmenter's on a real image", async () => {
    const model = tinyModel(21);
    const dir = tempDir("dedos-onnx-");
    writeFakeExport(dir);
    const torchSeg = Segmenter.fromModel(model);
    const onnxSeg = await Segmenter.create({ backend: "onnx", model: dir, runtime: torchRuntime(model) });
    assert.equal(onnxSeg.kind, "catseg");
    for (const synonyms of ["first", "average"] as const) {
      const a = await torchSeg.segment(IMAGE, CLASSES, { scores: true, synonyms });
      const b = await onnxSeg.segment(IMAGE, CLASSES, { scores: true, synonyms });
      assert.equal(b.width, a.width);
      assert.equal(b.labels.length, a.labels.length);
      let maxDiff = 0;
      for (let i = 0; i < a.scores!.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(a.scores![i]! - b.scores![i]!));
      assert.ok(maxDiff <= 1e-5, `scores differ by ${maxDiff}`);
      let same = 0;
      for (let i = 0; i < a.labels.length; i++) if (a.labels[i] === b.labels[i]) same++;
      assert.ok(same / a.labels.length >= 0.999, `${same} of ${a.labels.length} labels equal`);
      if (process.env.DEDOS_TEST_VERBOSE)
        console.log(`${synonyms}: scores within ${maxDiff}, ${same} of ${a.labels.length} labels equal`);
      assert.ok(new Set(b.labels).size > 1, "a random model still labels more than one class");
    }
    await onnxSeg.dispose();
    await torchSeg.dispose();
    model.dispose();
  });

  it("class embeddings from text features equal embedClassNames (templates averaged or kept, synonyms)", async () => {
    const model = tinyModel(22);
    const tokenizer = ClipTokenizer.load();
    const templates = ["a photo of a {}.", "a {} in the scene", "{}"];
    const base = writeFakeExport(tempDir("dedos-onnx-"));
    for (const [P, reduction] of [
      [1, "mean"],
      [3, "none"],
    ] as const) {
      const manifest = { ...base, templates, promptChannel: P };
      const ort = torchRuntime(model);
      const [text, view] = await Promise.all(
        ["text.onnx", "view.onnx"].map((f) => ort.InferenceSession.create(f)),
      );
      const m = new OnnxSegmentation(manifest, ort, text!, view!, tokenizer);
      for (const synonyms of ["first", "average"] as const) {
        const got = await m.textEmbeddings(CLASSES, synonyms);
        const ref = noGrad(() =>
          embedClassNames(model.clip, tokenizer, CLASSES, {
            templates,
            synonyms,
            templateReduction: reduction,
            cache: false,
          }),
        );
        assert.deepEqual(got.shape, ref.shape);
        const r = ref.intoTypedArray() as Float32Array;
        let maxDiff = 0;
        for (let i = 0; i < r.length; i++) maxDiff = Math.max(maxDiff, Math.abs(r[i]! - got.data[i]!));
        assert.ok(maxDiff <= 1e-6, `P ${P}, ${synonyms}: embeddings differ by ${maxDiff}`);
      }
    }
    model.dispose();
  });

  for (const [what, real] of [
    ["stand-in sessions", []],
    ["real graphs on onnxruntime-node", ["real"]],
  ] as const) {
    it(`never loads libtorch: segments with DEDOS_NATIVE_ADDON pointing at no file (${what})`, () => {
      const child = fileURLToPath(new URL("./no-libtorch-child.js", import.meta.url));
      const dir = tempDir("dedos-onnx-");
      const r = spawnSync(process.execPath, [child, dir, IMAGE, ...real], {
        env: { ...process.env, DEDOS_NATIVE_ADDON: join(dir, "no-such-addon.node") },
        encoding: "utf8",
        timeout: 120_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
        width: number;
        present: number;
        addon: string;
      };
      assert.equal(out.width, 451);
      assert.ok(out.present >= 1);
      // The engine really was unavailable in that process, so nothing on the onnx path needed it.
      assert.match(out.addon, /libtorch engine is unavailable/);
    });
  }

  it("refuses what is not an export, a newer format, and a window that does not fit the graph", async () => {
    const dir = tempDir("dedos-onnx-");
    await assert.rejects(
      Segmenter.create({ backend: "onnx", model: dir, runtime: pureRuntime() }),
      /not a `dedos export` folder \(no manifest.json\)/,
    );
    // The same from the worker thread that runs onnxruntime-node.
    await assert.rejects(Segmenter.create({ backend: "onnx", model: dir }), /not a `dedos export` folder/);
    const m = writeFakeExport(dir);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ ...m, version: 2 }));
    await assert.rejects(
      Segmenter.create({ backend: "onnx", model: dir, runtime: pureRuntime() }),
      /"version" must be 1/,
    );
    writeFakeExport(dir, { kernel: 384 });
    await assert.rejects(
      Segmenter.create({ backend: "onnx", model: dir, runtime: pureRuntime(), window: "dedos" }),
      /window kernel 512 does not match the exported view size 384/,
    );
    assert.throws(
      () => checkManifest({ ...m, promptChannel: 2 }, "m.json"),
      /"promptChannel" must be 1 or the template count 1/,
    );
    assert.throws(
      () => checkManifest({ ...m, view: { ...m.view, inputs: { image: "x" } } }, "m.json"),
      /"view.inputs"/,
    );
  });

  it("a 100×60 image with pure stand-in sessions: labels, progress stages, cancellation", async () => {
    const dir = tempDir("dedos-onnx-");
    writeFakeExport(dir, { kernel: 384 });
    const seg = await Segmenter.create({ backend: "onnx", model: dir, runtime: pureRuntime() });
    const rgb = await readImageRGB(IMAGE);
    const stages: string[] = [];
    const r = await seg.segment(rgb, "cat; wall; floor", {
      onProgress: (p) => stages.push(`${p.stage}:${p.done}/${p.total}`),
    });
    assert.equal(r.labels.length, rgb.width * rgb.height);
    assert.deepEqual(stages, [
      "text:1/1",
      "view:1/5",
      "view:2/5",
      "view:3/5",
      "view:4/5",
      "view:5/5",
      "postprocess:1/1",
    ]);
    const ac = new AbortController();
    const p = seg.segment(rgb, "cat; wall", {
      signal: ac.signal,
      onProgress: (q) => q.stage === "view" && ac.abort(),
    });
    await assert.rejects(p, { name: "AbortError" });
    await seg.dispose();
  });
});

describe("onnx backend session options", () => {
  it("threads default to DEDOS_NUM_THREADS (else every core); the caller's options win", async () => {
    const dir = tempDir("dedos-onnx-threads-");
    writeFakeExport(dir, { kernel: 384 });
    const seen: (SessionCreateOptions | undefined)[] = [];
    const base = pureRuntime();
    const runtime: OrtModule = {
      Tensor: base.Tensor,
      InferenceSession: {
        create: (model, options) => {
          seen.push(options);
          return base.InferenceSession.create(model, options);
        },
      },
    };
    const saved = process.env.DEDOS_NUM_THREADS;
    try {
      delete process.env.DEDOS_NUM_THREADS;
      await openExportFolder(dir, { runtime });
      process.env.DEDOS_NUM_THREADS = "3";
      await openExportFolder(dir, { runtime });
      await openExportFolder(dir, { runtime, sessionOptions: { intraOpNumThreads: 1 } });
    } finally {
      if (saved === undefined) delete process.env.DEDOS_NUM_THREADS;
      else process.env.DEDOS_NUM_THREADS = saved;
    }
    // Two sessions (text, view) per folder.
    assert.deepEqual(
      seen.map((o) => o?.intraOpNumThreads),
      [availableParallelism(), availableParallelism(), 3, 3, 1, 1],
    );
  });
});
