// DEDOS matcher: the assignment solver against brute force, point sampling against hand bilinear values
// (borders, corners, gradient), and the Hungarian matcher's cost against a hand computation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  batchDiceCost,
  batchSigmoidCeCost,
  HungarianMatcher,
  linearSumAssignment,
  pointSample,
} from "../../src/dedos/matcher.js";
import * as F from "../../src/torch/functional.js";
import { Generator, rand, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";
import { bilinearRef } from "./hand-reference.js";

// ---- linear sum assignment ----

/** Minimum total cost over all injective maps of the smaller side into the larger (brute force). */
function bruteForce(cost: number[], rows: number, cols: number): number {
  const at = (i: number, j: number) => cost[i * cols + j]!;
  const small = Math.min(rows, cols);
  const large = Math.max(rows, cols);
  const used = new Array<boolean>(large).fill(false);
  let best = Number.POSITIVE_INFINITY;
  const rec = (k: number, acc: number) => {
    if (k === small) {
      best = Math.min(best, acc);
      return;
    }
    for (let l = 0; l < large; l++) {
      if (used[l]) continue;
      used[l] = true;
      rec(k + 1, acc + (rows <= cols ? at(k, l) : at(l, k)));
      used[l] = false;
    }
  };
  rec(0, 0);
  return best;
}

function checkAssignment(cost: number[], rows: number, cols: number, what: string): void {
  const a = linearSumAssignment(Float64Array.from(cost), rows, cols);
  const n = Math.min(rows, cols);
  assert.equal(a.rows.length, n, what);
  assert.equal(a.cols.length, n, what);
  for (let k = 1; k < n; k++) assert.ok(a.rows[k]! > a.rows[k - 1]!, `${what}: rows increasing`);
  assert.equal(new Set(a.cols).size, n, `${what}: columns distinct`);
  for (let k = 0; k < n; k++) {
    assert.ok(a.rows[k]! >= 0 && a.rows[k]! < rows && a.cols[k]! >= 0 && a.cols[k]! < cols, what);
  }
  if (rows <= cols)
    assert.deepEqual(
      Array.from(a.rows),
      Array.from({ length: n }, (_, i) => i),
      what,
    );
  else
    assert.deepEqual(
      Array.from(a.cols).sort((x, y) => x - y),
      Array.from({ length: n }, (_, i) => i),
      what,
    );
  let total = 0;
  for (let k = 0; k < n; k++) total += cost[a.rows[k]! * cols + a.cols[k]!]!;
  const best = bruteForce(cost, rows, cols);
  assert.ok(Math.abs(total - best) <= 1e-9 * (1 + Math.abs(best)), `${what}: cost ${total}, optimum ${best}`);
}

describe("linearSumAssignment", () => {
  test("scipy's documented example", () => {
    const a = linearSumAssignment(Float64Array.from([4, 1, 3, 2, 0, 5, 3, 2, 2]), 3, 3);
    assert.deepEqual(Array.from(a.rows), [0, 1, 2]);
    assert.deepEqual(Array.from(a.cols), [1, 0, 2]);
  });

  test("matches brute force on 240 random square and rectangular matrices (ties, negative costs)", () => {
    let seed = 7;
    let count = 0;
    for (let rows = 1; rows <= 6; rows++)
      for (let cols = 1; cols <= 8; cols++)
        for (const kind of ["integer", "real", "ties", "halves", "transposed"] as const) {
          const r = kind === "transposed" ? Math.min(cols, 8) : rows;
          const c = kind === "transposed" ? rows : cols;
          const u = pseudoRandom(r * c, seed++);
          const cost =
            kind === "real"
              ? u.map((x) => x * 10)
              : kind === "ties"
                ? u.map((x) => (x > 0 ? 1 : -1))
                : kind === "halves"
                  ? u.map((x) => Math.round(x * 6) / 2)
                  : u.map((x) => Math.round(x * 4));
          checkAssignment(cost, r, c, `${kind} ${r}×${c} (seed ${seed - 1})`);
          count++;
        }
    assert.ok(count >= 200);
  });

  test("all-equal and constant-row matrices", () => {
    checkAssignment(new Array(30).fill(2), 5, 6, "all equal");
    checkAssignment(new Array(30).fill(0), 6, 5, "all zero");
    checkAssignment([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4], 4, 3, "constant rows");
  });

  test("a wide matrix picks the cheapest columns; a tall one the cheapest rows", () => {
    const wide = linearSumAssignment(Float64Array.from([5, 0, 9, 7, 9, -3, 9, 9]), 2, 4);
    assert.deepEqual(Array.from(wide.cols), [0, 1]); // 5 − 3 beats 0 + 9
    const tall = linearSumAssignment(Float64Array.from([5, 9, 0, 7, 9, 9, 9, -3]), 4, 2);
    assert.deepEqual(Array.from(tall.rows), [1, 3]);
    assert.deepEqual(Array.from(tall.cols), [0, 1]);
  });

  test("empty matrices; NaN or infinite costs throw naming the entry", () => {
    const e = linearSumAssignment(new Float64Array(0), 0, 4);
    assert.equal(e.rows.length, 0);
    assert.equal(linearSumAssignment(new Float64Array(0), 3, 0).cols.length, 0);
    assert.throws(
      () => linearSumAssignment(Float64Array.from([0, Number.NaN, 1, 2]), 2, 2),
      /cost\[0\]\[1\] is NaN/,
    );
    assert.throws(
      () => linearSumAssignment(Float64Array.from([0, 1, Number.POSITIVE_INFINITY, 2]), 2, 2),
      /cost\[1\]\[0\] is Infinity/,
    );
    assert.throws(() => linearSumAssignment(Float64Array.from([0, 1, 2]), 2, 2), /3 costs/);
  });
});

// ---- point sampling ----

describe("pointSample", () => {
  const H = 2;
  const W = 3;
  const map = [1, 2, 3, 4, 5, 6];

  test("hand values: centres, midpoints, borders and corners (zero padding)", () => {
    const pts: [number, number, number][] = [
      [0.5, 0.5, 3.5], // ix 1, iy 0.5: (2 + 5)/2
      [1 / 6, 0.25, 1], // pixel (0, 0) centre
      [5 / 6, 0.75, 6], // pixel (1, 2) centre
      [0, 0, 0.25], // corner: only (0, 0) inside, weight 1/4
      [1, 1, 1.5], // corner: only (1, 2) inside, weight 1/4
      [0, 1, 1], // bottom-left: (1, 0) · 1/4
      [1, 0, 0.75], // top-right: (0, 2) · 1/4
      [0.5, 0, 1], // top edge midway: (0, 1) · 1/2
      [0, 0.5, 2.5 / 2], // left edge midway: ((1 + 4)/2) · 1/2
      [1 / 3, 0.5, 3], // ix 0.5, iy 0.5: (1 + 2 + 4 + 5)/4
    ];
    const got = tidy(() =>
      Array.from(
        pointSample(
          tensor(Float32Array.from(map), [1, 1, H, W]),
          tensor(Float32Array.from(pts.flatMap((p) => p.slice(0, 2))), [1, pts.length, 2]),
        ).toTypedArray() as Float32Array,
      ),
    );
    assertClose(
      got,
      pts.map((p) => p[2]),
      1e-6,
      0,
      "point values",
    );
    assertClose(
      got,
      pts.map(([x, y]) => bilinearRef(map, H, W, x, y)),
      1e-6,
      0,
      "reference",
    );
  });

  test("random points, several maps and channels, shared coordinates broadcast over the batch", () => {
    const N = 3;
    const C = 2;
    const h = 4;
    const w = 5;
    const P = 40;
    const data = pseudoRandom(N * C * h * w, 3);
    const u = pseudoRandom(N * P * 2, 4).map((x) => (x + 1) / 2);
    u[0] = 0;
    u[1] = 0;
    u[2] = 1;
    u[3] = 1;
    const ref = (n: number, c: number, x: number, y: number) =>
      bilinearRef(data.slice((n * C + c) * h * w, (n * C + c + 1) * h * w), h, w, x, y);
    tidy(() => {
      const input = tensor(Float64Array.from(data), [N, C, h, w]);
      const own = pointSample(input, tensor(Float64Array.from(u), [N, P, 2]));
      assert.deepEqual(own.shape, [N, C, P]);
      const exp: number[] = [];
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let p = 0; p < P; p++) exp.push(ref(n, c, u[(n * P + p) * 2]!, u[(n * P + p) * 2 + 1]!));
      assertClose(own.toTypedArray() as Float64Array, exp, 1e-12, 0, "per-map points");
      const shared = pointSample(input, tensor(Float64Array.from(u.slice(0, P * 2)), [1, P, 2]));
      const exp2: number[] = [];
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let p = 0; p < P; p++) exp2.push(ref(n, c, u[p * 2]!, u[p * 2 + 1]!));
      assertClose(shared.toTypedArray() as Float64Array, exp2, 1e-12, 0, "shared points");
    });
  });

  test("gradient with respect to the map: the bilinear weights (autograd vs finite differences and by hand)", () => {
    const coords = [0, 0, 0.5, 0.5, 1, 0.9, 0.3, 0.1, 0.77, 1];
    const wts = [1, -2, 0.5, 3, 1.5];
    const fn = ([m]: Tensor[]) =>
      pointSample(m!, tensor(Float64Array.from(coords), [1, 5, 2]))
        .mul(tensor(Float64Array.from(wts), [1, 1, 5]))
        .sum();
    gradcheck(fn, [{ data: map, shape: [1, 1, H, W] }], { name: "pointSample" });
    // d/d map[k] = Σ_p wts[p] · (bilinear weight of pixel k at point p) = Σ_p wts[p] · sample(e_k)(p).
    const grad = tidy(() => {
      const m = tensor(Float64Array.from(map), [1, 1, H, W], { requiresGrad: true });
      fn([m]).backward();
      return Array.from(m.grad!.toTypedArray() as Float64Array);
    });
    const exp = map.map((_, k) => {
      const e = map.map((__, j) => (j === k ? 1 : 0));
      return wts.reduce((s, wp, p) => s + wp * bilinearRef(e, H, W, coords[2 * p]!, coords[2 * p + 1]!), 0);
    });
    assertClose(grad, exp, 1e-12, 0, "gradient");
  });
});

// ---- matcher ----

const softmax = (v: number[]) => {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const bce = (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));

/** The matcher's cost of query logits/mask against a target by hand (full masks of equal size). */
function handCost(
  cls: number[],
  mask: number[],
  label: number,
  tgt: number[],
  w: { costClass: number; costMask: number; costDice: number },
): number {
  const P = mask.length;
  const ce = mask.reduce((s, x, i) => s + bce(x, tgt[i]!), 0) / P;
  const p = mask.map(sigmoid);
  const inter = p.reduce((s, v, i) => s + v * tgt[i]!, 0);
  const dice = 1 - (2 * inter + 1) / (p.reduce((a, b) => a + b, 0) + tgt.reduce((a, b) => a + b, 0) + 1);
  return -w.costClass * softmax(cls)[label]! + w.costMask * ce + w.costDice * dice;
}

describe("HungarianMatcher", () => {
  // Two queries over K = 2 classes + "other", 2×2 masks; two targets (classes 1 and 0).
  const cls = [
    [0.2, 2.0, -1.0],
    [1.5, -0.5, 0.3],
  ];
  const masks = [
    [-2, 3, -1, 2.5],
    [2, -1, 1.5, -3],
  ];
  const labels = [0, 1];
  const tgt = [
    [1, 0, 1, 0],
    [0, 1, 0, 1],
  ];
  const w = { costClass: 2, costMask: 5, costDice: 0.5 };

  test("cost matrix equals the hand computation; the matching is the cheaper permutation", () => {
    const m = new HungarianMatcher({ ...w, points: 0 });
    const exp = [0, 1].flatMap((q) =>
      [0, 1].map((t) => handCost(cls[q]!, masks[q]!, labels[t]!, tgt[t]!, w)),
    );
    tidy(() => {
      const logits = tensor(cls.flat(), [1, 2, 3]);
      const ms = tensor(masks.flat(), [1, 2, 2, 2]);
      const target = { labels: Int32Array.from(labels), masks: tensor(tgt.flat(), [2, 2, 2]) };
      const c = m.costMatrix(logits.select(0, 0), ms.select(0, 0), target);
      assertClose(c.toTypedArray() as Float32Array, exp, 1e-5, 0, "cost");
      const straight = exp[0]! + exp[3]!;
      const cross = exp[1]! + exp[2]!;
      assert.ok(cross < straight, "the case is built so that crossing is cheaper");
      const [r] = m.match(logits, ms, [target]);
      assert.deepEqual(Array.from(r!.pred), [0, 1]);
      assert.deepEqual(Array.from(r!.target), [1, 0]);
      // Tensor labels give the same.
      const [r2] = m.match(logits, ms, [
        { labels: tensor(labels, [2], { dtype: "int64" }), masks: target.masks },
      ]);
      assert.deepEqual(Array.from(r2!.target), [1, 0]);
    });
  });

  test("more queries than targets, an image without targets, and predictions resized to the target size", () => {
    const m = new HungarianMatcher({ costClass: 1, costMask: 1, costDice: 1, points: 0 });
    tidy(() => {
      const logits = tensor(pseudoRandom(2 * 4 * 3, 11), [2, 4, 3]);
      const ms = tensor(
        pseudoRandom(2 * 4 * 2 * 2, 12).map((x) => x * 4),
        [2, 4, 2, 2],
      );
      const tm = tensor([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1], [1, 4, 4]);
      const targets = [
        { labels: Int32Array.from([1]), masks: tm },
        { labels: new Int32Array(0), masks: tensor(new Float32Array(0), [0, 4, 4]) },
      ];
      const r = m.match(logits, ms, targets);
      assert.equal(r[1]!.pred.length, 0);
      assert.equal(r[0]!.pred.length, 1);
      // The resized path equals the cost of the explicitly upsampled masks.
      const c = m.costMatrix(logits.select(0, 0), ms.select(0, 0), targets[0]!);
      const up = F.interpolate(ms.select(0, 0).unsqueeze(0), { size: [4, 4], mode: "bilinear" }).squeeze(0);
      const c2 = m.costMatrix(logits.select(0, 0), up, targets[0]!);
      assertClose(c.toTypedArray() as Float32Array, c2.toTypedArray() as Float32Array, 1e-6, 0, "resized");
      const best = (c.toTypedArray() as Float32Array).reduce((bi, v, i, a) => (v < a[bi]! ? i : bi), 0);
      assert.equal(r[0]!.pred[0], best);
      assert.equal(r[0]!.target[0], 0);
    });
  });

  test("points > 0: the cost on the generator's shared uniform points, reproducibly", () => {
    const P = 50;
    const m = new HungarianMatcher({ costClass: 1, costMask: 2, costDice: 3, points: P });
    tidy(() => {
      const logits = tensor(pseudoRandom(3 * 4, 21), [3, 4]);
      const ms = tensor(
        pseudoRandom(3 * 5 * 6, 22).map((x) => x * 3),
        [3, 5, 6],
      );
      const target = {
        labels: Int32Array.from([2, 0]),
        masks: tensor(
          pseudoRandom(2 * 8 * 8, 23).map((x) => (x > 0 ? 1 : 0)),
          [2, 8, 8],
        ),
      };
      const got = m.costMatrix(logits, ms, target, new Generator(5));
      const again = m.costMatrix(logits, ms, target, new Generator(5));
      assert.ok(got.equal(again), "same seed, same cost");
      const coords = rand([1, P, 2], { generator: new Generator(5) });
      const out = pointSample(ms.unsqueeze(1), coords).squeeze(1);
      const tg = pointSample(target.masks.unsqueeze(1), coords).squeeze(1);
      const probs = F.softmax(logits, -1);
      const exp = batchSigmoidCeCost(out, tg)
        .mul(2)
        .add(batchDiceCost(out, tg).mul(3))
        .sub(probs.indexSelect(1, tensor([2, 0], [2], { dtype: "int64" })));
      assertClose(
        got.toTypedArray() as Float32Array,
        exp.toTypedArray() as Float32Array,
        1e-6,
        0,
        "point cost",
      );
    });
  });

  test("rejects all-zero weights and mismatched batches", () => {
    assert.throws(
      () => new HungarianMatcher({ costClass: 0, costMask: 0, costDice: 0, points: 0 }),
      /all cost/,
    );
    const m = new HungarianMatcher({ costClass: 1, costMask: 1, costDice: 1, points: 0 });
    tidy(() =>
      assert.throws(
        () => m.match(tensor(new Float32Array(6), [1, 2, 3]), tensor(new Float32Array(8), [1, 2, 2, 2]), []),
        /batch/,
      ),
    );
  });
});
