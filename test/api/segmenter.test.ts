// The library face (src/api/segmenter.ts): what a user of `Segmenter` gets, on a tiny random CAT-Seg.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { readImageRGB } from "../../src/data/image-decode.js";
import { TINY_CATSEG } from "../tiny-models.js";

const TINY = TINY_CATSEG;

describe("Segmenter", () => {
  it("library: segment() returns labels, classes and scores whose argmax is the labels", async () => {
    const seg = Segmenter.create({ config: TINY, weights: "random", seed: 3 });
    const r = await seg.segment("assets/voc/114_image.png", ["cat", "dog, puppy", "sofa"], { scores: true });
    seg.dispose();
    assert.equal(r.labels.length, r.width * r.height);
    assert.equal(r.scores!.length, 3 * r.width * r.height);
    const n = r.width * r.height;
    for (let i = 0; i < n; i += 997) {
      const s = [0, 1, 2].map((c) => r.scores![c * n + i]!);
      assert.equal(r.labels[i], s.indexOf(Math.max(...s)));
      assert.ok(s.every((v) => v >= 0 && v <= 1));
    }
  });

  it("Segmenter: a file, its bytes and its decoded pixels give the same labels", async () => {
    const seg = Segmenter.create({ config: TINY, weights: "random", seed: 3 });
    const file = "assets/coco/000000039769.png";
    const a = await seg.segment(file, "cat; sofa; remote");
    const b = await seg.segment(readFileSync(file), "cat; sofa; remote");
    const c = await seg.segment(await readImageRGB(file), "cat; sofa; remote");
    seg.dispose();
    assert.deepEqual([a.width, a.height], [640, 480]);
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(c.labels, a.labels);
  });

  it("weights are required: random weights only when asked for by name", () => {
    assert.throws(
      () => Segmenter.create({ config: TINY } as unknown as Parameters<typeof Segmenter.create>[0]),
      /weights is required: a weights file .*"random" for random weights/,
    );
    const seg = Segmenter.create({ config: TINY, weights: "random" });
    assert.equal(seg.randomWeights, true);
    seg.dispose();
  });
});
