import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { readLabelMap } from "../../src/data/labels.js";
import { readMatFile } from "../../src/data/matlab.js";
import { pc459LabelMap, prepareDataset } from "../../src/data/prepare.js";
import { tempDir } from "../temp-dir.js";

// Files written by SciPy's savemat (scripts/make-test-mat.py), compressed and plain.
const DIR = "test/data/mat";
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Record<string, number[][]>;

describe("MAT-file reader", () => {
  for (const file of ["labelmap_compressed.mat", "labelmap_plain.mat"]) {
    it(`${file}: every matrix with its class, dims and row-major values`, () => {
      const m = readMatFile(readFileSync(join(DIR, file)), file);
      for (const [name, rows] of Object.entries(expected)) {
        const a = m.get(name)!;
        assert.ok(a, name);
        assert.deepEqual(a.dims, [rows.length, rows[0]!.length]);
        assert.deepEqual(Array.from(a.data), rows.flat());
      }
      assert.equal(m.get("LabelMap")!.className, "uint16");
      assert.equal(m.get("extra")!.className, "double");
    });
  }
  it("refuses files that are not MAT-files and reports truncation, naming the file", () => {
    assert.throws(() => readMatFile(Buffer.from("hello"), "x.mat"), /x\.mat: not a MATLAB 5\.0 MAT-file/);
    const bytes = readFileSync(join(DIR, "labelmap_plain.mat"));
    assert.throws(
      () => readMatFile(bytes.subarray(0, bytes.length - 20), "cut.mat"),
      /cut\.mat: .*past the end|cut\.mat: truncated/,
    );
  });
  it("PC-459 labels are LabelMap − 1 as uint16", () => {
    const map = pc459LabelMap(readFileSync(join(DIR, "labelmap_compressed.mat")), "m");
    assert.deepEqual([map.width, map.height], [7, 5]);
    assert.deepEqual(
      Array.from(map.data),
      expected.LabelMap!.flat().map((v) => v - 1),
    );
  });
  it("dedos prepare pc459 writes the 16-bit TIFFs of the val list", async () => {
    const root = tempDir("dedos-pc459-");
    const voc = join(root, "VOCdevkit/VOC2010");
    mkdirSync(join(voc, "trainval"), { recursive: true });
    mkdirSync(join(voc, "JPEGImages"), { recursive: true });
    const names = ["2008_000002", "2008_000003"];
    writeFileSync(join(voc, "pascalcontext_val.txt"), `${names.join("\n")}\n`);
    for (const n of names) {
      copyFileSync(join(DIR, "labelmap_compressed.mat"), join(voc, "trainval", `${n}.mat`));
      await sharp({ create: { width: 7, height: 5, channels: 3, background: "#808080" } })
        .jpeg()
        .toFile(join(voc, "JPEGImages", `${n}.jpg`));
    }
    const r = await prepareDataset("pc459", { root, progress: false, log: () => {}, expected: 2 });
    assert.equal(r.ok, true, JSON.stringify(r.failed));
    assert.equal(r.written, 2);
    const tif = await readLabelMap(join(voc, "annotations_detectron2/pc459_val", `${names[0]}.tif`));
    assert.deepEqual(
      Array.from(tif.data),
      expected.LabelMap!.flat().map((v) => v - 1),
    );
    const again = await prepareDataset("pc459", { root, progress: false, log: () => {}, expected: 2 });
    assert.equal(again.upToDate, 2);
  });
});
