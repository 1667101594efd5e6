// End to end on a real export: a tiny random CAT-Seg → `dedos export` → the onnx backend (onnxruntime-node) vs
// the libtorch Segmenter on the same weights, on real images: ≥ 99.9 % of the labels equal.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { exportTinyCatSeg } from "./exported-model.js";

const IMAGES = ["chelsea.png", "astronaut.png"].map((f) => join(PACKAGE_ROOT, "assets/images", f));
const CLASSES = "cat; wall; floor, ground; blanket; person; sky";

describe("dedos export → onnx backend", () => {
  it("labels equal the libtorch Segmenter's on real images (tiny random CAT-Seg)", async () => {
    const exp = exportTinyCatSeg(3);
    const torchSeg = await Segmenter.create({ config: exp.config, weights: exp.weights });
    const onnxSeg = await Segmenter.create({ backend: "onnx", model: exp.dir });
    for (const image of IMAGES) {
      const a = await torchSeg.segment(image, CLASSES, { scores: true });
      const b = await onnxSeg.segment(image, CLASSES, { scores: true });
      assert.equal(b.labels.length, a.labels.length);
      let same = 0;
      for (let i = 0; i < a.labels.length; i++) if (a.labels[i] === b.labels[i]) same++;
      let maxDiff = 0;
      for (let i = 0; i < a.scores!.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(a.scores![i]! - b.scores![i]!));
      console.log(
        `${image}: ${same} of ${a.labels.length} labels equal, scores within ${maxDiff.toExponential(2)}`,
      );
      assert.ok(same / a.labels.length >= 0.999, `${same} of ${a.labels.length} labels equal`);
      assert.ok(new Set(a.labels).size > 1, "the random model labels more than one class");
    }
    await onnxSeg.dispose();
    await torchSeg.dispose();
  });
});
