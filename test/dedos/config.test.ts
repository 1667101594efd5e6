// The DEDOS recipe decisions of docs/DEDOS-SPEC.md (issue #17): each default, its switch, the validation of
// the switches, and configs saved before the decisions read back with the behaviour they were trained with.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type DedosConfig,
  dedosPreset,
  upgradeDedosConfig,
  validateDedosConfig,
} from "../../src/dedos/config.js";

describe("DEDOS recipe defaults (spec §1, §2, §4, §6)", () => {
  for (const name of ["vitb_384", "vitl_336"]) {
    test(`${name}: 2-token empty prompt, both CLIP towers fine-tuned, full-mask losses, summed consistency`, () => {
      const c = dedosPreset(name);
      assert.equal(c.diffusion.promptPadding, "none");
      assert.deepEqual(c.clip, { finetune: "attention", finetuneText: true });
      assert.equal(c.loss.points, 0);
      assert.deepEqual([c.loss.maskLoss, c.loss.maskWeight, c.loss.diceWeight], ["focal", 20, 1]);
      // The point-sampling switch keeps Mask2Former's constants.
      assert.deepEqual([c.loss.oversampleRatio, c.loss.importanceSampleRatio], [3, 0.75]);
      assert.deepEqual([c.consistency.weight, c.consistency.reduction], [10, "sum"]);
      validateDedosConfig(c);
    });
  }

  test("each switch validates, and a wrong value is named", () => {
    const c = dedosPreset("vitb_384");
    c.diffusion.promptPadding = "max-length";
    c.consistency.reduction = "mean";
    c.clip.finetuneText = false;
    c.loss.points = 12544;
    validateDedosConfig(c);
    const bad: [(c: DedosConfig) => void, RegExp][] = [
      [
        (x) => (x.diffusion.promptPadding = "longest" as "none"),
        /diffusion\.promptPadding must be none or max-length/,
      ],
      [(x) => (x.consistency.reduction = "max" as "sum"), /consistency\.reduction must be sum or mean/],
      [(x) => (x.clip.finetune = "all" as "none"), /clip\.finetune must be attention or none/],
      [
        (x) => (x.clip.finetuneText = "yes" as unknown as boolean),
        /clip\.finetuneText must be true or false/,
      ],
      [(x) => (x.loss.points = 1.5), /loss\.points must be a non-negative integer/],
    ];
    for (const [patch, re] of bad) {
      const x = dedosPreset("vitb_384");
      patch(x);
      assert.throws(() => validateDedosConfig(x), re);
    }
  });
});

describe("configs saved before the recipe decisions", () => {
  /** A config as DedosModel.save wrote it before #17: clipFinetune, no promptPadding, no reduction. */
  function legacy(head: DedosConfig["head"], enabled = true): DedosConfig {
    const c = dedosPreset("vitb_384") as unknown as Record<string, unknown> & DedosConfig;
    c.head = head;
    c.enabled = enabled;
    delete (c.diffusion as Partial<DedosConfig["diffusion"]>).promptPadding;
    delete (c.consistency as Partial<DedosConfig["consistency"]>).reduction;
    delete (c as Partial<DedosConfig>).clip;
    c.clipFinetune = "attention";
    return JSON.parse(JSON.stringify(c));
  }

  test("read with the behaviour they were trained with (77-token prompt, mean, text tower per head)", () => {
    const m = upgradeDedosConfig(legacy("mask-decoder"));
    assert.equal(m.diffusion.promptPadding, "max-length");
    assert.equal(m.consistency.reduction, "mean");
    assert.deepEqual(m.clip, { finetune: "attention", finetuneText: false });
    assert.ok(!("clipFinetune" in m));
    validateDedosConfig(m);
    assert.deepEqual(upgradeDedosConfig(legacy("cost-aggregation")).clip, {
      finetune: "attention",
      finetuneText: true,
    });
    assert.equal(upgradeDedosConfig(legacy("mask-decoder", false)).clip.finetuneText, true);
  });

  test("a current config passes unchanged", () => {
    const c = dedosPreset("vitl_336");
    assert.deepEqual(upgradeDedosConfig(c), c);
  });
});
