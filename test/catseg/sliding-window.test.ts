// The engine-free sliding window (src/catseg/sliding-window.ts) against the libtorch one (segmentTensor): the
// same stand-in model behind both (tensors for segmentTensor, arrays through a per-view adapter), random
// images and text, several geometries. Scores equal within 1e-5, labels equal except at exact ties.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type SegmentationModel, segmentTensor } from "../../src/catseg/inference.js";
import { segmentWithViews, type ViewModel } from "../../src/catseg/sliding-window.js";
import type { WindowPreset, WindowSpec } from "../../src/catseg/window.js";
import type { RgbImage } from "../../src/data/image-decode.js";
import { imageToTensor } from "../../src/data/image-tensor.js";
import * as F from "../../src/torch/functional.js";
import { dispose, noGrad, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { pseudoRandom } from "../helpers.js";

/**
 * A stand-in with the shape of CAT-Seg: views (N, 3, k, k) → 4×4 average pooling → per class a linear map of
 * the three channels (weights and bias read from the text) → (N, T, k/4, k/4) logits (or probabilities).
 */
function standIn(probabilities: boolean): SegmentationModel<Tensor> {
  return {
    padLen: 4,
    scoreKind: probabilities ? "probabilities" : "logits",
    encodeImage: (views) => F.avgPool2d(views, 4),
    head: (feats, text) =>
      tidy(() => {
        const T = text.size(0);
        const w = text.select(1, 0).narrow(1, 0, 3).div(40).transpose(0, 1); // (3, T)
        const b = text.select(1, 0).select(1, 3).mul(2).sub(1); // (T)
        const logits = feats.permute(0, 2, 3, 1).matmul(w).add(b).permute(0, 3, 1, 2); // (N, T, h, w)
        return probabilities
          ? logits.sigmoid().contiguous()
          : logits.contiguous().reshape(-1, T, feats.size(2), feats.size(3));
      }),
  };
}

/** The same stand-in, one view at a time on arrays (what an onnxruntime session is to the array pipeline). */
function asViewModel(model: SegmentationModel<Tensor>, text: Tensor): ViewModel {
  return {
    scoreKind: model.scoreKind,
    runView: (view, k) =>
      noGrad(() =>
        tidy(() => {
          const out = model.head(model.encodeImage(tensor(view, [1, 3, k, k])), text, {}); // (1, T, h, w)
          const [, T, h, w] = out.shape as [number, number, number, number];
          return { data: out.toTypedArray() as Float32Array, classes: T, height: h, width: w };
        }),
      ),
  };
}

function randomImage(width: number, height: number, seed: number): RgbImage {
  const r = pseudoRandom(width * height * 3, seed);
  return { width, height, data: Uint8Array.from(r, (v) => Math.floor(v * 256)) };
}

interface Case {
  what: string;
  size: [number, number];
  T: number;
  window: WindowPreset | WindowSpec;
  probabilities?: boolean;
  opts?: { outRes?: number; shortestSide?: number; maxSize?: number };
}

const CASES: Case[] = [
  {
    what: "small geometry, 3×3 windows, upscaled",
    size: [217, 123],
    T: 7,
    window: { kernel: 96, overlap: 0.5 },
    opts: { outRes: 192, shortestSide: 160, maxSize: 400 },
  },
  {
    what: "CAT-Seg preset (384 / 256 on 640²), upscaled non-square",
    size: [320, 240],
    T: 5,
    window: "catseg",
  },
  {
    what: "DEDOS preset, probabilities, Pillow downscale",
    size: [700, 530],
    T: 3,
    window: "dedos",
    probabilities: true,
  },
];

describe("segmentWithViews (arrays) = segmentTensor (libtorch)", () => {
  for (const c of CASES) {
    it(c.what, async () => {
      const [W, H] = c.size;
      const rgb = randomImage(W, H, 11 + c.T);
      const text = tensor(
        Float32Array.from(pseudoRandom(c.T * 8, c.T), (v) => v * 2 - 1),
        [c.T, 1, 8],
      );
      const model = standIn(c.probabilities ?? false);
      const img = imageToTensor(rgb, "uint8");
      const ref = noGrad(() =>
        segmentTensor(model, img, text, { window: c.window, output: "both", ...c.opts }),
      );
      const got = await segmentWithViews(asViewModel(model, text), rgb, {
        window: c.window,
        output: "both",
        ...c.opts,
      });
      const refScores = ref.scores!.toTypedArray() as Float32Array; // (T, H, W)
      const refLabels = ref.labels!.toTypedArray() as BigInt64Array;
      assert.deepEqual(got.windows, ref.windows);
      assert.equal(got.scores!.length, refScores.length);
      let maxDiff = 0;
      for (let i = 0; i < refScores.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(got.scores![i]! - refScores[i]!));
      assert.ok(maxDiff <= 1e-5, `scores differ by ${maxDiff}`);
      if (process.env.DEDOS_TEST_VERBOSE) console.log(`${c.what}: max score diff ${maxDiff}`);
      let differ = 0;
      const n = W * H;
      for (let p = 0; p < n; p++) {
        const a = Number(refLabels[p]);
        const b = got.labels![p]!;
        if (a === b) continue;
        // Only a tie in the reference's own scores may go the other way.
        assert.equal(refScores[a * n + p], refScores[b * n + p], `pixel ${p}: label ${b}, libtorch ${a}`);
        differ++;
      }
      assert.ok(differ <= n * 1e-4, `${differ} labels differ`);
      dispose([img, text, ref.scores, ref.labels]);
    });
  }

  it("labels only equal the labels of 'both'", async () => {
    const rgb = randomImage(150, 90, 3);
    const text = tensor(
      Float32Array.from(pseudoRandom(4 * 8, 9), (v) => v * 2 - 1),
      [4, 1, 8],
    );
    const vm = asViewModel(standIn(false), text);
    const o = { window: { kernel: 96, overlap: 0.5 }, outRes: 192, shortestSide: 100 } as const;
    const both = await segmentWithViews(vm, rgb, { ...o, output: "both" });
    const labels = await segmentWithViews(vm, rgb, o);
    assert.deepEqual(labels.labels, both.labels);
    assert.equal(labels.scores, undefined);
    text.dispose();
  });
});
