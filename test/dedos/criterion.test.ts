// DEDOS set criterion: semantic targets, every loss term against a plain-JS computation (points = 0, so
// deterministic, with predictions upsampled to the label size), deep-supervision naming, the mask count, and
// the importance sampling of points (seeded, most uncertain first).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LossConfig } from "../../src/dedos/config.js";
import {
  type MaskPrediction,
  SetCriterion,
  semanticTargets,
  uncertainPointCoords,
} from "../../src/dedos/criterion.js";
import { Generator, rand, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose, pseudoRandom } from "../helpers.js";
import { bilinearRef, upsample } from "./hand-reference.js";

const IGNORE = 255;

function lossConfig(over: Partial<LossConfig> = {}): LossConfig {
  return {
    costClass: 1,
    costMask: 1,
    costDice: 1,
    classWeight: 2,
    maskWeight: 20,
    diceWeight: 0.5,
    maskLoss: "focal",
    otherClassWeight: 0.1,
    points: 0,
    oversampleRatio: 3,
    importanceSampleRatio: 0.75,
    deepSupervision: true,
    costAggregationWeight: 1,
    ignoreLabel: IGNORE,
    ...over,
  };
}

const arr = (t: Tensor) => Array.from(t.to("float64").toTypedArray() as Float64Array);

// ---- plain-JS references ----
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const bce = (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
const logSoftmax = (v: number[]) => {
  const m = Math.max(...v);
  const lse = m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
  return v.map((x) => x - lse);
};
const focal = (x: number, t: number) => {
  const p = sigmoid(x);
  const pt = p * t + (1 - p) * (1 - t);
  return bce(x, t) * (1 - pt) ** 2 * (0.25 * t + 0.75 * (1 - t));
};
const dice = (x: number[], t: number[]) => {
  const p = x.map(sigmoid);
  const inter = p.reduce((s, v, i) => s + v * t[i]!, 0);
  return 1 - (2 * inter + 1) / (p.reduce((a, b) => a + b, 0) + t.reduce((a, b) => a + b, 0) + 1);
};
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

describe("semanticTargets", () => {
  test("classes present in increasing order, one mask each; ignored pixels 0 in every mask", () => {
    tidy(() => {
      const gt = tensor(
        [
          [
            [0, 2, 2],
            [IGNORE, 0, 3],
          ],
          [
            [IGNORE, IGNORE, IGNORE],
            [IGNORE, IGNORE, IGNORE],
          ],
        ],
        undefined,
        { dtype: "int64" },
      );
      const [a, b] = semanticTargets(gt, IGNORE, 4);
      assert.deepEqual(Array.from(a!.labels), [0, 2, 3]);
      assert.equal(a!.masks.dtype, "float32");
      assert.deepEqual(a!.masks.shape, [3, 2, 3]);
      assert.deepEqual(arr(a!.masks), [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
      assert.equal(b!.labels.length, 0);
      assert.deepEqual(b!.masks.shape, [0, 2, 3]);
      // uint8 label maps work alike.
      const [c] = semanticTargets(gt.to("uint8").narrow(0, 0, 1), IGNORE, 4);
      assert.deepEqual(Array.from(c!.labels), [0, 2, 3]);
    });
  });

  test("labels outside the class range throw", () => {
    tidy(() => {
      assert.throws(
        () => semanticTargets(tensor([[[0, 4]]], undefined, { dtype: "int64" }), IGNORE, 4),
        /label 4/,
      );
      assert.throws(
        () => semanticTargets(tensor([[[-1, 0]]], undefined, { dtype: "int64" }), IGNORE, 4),
        /label -1/,
      );
    });
  });
});

// A batch of two images, three queries over K = 2 classes + "other", 2×2 mask logits, 4×4 label maps.
const B = 2;
const N = 3;
const K = 2;
const h = 2;
const H = 4;
const CLS = pseudoRandom(B * N * (K + 1), 31).map((x) => x * 3);
const MASKS = pseudoRandom(B * N * h * h, 32).map((x) => x * 4);
const GT = [
  [0, 0, 1, 1, 0, 0, 1, 1, IGNORE, 0, 1, 1, 0, 0, 1, IGNORE],
  [1, 1, 1, IGNORE, 1, 1, 1, 1, IGNORE, IGNORE, 1, 1, 1, 1, 1, 1],
];

function prediction(cls = CLS, masks = MASKS, requiresGrad = false): MaskPrediction {
  return {
    classLogits: tensor(Float32Array.from(cls), [B, N, K + 1], { requiresGrad }),
    masks: tensor(Float32Array.from(masks), [B, N, h, h], { requiresGrad }),
  };
}
const gtTensor = () => tensor(GT, [B, H, H], { dtype: "int64" });

/** The full hand computation of the three unweighted losses for the batch above (points = 0). */
function handLosses(
  cls: number[],
  masks: number[],
  maskLoss: "focal" | "bce",
  other: number,
  numMasksOverride?: number,
): { ce: number; mask: number; dice: number; matching: number[][] } {
  const targets = GT.map((g) => {
    const labels = [...new Set(g.filter((v) => v !== IGNORE))].sort((a, b) => a - b);
    return { labels, masks: labels.map((l) => g.map((v) => (v === l ? 1 : 0))) };
  });
  const upMask = (b: number, q: number) =>
    upsample(masks.slice((b * N + q) * h * h, (b * N + q + 1) * h * h), h, h, H, H);
  const logits = (b: number, q: number) => cls.slice((b * N + q) * (K + 1), (b * N + q + 1) * (K + 1));
  const softmax = (v: number[]) => logSoftmax(v).map(Math.exp);
  // Matching by brute force over injective maps target → query, with the matcher's cost (weights 1).
  const matching = targets.map((t, b) => {
    const cost = (q: number, m: number) =>
      -softmax(logits(b, q))[t.labels[m]!]! +
      mean(upMask(b, q).map((x, i) => bce(x, t.masks[m]![i]!))) +
      dice(upMask(b, q), t.masks[m]!);
    let best: number[] = [];
    let bestCost = Number.POSITIVE_INFINITY;
    const rec = (m: number, used: number[], acc: number) => {
      if (m === t.labels.length) {
        if (acc < bestCost) {
          bestCost = acc;
          best = [...used];
        }
        return;
      }
      for (let q = 0; q < N; q++) if (!used.includes(q)) rec(m + 1, [...used, q], acc + cost(q, m));
    };
    rec(0, [], 0);
    return best; // best[m] = query of target m
  });
  const numMasks =
    numMasksOverride ??
    Math.max(
      1,
      targets.reduce((s, t) => s + t.labels.length, 0),
    );
  let wSum = 0;
  let ceSum = 0;
  let mask = 0;
  let dc = 0;
  targets.forEach((t, b) => {
    for (let q = 0; q < N; q++) {
      const m = matching[b]!.indexOf(q);
      const y = m >= 0 ? t.labels[m]! : K;
      const w = y === K ? other : 1;
      wSum += w;
      ceSum -= w * logSoftmax(logits(b, q))[y]!;
      if (m >= 0) {
        const x = upMask(b, q);
        const tm = t.masks[m]!;
        mask += mean(x.map((v, i) => (maskLoss === "focal" ? focal(v, tm[i]!) : bce(v, tm[i]!))));
        dc += dice(x, tm);
      }
    }
  });
  return { ce: ceSum / wSum, mask: mask / numMasks, dice: dc / numMasks, matching };
}

describe("SetCriterion (points = 0)", () => {
  for (const maskLoss of ["focal", "bce"] as const)
    test(`loss_ce (other weight), loss_mask (${maskLoss}), loss_dice equal the hand computation × weights`, () => {
      const cfg = lossConfig({ maskLoss });
      const crit = new SetCriterion(cfg);
      const exp = handLosses(CLS, MASKS, maskLoss, cfg.otherClassWeight);
      tidy(() => {
        const p = prediction();
        const targets = semanticTargets(gtTensor(), IGNORE, K);
        const idx = crit.matcher.match(p.classLogits, p.masks, targets);
        idx.forEach((r, b) => {
          const byTarget = Array.from(r.target).map((_, k) => r.pred[Array.from(r.target).indexOf(k)]);
          assert.deepEqual(byTarget, exp.matching[b], `matching of image ${b}`);
        });
        const l = crit.forward([p], gtTensor());
        assert.deepEqual(Object.keys(l).sort(), ["loss_ce", "loss_dice", "loss_mask"]);
        assertClose([l.loss_ce!.item()], [cfg.classWeight * exp.ce], 1e-5, 1e-5, "loss_ce");
        assertClose([l.loss_mask!.item()], [cfg.maskWeight * exp.mask], 1e-5, 1e-5, "loss_mask");
        assertClose([l.loss_dice!.item()], [cfg.diceWeight * exp.dice], 1e-5, 1e-5, "loss_dice");
      });
    });

  test("the mask count: a number or a function of the local count (3 matched masks here)", () => {
    const cfg = lossConfig();
    const crit = new SetCriterion(cfg);
    const exp = handLosses(CLS, MASKS, "focal", cfg.otherClassWeight, 6);
    tidy(() => {
      const a = crit.forward([prediction()], gtTensor(), { numMasks: 6 });
      assertClose([a.loss_mask!.item(), a.loss_dice!.item()], [20 * exp.mask, 0.5 * exp.dice], 1e-5, 1e-5);
      let seen = -1;
      const b = crit.forward([prediction()], gtTensor(), {
        numMasks: (n) => {
          seen = n;
          return 2 * n;
        },
      });
      assert.equal(seen, 3);
      assertClose([b.loss_mask!.item()], [20 * exp.mask], 1e-5, 1e-5);
      assertClose([b.loss_ce!.item()], [a.loss_ce!.item()], 1e-7);
    });
  });

  test("deep supervision: aux losses named loss_*_{i}, each matched on its own", () => {
    const preds = [0, 1, 2].map((i) => ({
      cls: pseudoRandom(CLS.length, 40 + i).map((x) => x * 3),
      masks: pseudoRandom(MASKS.length, 50 + i).map((x) => x * 4),
    }));
    const cfg = lossConfig();
    tidy(() => {
      const ps = preds.map((p) => prediction(p.cls, p.masks));
      const l = new SetCriterion(cfg).forward(ps, gtTensor());
      assert.deepEqual(Object.keys(l).sort(), [
        "loss_ce",
        "loss_ce_0",
        "loss_ce_1",
        "loss_dice",
        "loss_dice_0",
        "loss_dice_1",
        "loss_mask",
        "loss_mask_0",
        "loss_mask_1",
      ]);
      preds.forEach((p, i) => {
        const e = handLosses(p.cls, p.masks, "focal", cfg.otherClassWeight);
        const s = i === 2 ? "" : `_${i}`;
        assertClose(
          [l[`loss_ce${s}`]!.item(), l[`loss_mask${s}`]!.item(), l[`loss_dice${s}`]!.item()],
          [2 * e.ce, 20 * e.mask, 0.5 * e.dice],
          1e-5,
          1e-5,
          `prediction ${i}`,
        );
      });
      const only = new SetCriterion(lossConfig({ deepSupervision: false })).forward(ps, gtTensor());
      assert.deepEqual(Object.keys(only).sort(), ["loss_ce", "loss_dice", "loss_mask"]);
      assert.equal(only.loss_ce!.item(), l.loss_ce!.item());
    });
  });

  test("gradients reach the class and mask logits; a fully ignored batch gives zero mask losses", () => {
    tidy(() => {
      const p = prediction(CLS, MASKS, true);
      const l = new SetCriterion(lossConfig()).forward([p], gtTensor());
      l.loss_ce!.add(l.loss_mask!).add(l.loss_dice!).backward();
      assert.ok(p.classLogits.grad!.abs().sum().item() > 0);
      assert.ok(p.masks.grad!.abs().sum().item() > 0);

      const q = prediction(CLS, MASKS, true);
      const ignored = tensor(new Float32Array(B * H * H).fill(IGNORE), [B, H, H]).long();
      const z = new SetCriterion(lossConfig()).forward([q], ignored);
      assert.equal(z.loss_mask!.item(), 0);
      assert.equal(z.loss_dice!.item(), 0);
      // Every query is "other": the weighted mean reduces to the plain mean of −log p(other).
      const ce = mean(
        Array.from({ length: B * N }, (_, i) => -logSoftmax(CLS.slice(i * (K + 1), (i + 1) * (K + 1)))[K]!),
      );
      assertClose([z.loss_ce!.item()], [2 * ce], 1e-5, 1e-5);
      z.loss_ce!.add(z.loss_mask!).add(z.loss_dice!).backward();
      assert.equal(q.masks.grad!.abs().sum().item(), 0);
    });
  });
});

describe("importance sampling (points > 0)", () => {
  // A 8×8 logit map whose zero crossing runs down the middle: uncertainty −|logit| peaks there.
  const R = 2;
  const hw = 8;
  const map = Array.from({ length: R * hw * hw }, (_, i) => {
    const x = i % hw;
    const r = Math.floor(i / (hw * hw));
    return (r === 0 ? 1 : -1) * 3 * (x - 3.5) + 0.01 * ((i * 7) % 5);
  });
  const bilinear = (m: number[], x: number, y: number) => bilinearRef(m, hw, hw, x, y);

  test("seeded; keeps the most uncertain of the oversampled points, then fresh uniform points", () => {
    const P = 10;
    tidy(() => {
      const logits = tensor(Float32Array.from(map), [R, 1, hw, hw]);
      const a = uncertainPointCoords(logits, P, 3, 0.7, new Generator(9));
      const b = uncertainPointCoords(logits, P, 3, 0.7, new Generator(9));
      const c = uncertainPointCoords(logits, P, 3, 0.7, new Generator(10));
      assert.deepEqual(a.shape, [R, P, 2]);
      assert.ok(a.equal(b), "same seed, same points");
      assert.ok(!a.equal(c), "another seed, other points");
      // Reproduce: 30 uniform points per mask, the 7 with the smallest |logit| (most uncertain first), then 3 new.
      const g = new Generator(9);
      const over = arr(rand([R, 30, 2], { generator: g }));
      const fresh = arr(rand([R, 3, 2], { generator: g }));
      const got = arr(a);
      for (let r = 0; r < R; r++) {
        const m = map.slice(r * hw * hw, (r + 1) * hw * hw);
        const u = Array.from(
          { length: 30 },
          (_, k) => -Math.abs(bilinear(m, over[(r * 30 + k) * 2]!, over[(r * 30 + k) * 2 + 1]!)),
        );
        const order = u.map((_, k) => k).sort((i, j) => u[j]! - u[i]!);
        const expected = [
          ...order.slice(0, 7).flatMap((k) => [over[(r * 30 + k) * 2]!, over[(r * 30 + k) * 2 + 1]!]),
          ...fresh.slice(r * 6, r * 6 + 6),
        ];
        assertClose(got.slice(r * P * 2, (r + 1) * P * 2), expected, 1e-7, 0, `mask ${r}`);
        // The kept points are all more uncertain than every dropped one, and sit near the zero crossing.
        const kept = order.slice(0, 7).map((k) => u[k]!);
        const dropped = order.slice(7).map((k) => u[k]!);
        assert.ok(Math.min(...kept) >= Math.max(...dropped));
      }
    });
  });

  test("the criterion with points: reproducible, and equal to matching then losses on one generator stream", () => {
    const cfg = lossConfig({ points: 16 });
    const crit = new SetCriterion(cfg);
    tidy(() => {
      const p = prediction();
      const l1 = crit.forward([p], gtTensor(), { generator: new Generator(4) });
      const l2 = crit.forward([p], gtTensor(), { generator: new Generator(4) });
      const l3 = crit.forward([p], gtTensor(), { generator: new Generator(5) });
      for (const k of ["loss_ce", "loss_mask", "loss_dice"]) assert.equal(l1[k]!.item(), l2[k]!.item(), k);
      assert.notEqual(l1.loss_mask!.item(), l3.loss_mask!.item());
      const g = new Generator(4);
      const targets = semanticTargets(gtTensor(), IGNORE, K);
      const idx = crit.matcher.match(p.classLogits, p.masks, targets, g);
      const raw = crit.losses(p, targets, idx, 3, g);
      assertClose(
        [l1.loss_ce!.item(), l1.loss_mask!.item(), l1.loss_dice!.item()],
        [2 * raw.ce.item(), 20 * raw.mask.item(), 0.5 * raw.dice.item()],
        1e-6,
        1e-6,
      );
    });
  });
});
