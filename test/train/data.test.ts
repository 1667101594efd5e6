import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { getBenchmark } from "../../src/data/benchmarks.js";
import { defaultAugmentConfig } from "../../src/train/augment.js";
import { SegmentationDataset, splitSpec } from "../../src/train/dataset.js";
import { writeCocoFixture } from "./data-fixture.js";

const TMP = mkdtempSync(join(tmpdir(), "dedos-train-data-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

describe("split folders", () => {
  it("maps split names onto CAT-Seg's training folders", () => {
    const coco = splitSpec(getBenchmark("cocostuff171"), "train");
    assert.equal(coco.imageDir, "images/train2017");
    assert.equal(coco.gtDir, "annotations_detectron2/train2017");
    const ade = splitSpec(getBenchmark("ade150"), "train");
    assert.equal(ade.imageDir, "images/training");
    assert.equal(ade.gtDir, "annotations_detectron2/training");
    assert.equal(splitSpec(getBenchmark("voc20"), "train").gtDir, "annotations_detectron2/train");
    assert.equal(splitSpec(getBenchmark("voc20"), "train").imageDir, "JPEGImages");
    assert.equal(splitSpec(getBenchmark("pc59"), "train").gtDir, "annotations_detectron2/pc59_train");
    assert.equal(splitSpec(getBenchmark("cocostuff171"), "val").gtDir, "annotations_detectron2/val2017");
    assert.throws(() => splitSpec(getBenchmark("ade150"), "../x"), /bad split name/);
  });
});

describe("SegmentationDataset", () => {
  it("lists the prepared cocostuff171 train split and decodes samples exactly", async () => {
    const root = join(TMP, "ok");
    const { samples } = await writeCocoFixture(root, 3);
    const ds = SegmentationDataset.open({ root });
    assert.equal(ds.length, 3);
    assert.equal(ds.name, "cocostuff171/train");
    assert.equal(ds.ignoreLabel, 255);
    assert.deepEqual(
      ds.items.map((it) => it.image),
      samples.map((s) => join(root, "coco-stuff", "images", "train2017", `${s.name}.jpg`)),
    );
    const s1 = await ds.get(1);
    assert.equal(s1.image.width, samples[1]!.width);
    assert.equal(s1.image.height, samples[1]!.height);
    assert.deepEqual(s1.image.data, samples[1]!.rgb);
    assert.deepEqual(Array.from(s1.label.data), Array.from(samples[1]!.label));
    // The dataset folder itself also works as the root.
    assert.equal(SegmentationDataset.open({ root: join(root, "coco-stuff") }).length, 3);
    // Augmented access gives the crop size.
    const cfg = { ...defaultAugmentConfig(8), colorAug: false };
    const a = await ds.getAugmented(2, cfg, 1, 0);
    assert.equal(a.image.length, 8 * 8 * 3);
    assert.equal(a.label.length, 64);
  });

  it("decodes real JPEG images", async () => {
    const root = join(TMP, "jpeg");
    const { samples } = await writeCocoFixture(root, 1, { jpeg: true });
    const s = await SegmentationDataset.open({ root }).get(0);
    assert.equal(s.image.width, samples[0]!.width);
    assert.equal(s.image.data.length, samples[0]!.rgb.length);
    let maxErr = 0;
    for (let i = 0; i < s.image.data.length; i++)
      maxErr = Math.max(maxErr, Math.abs(s.image.data[i]! - samples[0]!.rgb[i]!));
    assert.ok(maxErr < 80, `JPEG error ${maxErr}`);
  });

  it("names the folder when the split is not prepared", () => {
    assert.throws(
      () => SegmentationDataset.open({ root: join(TMP, "nothing"), split: "train" }),
      (e: Error) => e.message.includes(join("images", "train2017")) && /does not exist/.test(e.message),
    );
  });

  it("names the image whose label is missing, and a label without image", async () => {
    const root = join(TMP, "missing");
    const { gtDir, imageDir, samples } = await writeCocoFixture(root, 3);
    unlinkSync(join(gtDir, `${samples[1]!.name}.png`));
    assert.throws(
      () => SegmentationDataset.open({ root }),
      (e: Error) =>
        e.message.includes(join(imageDir, `${samples[1]!.name}.jpg`)) &&
        e.message.includes(join(gtDir, `${samples[1]!.name}.png`)) &&
        /has no label/.test(e.message),
    );
    const root2 = join(TMP, "orphan");
    const f2 = await writeCocoFixture(root2, 2);
    unlinkSync(join(f2.imageDir, `${f2.samples[0]!.name}.jpg`));
    assert.throws(() => SegmentationDataset.open({ root: root2 }), /label .*000000100000\.png has no image/);
  });

  it("names the file when an image or a label is corrupt", async () => {
    const root = join(TMP, "corrupt");
    const { imageDir, gtDir, samples } = await writeCocoFixture(root, 3);
    const badImage = join(imageDir, `${samples[0]!.name}.jpg`);
    writeFileSync(badImage, Buffer.from("not an image at all"));
    const badLabel = join(gtDir, `${samples[2]!.name}.png`);
    writeFileSync(badLabel, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0]));
    const ds = SegmentationDataset.open({ root });
    await assert.rejects(
      ds.get(0),
      (e: Error) => e.message.includes(badImage) && /cannot decode image/.test(e.message),
    );
    await assert.rejects(ds.get(2), (e: Error) => e.message.includes(badLabel));
    await ds.get(1); // the others are fine
  });

  it("names both files when image and label sizes differ", async () => {
    const root = join(TMP, "size");
    const { gtDir, samples } = await writeCocoFixture(root, 2);
    // Swap in sample 1's label for sample 0.
    const { writeLabelMap } = await import("../../src/data/labels.js");
    await writeLabelMap(join(gtDir, `${samples[0]!.name}.png`), {
      data: samples[1]!.label,
      width: samples[1]!.width,
      height: samples[1]!.height,
    });
    await assert.rejects(
      SegmentationDataset.open({ root }).get(0),
      (e: Error) =>
        e.message.includes(`${samples[0]!.name}.png`) && /label is 18×13 but the image/.test(e.message),
    );
  });
});
