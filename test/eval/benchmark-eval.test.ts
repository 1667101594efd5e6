// evaluate(): the whole evaluation of a benchmark as a library call (the shard of this process, the summed
// confusion matrix, the metrics and the report files), checked with a segmenter that answers "grass" everywhere.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import type { Segmenter } from "../../src/api/segmenter.js";
import { getBenchmark, loadClassNames } from "../../src/data/benchmarks.js";
import type { RgbImage } from "../../src/data/image-decode.js";
import { evaluate, evaluateShard } from "../../src/eval/evaluate.js";
import { type Scene, writeScenes } from "../synthetic-scenes.js";
import { tempDir } from "../temp-dir.js";

const GRASS = 1;
const allGrass = {
  segment: async (rgb: RgbImage) => ({ labels: new Uint8Array(rgb.width * rgb.height).fill(GRASS) }),
} as unknown as Segmenter;

describe("evaluate() over a prepared benchmark", () => {
  const root = tempDir("dedos-evaluate-");
  let scenes: Scene[] = [];
  before(async () => {
    scenes = await writeScenes(root, 200, 3, "val");
  });

  it("sums the images, computes the metrics and writes the report on request", async () => {
    const out = join(root, "report");
    const r = await evaluate(allGrass, "cocostuff171", root, { limit: 2, reportDir: out, weights: "w.pth" });
    assert.equal(r.images, 2);
    assert.equal(r.failedImages, 0);
    assert.deepEqual([r.rank, r.worldSize], [0, 1]);
    const px = scenes.slice(0, 2).flatMap((s) => Array.from(s.label));
    const count = (c: number) => px.filter((l) => l === c).length;
    assert.equal(r.metrics.pACC, 100 * (count(GRASS) / px.length));
    const shard = await evaluateShard(allGrass, "cocostuff171", root, { limit: 2 });
    assert.deepEqual(r.conf.toBigInt64Array(), shard.conf.toBigInt64Array());
    assert.deepEqual(
      r.files,
      ["metrics.json", "per_class_iou.csv", "per_class_iou.md"].map((f) => join(out, f)),
    );
    const m = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"));
    assert.equal(m.images, 2);
    assert.equal(m.weights, "w.pth");
    const names = loadClassNames(getBenchmark("cocostuff171"));
    assert.equal(Object.keys(m.per_class).length, 171);
    assert.equal(m.per_class[names[0]!].gt_pixels, count(0));
    assert.equal(m.per_class[names[GRASS]!].gt_pixels, count(GRASS));
  });

  it("writes nothing without a report folder; distributed without a process group is one process", async () => {
    const r = await evaluate(allGrass, "cocostuff171", root, { distributed: true });
    assert.equal(r.images, 3);
    assert.deepEqual(r.files, []);
    assert.equal(existsSync(join(root, "metrics.json")), false);
  });
});
