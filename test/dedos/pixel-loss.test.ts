// CAT-Seg's per-pixel loss of the cost-aggregation head against a plain-JS computation (bilinear upsampling,
// one-hot targets, ignored pixels), its gradient, and the one-hot formulation CAT-Seg writes out.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { costAggregationLoss } from "../../src/dedos/pixel-loss.js";
import * as F from "../../src/torch/functional.js";
import { oneHot, type Tensor, tensor, tidy, where } from "../../src/torch/tensor.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";
import { upsample } from "./hand-reference.js";

const IGNORE = 255;
const bce = (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));

/** The loss by hand: `negative` averages over every pixel × class, `exclude` over the labelled ones. */
function hand(
  logits: number[],
  gt: number[],
  B: number,
  T: number,
  h: number,
  w: number,
  H: number,
  W: number,
  mode: "negative" | "exclude",
): number {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const up = upsample(logits.slice((b * T + t) * h * w, (b * T + t + 1) * h * w), h, w, H, W);
      for (let i = 0; i < H * W; i++) {
        const g = gt[b * H * W + i]!;
        if (g === IGNORE && mode === "exclude") continue;
        sum += bce(up[i]!, g === t ? 1 : 0);
        count++;
      }
    }
  return sum / count;
}

describe("costAggregationLoss", () => {
  const B = 2;
  const T = 3;
  const h = 2;
  const H = 4;
  const logits = pseudoRandom(B * T * h * h, 61).map((x) => x * 5);
  const gt = [
    [0, 0, 1, 2, IGNORE, 0, 1, 2, 2, 2, 1, 1, 0, IGNORE, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, IGNORE, 0],
  ].flat();

  for (const mode of ["negative", "exclude"] as const)
    test(`upsampled logits, an ignored pixel (${mode}): the hand computation`, () => {
      tidy(() => {
        const got = costAggregationLoss(
          tensor(Float32Array.from(logits), [B, T, h, h]),
          tensor(gt, [B, H, H], { dtype: "int64" }),
          IGNORE,
          { ignored: mode },
        ).item();
        assertClose([got], [hand(logits, gt, B, T, h, h, H, H, mode)], 1e-6, 1e-5, mode);
      });
    });

  test("default = CAT-Seg: BCE mean against one-hot targets that are all 0 at ignored pixels", () => {
    tidy(() => {
      const x = tensor(Float32Array.from(logits), [B, T, h, h]);
      const g = tensor(gt, [B, H, H], { dtype: "int64" });
      const up = F.interpolate(x, { size: [H, H], mode: "bilinear" });
      const valid = g.ne(IGNORE);
      const target = oneHot(where(valid, g, 0), T)
        .mul(valid.unsqueeze(-1).long())
        .float()
        .permute(0, 3, 1, 2);
      const ref = F.binaryCrossEntropyWithLogits(up, target).item();
      assertClose([costAggregationLoss(x, g.to("uint8"), IGNORE).item()], [ref], 1e-6, 1e-5);
      // With nothing ignored the two modes agree.
      const full = where(valid, g, 1);
      assertClose(
        [costAggregationLoss(x, full, IGNORE).item()],
        [costAggregationLoss(x, full, IGNORE, { ignored: "exclude" }).item()],
        1e-7,
        1e-6,
      );
    });
  });

  test("logits at the label size (no resize), and the gradient (float64, finite differences)", () => {
    const g2 = [0, 1, IGNORE, 2, 1, 1];
    const x2 = pseudoRandom(1 * 3 * 2 * 3, 62).map((v) => v * 3);
    tidy(() => {
      const got = costAggregationLoss(
        tensor(Float32Array.from(x2), [1, 3, 2, 3]),
        tensor(g2, [1, 2, 3], { dtype: "int64" }),
        IGNORE,
      ).item();
      assertClose([got], [hand(x2, g2, 1, 3, 2, 3, 2, 3, "negative")], 1e-6, 1e-5);
    });
    for (const ignored of ["negative", "exclude"] as const)
      gradcheck(
        ([x]: Tensor[]) =>
          costAggregationLoss(x!, tensor(gt, [B, H, H], { dtype: "int64" }), IGNORE, { ignored }),
        [{ data: logits, shape: [B, T, h, h] }],
        { name: `costAggregationLoss ${ignored}` },
      );
  });

  test("an all-ignored batch (exclude) gives 0; labels out of range throw", () => {
    tidy(() => {
      const x = tensor(Float32Array.from(logits), [B, T, h, h], { requiresGrad: true });
      const l = costAggregationLoss(
        x,
        tensor(new Array(B * H * H).fill(IGNORE), [B, H, H], { dtype: "int64" }),
        IGNORE,
        {
          ignored: "exclude",
        },
      );
      assert.equal(l.item(), 0);
      l.backward();
      assert.equal(x.grad!.abs().sum().item(), 0);
      assert.throws(
        () =>
          costAggregationLoss(x, tensor(new Array(B * H * H).fill(3), [B, H, H], { dtype: "int64" }), IGNORE),
        /label 3/,
      );
    });
  });
});
