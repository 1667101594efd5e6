// Training presets (spec §7): DEDOS's recipe, and CAT-Seg's own when DEDOS is switched off.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { trainPreset } from "../../src/train/config.js";

describe("trainPreset", () => {
  test("DEDOS: ViT-B at 384, ViT-L at 512", () => {
    for (const [name, size] of [
      ["vitb_384", 384],
      ["vitl_336", 512],
    ] as const) {
      const c = trainPreset(name);
      assert.deepEqual([c.data.minSize, c.data.crop], [size, size], name);
      assert.equal(c.model.enabled, true);
    }
  });

  test("model.enabled=false gives CAT-Seg's recipe: 384 for both presets; explicit data overrides win", () => {
    for (const name of ["vitb_384", "vitl_336"]) {
      const c = trainPreset(name, ["model.enabled=false"]);
      assert.equal(c.model.enabled, false);
      assert.deepEqual([c.data.minSize, c.data.crop], [384, 384], name);
    }
    const own = trainPreset("vitl_336", ["model.enabled=false", "data.crop=448", "data.minSize=480"]);
    assert.deepEqual([own.data.minSize, own.data.crop], [480, 448]);
    // Other overrides still apply, and unknown fields are still named.
    assert.equal(trainPreset("vitb_384", ["solver.lr=1e-4"]).solver.lr, 1e-4);
    assert.throws(() => trainPreset("vitb_384", ["model.nope=1"]), /has no field "nope"/);
  });
});
