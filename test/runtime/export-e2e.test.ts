// End to end on real exports: a tiny random CAT-Seg and a tiny DEDOS (static proxy queries, mask-decoder head
// giving probabilities, 512-px views) → `dedos export` → the onnx backend (onnxruntime-node) vs the libtorch
// Segmenter on the same weights, on real images: ≥ 99.9 % of the labels equal. 12 classes > pad_len 8 go
// through the exported top-k graph.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { exportTiny } from "./exported-model.js";

const IMAGES = ["chelsea.png", "astronaut.png"].map((f) => join(PACKAGE_ROOT, "assets/images", f));
const CLASSES = [
  "cat; wall; floor, ground; blanket; person; sky",
  "cat; wall; floor; blanket; person; sky; tree; road; car; dog; grass; water",
];

describe("dedos export → onnx backend", () => {
  for (const arch of ["catseg", "dedos"] as const) {
    it(`labels equal the libtorch Segmenter's on real images (tiny random ${arch})`, async () => {
      const exp = exportTiny(arch, 3);
      const window = arch === "dedos" ? "dedos" : "catseg";
      const torchSeg = await Segmenter.create({
        model: arch,
        config: exp.config,
        weights: exp.weights,
        window,
      });
      const onnxSeg = await Segmenter.create({ backend: "onnx", model: exp.dir });
      assert.equal(onnxSeg.kind, arch);
      for (const classes of CLASSES)
        for (const image of arch === "catseg" ? IMAGES : IMAGES.slice(0, 1)) {
          const a = await torchSeg.segment(image, classes, { scores: true });
          const b = await onnxSeg.segment(image, classes, { scores: true });
          assert.equal(b.labels.length, a.labels.length);
          let same = 0;
          for (let i = 0; i < a.labels.length; i++) if (a.labels[i] === b.labels[i]) same++;
          let maxDiff = 0;
          for (let i = 0; i < a.scores!.length; i++)
            maxDiff = Math.max(maxDiff, Math.abs(a.scores![i]! - b.scores![i]!));
          console.log(
            `${arch}, ${a.classes.length} classes, ${image.split("/").pop()}: ${same} of ${a.labels.length} labels equal, scores within ${maxDiff.toExponential(2)}`,
          );
          assert.ok(same / a.labels.length >= 0.999, `${same} of ${a.labels.length} labels equal`);
          assert.ok(new Set(a.labels).size > 1, "the random model labels more than one class");
        }
      await onnxSeg.dispose();
      await torchSeg.dispose();
    });
  }
});
