// The test-time resize of the sliding-window inference (src/catseg/inference.ts) is detectron2's: uint8
// images (files, Buffers, raw RGB) go through Pillow's BILINEAR exactly, so the views the model sees equal
// those of the reference pipeline fed the Pillow-resized photo (test/data/resize/pillow-resize.json).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type SegmentationModel, segmentTensor, testTimeResize } from "../../src/catseg/inference.js";
import { imageToTensor } from "../../src/data/image-tensor.js";
import { resizeBilinear, shortestEdgeSize } from "../../src/data/resize.js";
import * as F from "../../src/torch/functional.js";
import { dispose, full, Generator, rand, type Tensor, tensor, tidy, zeros } from "../../src/torch/tensor.js";
import { PILLOW_CASES, pillowSource, sha256 } from "../pillow-cases.js";

/** A stand-in that keeps a copy of every batch of views it is given and returns zero logits. */
function capturingModel(seen: Tensor[]): SegmentationModel<{ n: number }> {
  return {
    padLen: 256,
    encodeImage: (views: Tensor) => {
      seen.push(views.clone().keep());
      return { n: views.size(0) };
    },
    head: (f, text) => zeros([f.n, text.size(0), 6, 6]),
  };
}

/** The (1, 3, h, w) uint8 image as row-major RGB bytes. */
function rgbBytes(x: Tensor): Uint8Array {
  return tidy(() => x.to("uint8").squeeze(0).permute(1, 2, 0).contiguous().toTypedArray() as Uint8Array);
}

describe("test-time resize (detectron2 ResizeShortestEdge 640, max 2560)", () => {
  it("uint8 images: Pillow's bytes for every case (up, down, odd, non-square, capped)", async () => {
    for (const c of PILLOW_CASES) {
      const img = imageToTensor(await pillowSource(c), "uint8");
      const out = testTimeResize(img, c.shortSide, c.maxSize);
      assert.equal(out.dtype, "float32");
      assert.deepEqual(out.shape, [1, 3, c.resized[1], c.resized[0]], c.what);
      assert.equal(sha256(rgbBytes(out)), c.sha256, `${c.what}: not Pillow's bytes`);
      dispose([img, out]);
    }
  });

  it("float images take detectron2's float path (torch bilinear, unrounded); right-sized images pass as they are", () => {
    const x = tidy(() =>
      tensor(
        Float32Array.from({ length: 3 * 5 * 7 }, (_, i) => (i * 37) % 256),
        [1, 3, 5, 7],
      ),
    );
    const out = testTimeResize(x, 10, 2560);
    const want = F.interpolate(x, { size: [10, 14], mode: "bilinear", alignCorners: false });
    assert.deepEqual(out.toTypedArray(), want.toTypedArray());
    assert.ok(Array.from(out.toTypedArray() as Float32Array).some((v) => !Number.isInteger(v)));
    const same = testTimeResize(x.to("uint8"), 5, 2560);
    assert.deepEqual(
      Array.from(same.toTypedArray() as Float32Array),
      Array.from(x.toTypedArray() as Float32Array),
    );
    dispose([x, out, want, same]);
  });

  it("an image too thin for the size rule is refused with its size, not a failure inside interpolate", () => {
    const x = tidy(() => full([1, 3, 1, 20000], 128).to("uint8"));
    assert.throws(() => testTimeResize(x, 640, 2560), /20000×1 px cannot be resized.*would be 2560×0/);
    x.dispose();
  });

  it("segmentTensor on a uint8 photo sees exactly the views of the Pillow-resized photo", async () => {
    const text = tensor(new Float32Array(2 * 4), [2, 1, 4]);
    for (const what of ["COCO photo", "1024×768", "odd 997×761", "tall 301×511"]) {
      const c = PILLOW_CASES.find((p) => p.what.startsWith(what))!;
      const rgb = await pillowSource(c);
      const [h, w] = shortestEdgeSize(rgb.height, rgb.width, 640, 2560);
      const pil = { width: w, height: h, data: resizeBilinear(rgb.data, rgb.width, rgb.height, 3, w, h) };
      assert.equal(sha256(pil.data), c.sha256);
      const [fromPhoto, fromPil]: Tensor[][] = [[], []];
      for (const [input, seen] of [
        [imageToTensor(rgb, "uint8"), fromPhoto],
        [imageToTensor(pil, "float32"), fromPil],
      ] as const) {
        const r = segmentTensor(capturingModel(seen), input, text, { viewBatch: 8 });
        dispose([r.labels, input]);
      }
      assert.equal(fromPhoto.length, 1);
      assert.deepEqual(fromPhoto[0]!.shape, [5, 3, 384, 384]);
      assert.deepEqual(fromPhoto[0]!.toTypedArray(), fromPil[0]!.toTypedArray(), `${c.what}: views differ`);
      dispose([...fromPhoto, ...fromPil]);
    }
    text.dispose();
  });
});

describe("large images: the final resize in bands of rows", () => {
  it("labels from bands equal the labels of the whole resize (up- and downscaled, several class chunks)", () => {
    const text = tensor(new Float32Array(5 * 4), [5, 1, 4]);
    // A stand-in whose logits vary smoothly over the views, so that neighbouring pixels differ.
    const model: SegmentationModel<{ n: number }> = {
      padLen: 256,
      encodeImage: (views: Tensor) => ({ n: views.size(0) }),
      head: (f, t) =>
        tidy(() =>
          rand([f.n, t.size(0), 6, 6], { generator: new Generator(31) })
            .mul(4)
            .sub(2),
        ),
    };
    for (const [h, w] of [
      [700, 910],
      [301, 199],
    ] as const) {
      const image = tidy(() => full([1, 3, h, w], 100).to("uint8"));
      const whole = segmentTensor(model, image, text, { viewBatch: 8, classChunk: 2 });
      // 1 MB: bands of a few rows each.
      const banded = segmentTensor(model, image, text, {
        viewBatch: 8,
        classChunk: 2,
        postprocessBytes: 1 << 20,
      });
      const a = whole.labels!.toTypedArray() as BigInt64Array;
      const b = banded.labels!.toTypedArray() as BigInt64Array;
      assert.deepEqual(banded.labels!.shape, [h, w]);
      let differ = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
      // Float rounding of the two resize orders may only flip exact near-ties.
      assert.ok(differ <= a.length * 1e-4, `${differ} of ${a.length} labels differ`);
      dispose([image, whole.labels, banded.labels]);
    }
    text.dispose();
  });
});
