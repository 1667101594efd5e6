// detectron2's ResizeShortestEdge on raw pixels (src/data/resize.ts): the size rule, torch's nearest rule on
// labels, and the Pillow BILINEAR resize checked byte for byte against Pillow 9.4 on real photos (up, down,
// odd, non-square, the max-size cap): test/data/resize/pillow-resize.json, made by
// scripts/make-test-resize.py.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nearestIndices, resizeBilinear, resizeNearest, shortestEdgeSize } from "../../src/data/resize.js";
import { PILLOW_CASES, pillowSource, sha256 } from "../pillow-cases.js";

describe("ResizeShortestEdge", () => {
  it("computes detectron2's output size (int(x + 0.5), long side capped)", () => {
    assert.deepEqual(shortestEdgeSize(480, 640, 384, 1333), [384, 512]);
    assert.deepEqual(shortestEdgeSize(6, 10, 8), [8, 13]); // 13.33 → 13
    assert.deepEqual(shortestEdgeSize(100, 75, 384), [512, 384]);
    assert.deepEqual(shortestEdgeSize(100, 500, 384, 1333), [267, 1333]); // 384×1920 → scaled by 1333/1920
    assert.deepEqual(shortestEdgeSize(480, 640, 640, 2560), [640, 853]);
    assert.deepEqual(shortestEdgeSize(640, 480, 640, 2560), [853, 640]);
    assert.deepEqual(shortestEdgeSize(100, 3000, 640, 2560), [85, 2560]);
  });

  it("nearest on labels follows torch's rule (float32 scale, ×1 and ×2 exact)", () => {
    // 2×3 → 3×5: x: floor(i·0.6f) = 0,0,1,1,2; y: floor(i·0.6667f) = 0,0,1.
    const lab = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    assert.deepEqual(
      Array.from(resizeNearest(lab, 3, 2, 5, 3)),
      [1, 1, 2, 2, 3, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6],
    );
    // ×2 upsampling copies pairs; downsampling 3 → 2 takes floor(i·1.5) = 0, 1.
    assert.deepEqual(Array.from(resizeNearest(lab, 3, 2, 2, 4)), [1, 2, 1, 2, 4, 5, 4, 5]);
    // float32 matters: 26 → 22 has scale float32(26/22) < 26/22 and 11·scale rounds (in float32) to just
    // below 13, so output 11 reads input 12 (exact math: 13).
    assert.equal(nearestIndices(26, 22)[11], 12);
    assert.equal(nearestIndices(14, 20)[10], 7); // 10·0.7f rounds back to 7.0f
    // 16-bit labels keep their type and values.
    const big = Uint16Array.from([65535, 700, 459, 3]);
    const out = resizeNearest(big, 2, 2, 4, 4);
    assert.ok(out instanceof Uint16Array);
    assert.deepEqual(Array.from(out.subarray(0, 8)), [65535, 65535, 700, 700, 65535, 65535, 700, 700]);
  });

  it("bilinear on images is Pillow's BILINEAR resize", () => {
    // 4 → 2 (scale 2, support 2): weights (3,3,1)/7 and (1,3,3)/7: [10,20,30,40] → [120/7, 230/7] → [17, 33].
    assert.deepEqual(Array.from(resizeBilinear(Uint8Array.from([10, 20, 30, 40]), 4, 1, 1, 2, 1)), [17, 33]);
    // A 5×4 RGB image to 3×7, against Pillow 9.4's Image.resize((3, 7), BILINEAR).
    const src = Uint8Array.from([
      168, 229, 184, 171, 238, 171, 20, 206, 245, 153, 204, 5, 37, 53, 213, 206, 192, 173, 6, 120, 63, 96,
      236, 131, 118, 4, 87, 161, 124, 71, 42, 73, 237, 16, 194, 250, 10, 103, 206, 13, 143, 2, 38, 71, 133,
      118, 36, 98, 196, 35, 57, 146, 50, 179, 145, 104, 206, 53, 141, 33,
    ]);
    const pil = [
      169, 233, 178, 83, 213, 175, 87, 118, 124, 151, 207, 159, 82, 194, 150, 107, 102, 108, 123, 166, 130,
      81, 163, 111, 139, 76, 81, 76, 143, 185, 47, 146, 138, 85, 88, 78, 40, 119, 231, 22, 127, 169, 32, 104,
      79, 108, 68, 138, 105, 85, 162, 69, 117, 96, 151, 36, 80, 157, 59, 158, 92, 125, 107,
    ];
    assert.deepEqual(Array.from(resizeBilinear(src, 5, 4, 3, 3, 7)), pil);
    // Same size is a copy.
    const same = resizeBilinear(src, 5, 4, 3, 5, 4);
    assert.notEqual(same, src);
    assert.deepEqual(same, src);
  });

  it(`real photos resized as detectron2's test mapper does, byte for byte with Pillow (${PILLOW_CASES.length} cases)`, async () => {
    assert.ok(PILLOW_CASES.length >= 10);
    for (const c of PILLOW_CASES) {
      const img = await pillowSource(c);
      assert.deepEqual([img.width, img.height], c.size, c.what);
      const [h, w] = shortestEdgeSize(img.height, img.width, c.shortSide, c.maxSize);
      assert.deepEqual([w, h], c.resized, `${c.what}: output size`);
      const out = resizeBilinear(img.data, img.width, img.height, 3, w, h);
      if (c.bytes) assert.deepEqual(Array.from(out), Array.from(Buffer.from(c.bytes, "hex")), c.what);
      assert.equal(sha256(out), c.sha256, `${c.what}: bytes differ from Pillow's`);
    }
  });
});
