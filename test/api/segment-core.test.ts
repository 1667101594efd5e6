// The Segmenter's model (src/api/segment-core.ts): built frozen with its linear weights prepacked, and segmenting
// as the same weights do unpacked.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildSegmentationModel, segmentRgb } from "../../src/api/segment-core.js";
import { readImageRGB } from "../../src/data/image-decode.js";
import { createModel } from "../../src/models/factory.js";
import { nn } from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { TINY_CATSEG } from "../tiny-models.js";

describe("buildSegmentationModel", () => {
  it("prepacks every frozen linear weight; the scores equal those of the same weights unpacked", async () => {
    const packed = buildSegmentationModel({
      model: "catseg",
      config: TINY_CATSEG,
      weights: "random",
      seed: 11,
    });
    const plain = createModel({ arch: "catseg", config: TINY_CATSEG, weights: "random", seed: 11 });
    plain.eval();
    const linears = [...packed.namedModules()].filter(([, m]) => m instanceof nn.Linear);
    assert.ok(linears.length > 10, `${linears.length} linear layers`);
    for (const [name, m] of linears)
      assert.equal(native.isPrepacked((m as nn.Linear).weight.handle), true, `${name}.weight is packed`);
    assert.equal(
      [...plain.namedModules()].some(
        ([, m]) => m instanceof nn.Linear && native.isPrepacked(m.weight.handle),
      ),
      false,
    );

    const rgb = await readImageRGB("assets/voc/114_image.png");
    const req = { classes: ["cat", "dog", "sofa", "wall"], scores: true };
    const a = segmentRgb(packed, "cpu", "catseg", rgb, req);
    const b = segmentRgb(plain, "cpu", "catseg", rgb, req);
    const n = a.width * a.height;
    let worst = 0;
    let decided = 0;
    for (let i = 0; i < n; i++) {
      const sa = [0, 1, 2, 3].map((c) => a.scores![c * n + i]!);
      const sb = [0, 1, 2, 3].map((c) => b.scores![c * n + i]!);
      for (let c = 0; c < 4; c++) worst = Math.max(worst, Math.abs(sa[c]! - sb[c]!));
      const sorted = [...sb].sort((x, y) => y - x);
      if (sorted[0]! - sorted[1]! > 1e-4) {
        decided++;
        assert.equal(a.labels[i], b.labels[i], `pixel ${i}: ${sa} vs ${sb}`);
      }
    }
    assert.ok(worst <= 1e-4, `scores differ by ${worst}`);
    assert.ok(decided > n / 2, `${decided} of ${n} pixels have a clear winner`);
    // Still packed after the run: the pipeline used no weight as a plain tensor.
    for (const [name, m] of linears)
      assert.equal(native.isPrepacked((m as nn.Linear).weight.handle), true, `${name}.weight still packed`);
    packed.dispose();
    plain.dispose();
  });
});
