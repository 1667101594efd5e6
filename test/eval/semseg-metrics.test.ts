import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  argmaxScores,
  ConfusionMatrix,
  computeMetrics,
  foldVocBackground,
} from "../../src/eval/semseg-metrics.js";
import { runSemsegEvalCase } from "../../src/parity/cases/semseg-eval.js";
import { loadFixture } from "../../src/parity/fixture.js";

function fixtureDir(): string {
  // dist/test/eval/<this>.js → <repo>/test/fixtures/semseg_eval
  const fromFile = fileURLToPath(new URL("../../../test/fixtures/semseg_eval", import.meta.url));
  return existsSync(fromFile) ? fromFile : join(process.cwd(), "test/fixtures/semseg_eval");
}

describe("semseg_eval fixture parity (detectron2 main + v0.6, VOCbEvaluator)", () => {
  const f = loadFixture(fixtureDir());
  const comparisons = runSemsegEvalCase(f);
  const variants = Object.keys(f.json.variants);

  it("covers every variant and quantity", () => {
    assert.deepEqual(variants.sort(), ["ignore_eq_num_classes", "perfect", "sem255", "u16_65535", "vocb"]);
    // per variant: pred, conf_matrix, and for main/v0.6: 2 per-class + 4 scalars
    assert.equal(comparisons.length, variants.length * (2 + 2 * 6));
    assert.equal(new Set(comparisons.map((c) => c.name)).size, comparisons.length);
  });

  for (const c of comparisons) {
    it(c.name, () => {
      assert.ok(c.ok, `${c.name}: maxAbsError ${c.maxAbsError} worstExcess ${c.worstExcess} ${c.note ?? ""}`);
    });
  }

  it("the two mIoU definitions differ where the fixture says so", () => {
    for (const v of variants) {
      const r = f.json.variants[v].results;
      const differs = r.main.metrics_percent.mIoU !== r["v0.6"].metrics_percent.mIoU;
      assert.equal(differs, f.json.variants[v].mIoU_differs_between_versions, v);
    }
  });
});

describe("ConfusionMatrix / computeMetrics on a hand-computed 2×3 image", () => {
  // N = 4 classes, ignore 255. Class 3 is predicted once but never occurs in the GT.
  //   GT   = [0 0 1 ; 1 2 255]
  //   pred = [0 3 1 ; 1 1 2  ]
  // pixels (pred, gt): (0,0) (3,0) (1,1) (1,1) (1,2) (2,ignore→4)
  const gt = Uint8Array.from([0, 0, 1, 1, 2, 255]);
  const pred = Uint16Array.from([0, 3, 1, 1, 1, 2]);
  const conf = new ConfusionMatrix(4, 255).add(pred, gt);

  it("counts rows = pred, cols = GT, ignore → column N", () => {
    // biome-ignore format: matrix layout
    const expected = [
      1, 0, 0, 0, 0,
      0, 2, 1, 0, 0,
      0, 0, 0, 0, 1,
      1, 0, 0, 0, 0,
      0, 0, 0, 0, 0,
    ].map(BigInt);
    assert.deepEqual(conf.toBigInt64Array(), BigInt64Array.from(expected));
    assert.equal(conf.pixels, 6);
    assert.equal(conf.get(2, 4), 1);
  });

  it("per-class IoU / accuracy (tp=[1,2,0,0], pos_gt=[2,2,1,0], pos_pred=[1,3,0,1])", () => {
    const m = computeMetrics(conf);
    // IoU = tp / (pos_gt + pos_pred − tp): 1/2, 2/3, 0/1, NaN (no GT pixels)
    assert.deepEqual(Array.from(m.perClassIoU), [50, 100 * (2 / 3), 0, Number.NaN]);
    // ACC = tp / pos_gt: 1/2, 2/2, 0/1, NaN
    assert.deepEqual(Array.from(m.perClassAcc), [50, 100, 0, Number.NaN]);
  });

  it("scalar metrics, both mIoU definitions", () => {
    const m = computeMetrics(conf);
    const iouSum = 0.5 + 2 / 3 + 0;
    // main: mean over the 3 classes with GT pixels
    assert.equal(m.mIoU_d2main, 100 * (iouSum / 3));
    // v0.6: divided by the 4 classes with GT or predicted pixels (class 3 counts as 0)
    assert.equal(m.mIoU_d2v06, 100 * (iouSum / 4));
    assert.equal(m.mIoU, m.mIoU_d2main);
    assert.equal(m.miouDefinition, "d2-main");
    assert.equal(computeMetrics(conf, { miou: "d2-v0.6" }).mIoU, m.mIoU_d2v06);
    // fwIoU = Σ IoU · pos_gt / 5 = 0.5·0.4 + (2/3)·0.4 + 0·0.2
    assert.equal(m.fwIoU, 100 * (0.5 * (2 / 5) + (2 / 3) * (2 / 5) + 0 * (1 / 5)));
    assert.ok(Math.abs(m.fwIoU - 700 / 15) < 1e-12);
    assert.equal(m.mACC, 50); // (1/2 + 1 + 0) / 3
    assert.equal(m.pACC, 60); // 3 / 5
  });

  it("an empty matrix gives NaN means (and fwIoU 0, as numpy's empty sum)", () => {
    const m = computeMetrics(new ConfusionMatrix(3, 255));
    assert.ok(Number.isNaN(m.mIoU_d2main));
    assert.ok(Number.isNaN(m.mIoU_d2v06));
    assert.ok(Number.isNaN(m.mACC));
    assert.ok(Number.isNaN(m.pACC));
    assert.equal(m.fwIoU, 0);
  });
});

describe("ignore handling", () => {
  it("ignore 255 on uint8 GT: ignored pixels never reach the metrics", () => {
    const gt = Uint8Array.from([0, 255, 1, 255]);
    const pred = Uint8Array.from([0, 0, 1, 1]);
    const conf = new ConfusionMatrix(2, 255).add(pred, gt);
    assert.equal(conf.get(0, 2), 1);
    assert.equal(conf.get(1, 2), 1);
    const m = computeMetrics(conf);
    assert.deepEqual(Array.from(m.perClassIoU), [100, 100]);
    assert.equal(m.pACC, 100);
  });

  it("ignore 65535 on uint16 GT (ADE-847 style)", () => {
    const N = 20;
    const gt = Uint16Array.from([19, 65535, 3, 65535, 65535]);
    const pred = Uint16Array.from([19, 7, 3, 19, 0]);
    const conf = new ConfusionMatrix(N, 65535).add(pred, gt);
    assert.equal(conf.get(7, N), 1);
    assert.equal(conf.get(19, N), 1);
    assert.equal(conf.get(0, N), 1);
    const m = computeMetrics(conf);
    assert.equal(m.perClassIoU[19], 100);
    assert.equal(m.perClassIoU[3], 100);
    assert.ok(Number.isNaN(m.perClassIoU[7]!));
    // predictions on ignored pixels do not count as false positives, in either version
    assert.equal(m.mIoU_d2main, 100);
    assert.equal(m.mIoU_d2v06, 100);
  });

  it("ignore == num_classes (PC-459 style): GT value N is ignored", () => {
    const N = 3;
    const gt = Uint16Array.from([0, 3, 2, 3]);
    const pred = Uint16Array.from([0, 1, 2, 2]);
    const conf = new ConfusionMatrix(N, N).add(pred, gt);
    assert.equal(conf.get(1, N), 1);
    assert.equal(conf.get(2, N), 1);
    const m = computeMetrics(conf);
    assert.equal(m.mIoU_d2main, 100);
    assert.equal(m.mIoU_d2v06, 100); // class 1 is predicted only on an ignored pixel
  });

  it("GT value N with a different ignore label lands in column N too (as in detectron2)", () => {
    const conf = new ConfusionMatrix(3, 255).add(Uint8Array.from([1, 2]), Uint8Array.from([3, 255]));
    assert.equal(conf.get(1, 3), 1);
    assert.equal(conf.get(2, 3), 1);
  });

  it("out-of-range labels throw and leave the matrix unchanged", () => {
    const conf = new ConfusionMatrix(3, 255).add(Uint8Array.from([0]), Uint8Array.from([0]));
    const before = conf.toBigInt64Array();
    assert.throws(() => conf.add(Uint8Array.from([0, 1, 2]), Uint8Array.from([0, 1, 7])), /GT label 7/);
    assert.throws(() => conf.add(Uint8Array.from([0, 4]), Uint8Array.from([0, 1])), /prediction 4/);
    assert.throws(() => conf.add(Int32Array.from([-1]), Int32Array.from([0])), /prediction -1/);
    assert.throws(() => conf.add(Uint8Array.from([0, 1]), Uint8Array.from([0])), /pixels/);
    assert.deepEqual(conf.toBigInt64Array(), before);
    assert.equal(conf.pixels, 1);
  });
});

describe("merging", () => {
  const N = 5;
  function image(seed: number, n: number): { pred: Uint16Array; gt: Uint8Array } {
    let s = seed;
    const rnd = () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 2147483648;
    };
    const pred = new Uint16Array(n);
    const gt = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      pred[i] = Math.floor(rnd() * N);
      gt[i] = rnd() < 0.1 ? 255 : Math.floor(rnd() * N);
    }
    return { pred, gt };
  }
  const a = image(1, 300);
  const b = image(2, 517);

  it("addMatrix / merge of two per-image matrices equals one matrix over both images", () => {
    const one = new ConfusionMatrix(N, 255).add(a.pred, a.gt).add(b.pred, b.gt);
    const ma = new ConfusionMatrix(N, 255).add(a.pred, a.gt);
    const mb = new ConfusionMatrix(N, 255).add(b.pred, b.gt);
    const merged = ConfusionMatrix.merge(ma, mb);
    assert.deepEqual(merged.toBigInt64Array(), one.toBigInt64Array());
    assert.equal(merged.pixels, 817);
    const summed = ma.clone().addMatrix(mb);
    assert.deepEqual(summed.toBigInt64Array(), one.toBigInt64Array());
    // from gathered int64 counts (as across processes)
    const gathered = ConfusionMatrix.fromCounts(N, 255, ma.toBigInt64Array()).addMatrix(mb.toBigInt64Array());
    assert.deepEqual(gathered.toBigInt64Array(), one.toBigInt64Array());
    assert.deepEqual(computeMetrics(gathered), computeMetrics(one));
    // ma itself was not modified by merge
    assert.deepEqual(ma.toBigInt64Array(), new ConfusionMatrix(N, 255).add(a.pred, a.gt).toBigInt64Array());
  });

  it("rejects mismatched matrices", () => {
    assert.throws(() => new ConfusionMatrix(N, 255).addMatrix(new ConfusionMatrix(N + 1, 255)), /classes/);
    assert.throws(() => new ConfusionMatrix(N, 255).addMatrix(new ConfusionMatrix(N, 0)), /ignore/);
    assert.throws(() => new ConfusionMatrix(N, 255).addMatrix(new Float64Array(3)), /counts/);
    assert.throws(() => new ConfusionMatrix(1, 255).addMatrix([1, 2, -1, 0]), /non-negative/);
  });
});

describe("argmaxScores / foldVocBackground", () => {
  it("argmax over the channel axis of (C,H,W), first index wins on ties", () => {
    // C=3, H=1, W=4
    // biome-ignore format: channel rows
    const scores = Float32Array.from([
      1, 5, 2, 0,
      3, 5, 2, -1,
      2, 1, 2, -2,
    ]);
    assert.deepEqual(argmaxScores(scores, 3, 1, 4), Uint16Array.from([1, 0, 0, 0]));
  });

  it("NaN counts as the maximum (first NaN wins), like torch/numpy argmax", () => {
    const scores = Float32Array.from([1, Number.NaN, Number.NaN, 9, 0, Number.NaN]);
    // C=3, H=1, W=2: pixel 0 → [1, NaN, 0] → 1; pixel 1 → [NaN, 9, NaN] → 0
    assert.deepEqual(argmaxScores(scores, 3, 1, 2), Uint16Array.from([1, 0]));
  });

  it("rejects a wrong length", () => {
    assert.throws(() => argmaxScores(new Float32Array(5), 2, 1, 2), /shape/);
  });

  it("VOC-20b fold: predictions ≥ 20 become 20, input untouched", () => {
    const pred = Uint16Array.from([0, 19, 20, 21, 29]);
    const folded = foldVocBackground(pred);
    assert.deepEqual(folded, Uint16Array.from([0, 19, 20, 20, 20]));
    assert.deepEqual(pred, Uint16Array.from([0, 19, 20, 21, 29]));
    assert.deepEqual(foldVocBackground(Uint8Array.from([4, 5, 6]), 5), Uint8Array.from([4, 5, 5]));
  });
});
