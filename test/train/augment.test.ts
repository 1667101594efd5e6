import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AugmentConfig,
  augmentSample,
  chooseCrop,
  colorAugSSD,
  cropPixels,
  flipHorizontal,
  hsvToRgb8,
  padTo,
  permutation,
  type RandomSource,
  Rng,
  rgbToHsv8,
} from "../../src/train/augment.js";

/** A RandomSource replaying scripted draws; checks each draw is of the expected kind and bound. */
class Scripted implements RandomSource {
  private k = 0;
  constructor(private readonly draws: ({ f: number } | { i: number; n?: number })[]) {}
  float(): number {
    const d = this.draws[this.k++];
    if (!d || !("f" in d))
      throw new Error(`draw ${this.k - 1}: a float was drawn, script has ${JSON.stringify(d)}`);
    return d.f;
  }
  int(n: number): number {
    const d = this.draws[this.k++];
    if (!d || !("i" in d))
      throw new Error(`draw ${this.k - 1}: int(${n}) was drawn, script has ${JSON.stringify(d)}`);
    if (d.n !== undefined) assert.equal(n, d.n, `draw ${this.k - 1}: bound`);
    assert.ok(d.i >= 0 && d.i < n, `draw ${this.k - 1}: ${d.i} outside [0, ${n})`);
    return d.i;
  }
  get used(): number {
    return this.k;
  }
}

/** The U in [0,1) that maps to `v` in uniform(lo, hi). */
const u = (lo: number, hi: number, v: number) => ({ f: (v - lo) / (hi - lo) });

describe("Rng", () => {
  it("is a function of its keys, and its state round-trips", () => {
    const a = new Rng(7, 1, 2);
    const b = new Rng(7, 1, 2);
    const c = new Rng(7, 1, 3);
    const sa = Array.from({ length: 8 }, () => a.nextU32());
    assert.deepEqual(
      Array.from({ length: 8 }, () => b.nextU32()),
      sa,
    );
    assert.notDeepEqual(
      Array.from({ length: 8 }, () => c.nextU32()),
      sa,
    );
    const st = a.getState();
    const x = [a.float(), a.int(10), a.int(3)];
    const r = Rng.fromState(st);
    assert.deepEqual([r.float(), r.int(10), r.int(3)], x);
    assert.throws(() => Rng.fromState([0, 0, 0, 0]), /bad state/);
  });

  it("draws floats in [0,1) and unbiased integers in range", () => {
    const r = new Rng(1);
    const hist = new Array(5).fill(0);
    for (let i = 0; i < 5000; i++) {
      const f = r.float();
      assert.ok(f >= 0 && f < 1);
      hist[r.int(5)]++;
    }
    for (const h of hist) assert.ok(h > 850 && h < 1150, `histogram ${hist}`);
  });

  it("permutation is a permutation", () => {
    const p = Array.from(permutation(50, new Rng(3)));
    assert.deepEqual(
      [...p].sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(
      p,
      Array.from({ length: 50 }, (_, i) => i),
    );
  });
});

describe("RandomCrop_CategoryAreaConstraint", () => {
  // 8×8: columns 0–5 class 1, columns 6–7 class 2, and rows 0–1 of columns 0–3 ignored (255).
  const W = 8;
  const label = new Uint8Array(64);
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) label[y * W + x] = y < 2 && x < 4 ? 255 : x < 6 ? 1 : 2;

  it("retries until more than one category and none ≥ the max area ratio (ignore excluded)", () => {
    // (0,0): class 1 + ignore only → one category once 255 is excluded → rejected.
    // (2,3): class 1 covers 12/16 = 0.75, not < 0.75 → rejected.  (1,4): 8/8 split → kept.
    const rng = new Scripted([
      { i: 0, n: 5 },
      { i: 0, n: 5 },
      { i: 2 },
      { i: 3 },
      { i: 1 },
      { i: 4 },
      { i: 0 },
      { i: 0 },
    ]);
    const win = chooseCrop(label, 8, 8, [4, 4], 0.75, 255, rng);
    assert.deepEqual(win, { y0: 1, x0: 4, h: 4, w: 4 });
    assert.equal(rng.used, 6);
    // The kept window does satisfy the constraint.
    const crop = cropPixels(label, 8, 1, win);
    const ones = crop.filter((v) => v === 1).length;
    const twos = crop.filter((v) => v === 2).length;
    assert.ok(ones > 0 && twos > 0 && Math.max(ones, twos) < 0.75 * (ones + twos));
  });

  it("keeps the 10th window when none qualifies, and is a plain crop at ratio 1", () => {
    const flat = new Uint8Array(64).fill(3);
    const draws = Array.from({ length: 10 }, (_, k) => [{ i: k % 5 }, { i: (k * 2) % 5 }]).flat();
    const rng = new Scripted(draws);
    assert.deepEqual(chooseCrop(flat, 8, 8, [4, 4], 0.5, 255, rng), { y0: 4, x0: 3, h: 4, w: 4 });
    assert.equal(rng.used, 20);
    const plain = new Scripted([
      { i: 0, n: 1 },
      { i: 3, n: 6 },
    ]);
    // Crop taller than the image: h = min(10, 8) = 8, so y0 ∈ [0, 1).
    assert.deepEqual(chooseCrop(flat, 8, 8, [10, 3], 1.0, 255, plain), { y0: 0, x0: 3, h: 8, w: 3 });
  });
});

describe("ColorAugSSDTransform", () => {
  it("brightness then contrast on one pixel (float32, clip, truncate)", () => {
    // (200,100,50) + 10.5 → (210.5, 110.5, 60.5) → (210, 110, 60); × 1.2f → (252.000001, 132.000005, 72.000003)
    // → (252, 132, 72). Draws: brightness coin 1, delta; order coin 1 (contrast first); contrast coin 1, alpha;
    // saturation coin 0; hue coin 0.
    const px = Uint8Array.from([200, 100, 50]);
    const rng = new Scripted([
      { i: 1 },
      u(-32, 32, 10.5),
      { i: 1 },
      { i: 1 },
      u(0.5, 1.5, 1.2),
      { i: 0 },
      { i: 0 },
    ]);
    colorAugSSD(px, 1, rng);
    assert.deepEqual(Array.from(px), [252, 132, 72]);
    assert.equal(rng.used, 7);
  });

  it("saturation then hue on one pixel (OpenCV 8-bit HSV)", () => {
    // RGB (200,100,50) → HSV: V 200, diff 150, S = (150·5222 + 2048) >> 12 = 191, H = (50·819 + 2048) >> 12 = 10.
    // S × 0.5 = 95.5 → 95. HSV (10,95,200) → RGB: h = 10·(6/180) = 0.3333, sector 0, s = 95/255, v = 200/255:
    //   R = v·255 = 200, G = v(1 − s(1 − h))·255 = 150.3 → 150, B = v(1 − s)·255 = 125.5 → 125 (half-even).
    // RGB (200,150,125) → HSV (10, 96, 200); hue + 5 → 15: h = 0.5, G = 200(1 − 0.3765·0.5) = 162.35 → 162,
    //   B = 200(1 − 0.3765) = 124.7 → 125. Result (200,162,125), as cv2 4.6 gives.
    const px = Uint8Array.from([200, 100, 50]);
    const hsv = px.slice();
    rgbToHsv8(hsv);
    assert.deepEqual(Array.from(hsv), [10, 191, 200]);
    // Draws: brightness coin 0; order coin 0 (saturation, hue, contrast); saturation 1, 0.5; hue 1, +5 (randint
    // −18..18 → 23 of 37); contrast 0.
    const rng = new Scripted([
      { i: 0 },
      { i: 0 },
      { i: 1 },
      u(0.5, 1.5, 0.5),
      { i: 1 },
      { i: 23, n: 37 },
      { i: 0 },
    ]);
    colorAugSSD(px, 1, rng);
    assert.deepEqual(Array.from(px), [200, 162, 125]);
  });

  it("HSV → RGB truncates in OpenCV's vector blocks and rounds in the row tail", () => {
    // HSV (0, 3, 5): G = 5·(1 − 3/255)·255·(1/255) = 4.94: the vector path (first 32 pixels of a row) gives 4,
    // the scalar tail gives 5.
    const row = new Uint8Array(33 * 3);
    for (let i = 0; i < 33; i++) row.set([0, 3, 5], 3 * i);
    hsvToRgb8(row, 33);
    assert.deepEqual(Array.from(row.subarray(0, 3)), [5, 4, 4]);
    assert.deepEqual(Array.from(row.subarray(96, 99)), [5, 5, 5]);
  });
});

describe("flip and pad", () => {
  it("flips image and label rows", () => {
    const img = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]); // 3×2 RGB
    flipHorizontal(img, 3, 2, 3);
    assert.deepEqual(Array.from(img), [7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12]);
    const lab = Uint16Array.from([1, 2, 3, 4, 5, 6]);
    flipHorizontal(lab, 3, 2, 1);
    assert.deepEqual(Array.from(lab), [3, 2, 1, 6, 5, 4]);
  });

  it("pads right and bottom with 128 / ignore", () => {
    const lab = Uint8Array.from([1, 2, 3, 4]); // 2×2
    assert.deepEqual(Array.from(padTo(lab, 2, 2, 1, 3, 3, 255)), [1, 2, 255, 3, 4, 255, 255, 255, 255]);
    const img = Uint8Array.from([9, 9, 9]); // 1×1 RGB
    assert.deepEqual(Array.from(padTo(img, 1, 1, 3, 2, 1, 128)), [9, 9, 9, 128, 128, 128]);
  });
});

describe("augmentSample", () => {
  const cfg: AugmentConfig = {
    minSize: 8,
    maxSize: 1333,
    crop: [12, 12],
    singleCategoryMaxArea: 1.0,
    colorAug: false,
    flip: true,
    padImage: 128,
    ignoreLabel: 255,
  };

  it("resizes, crops, flips and pads a small sample", () => {
    // 10×6 image → short side 8: 13×8. Crop [12,12] → window 12×8 (h = min(12, 8)); y0 ∈ [0,1), x0 ∈ [0,2).
    const w = 10;
    const h = 6;
    const image = new Uint8Array(w * h * 3).fill(60);
    const label = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) label[y * w + x] = x < 5 ? 1 : 2;
    const rng = new Scripted([{ i: 0, n: 1 }, { i: 1, n: 2 }, { f: 0.25 }]); // crop (0, 1), then flip (0.25 < 0.5)
    const s = augmentSample(
      { data: image, width: w, height: h },
      { data: label, width: w, height: h },
      cfg,
      rng,
    );
    assert.deepEqual(s.resized, [8, 13]);
    assert.deepEqual(s.crop, { y0: 0, x0: 1, h: 8, w: 12 });
    assert.equal(s.flipped, true);
    assert.equal(s.validHeight, 8);
    assert.equal(s.validWidth, 12);
    assert.equal(s.image.length, 12 * 12 * 3);
    assert.equal(s.label.length, 144);
    // Resized label row: nearest x = floor(i·(10/13)f) → columns 0..6 → 1, 7..12 → 2 (i=6: 4.615 → 4; i=7: 5.38 → 5).
    // Cropped from x0 = 1: [1×6, 2×6], flipped: [2×6, 1×6].
    assert.deepEqual(Array.from(s.label.subarray(0, 12)), [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    // Rows 8..11 are padding.
    assert.ok(s.label.subarray(8 * 12).every((v) => v === 255));
    assert.ok(s.image.subarray(0, 8 * 12 * 3).every((v) => v === 60));
    assert.ok(s.image.subarray(8 * 12 * 3).every((v) => v === 128));
  });

  it("rejects an image and label of different sizes", () => {
    assert.throws(
      () =>
        augmentSample(
          { data: new Uint8Array(12), width: 2, height: 2 },
          { data: new Uint8Array(6), width: 3, height: 2 },
          cfg,
          new Rng(0),
        ),
      /label is 3×2 but the image is 2×2/,
    );
  });
});
