// `dedos prepare --split`: the training split of COCO-Stuff-171 (and ADE-150) from synthetic raw layouts.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { prepareCommand } from "../../src/cli/prepare.js";
import { encodePng, readLabelMap } from "../../src/data/labels.js";
import {
  PREPARE_TRAIN_SIZES,
  preparableSplits,
  prepareDataset,
  resolvePrepareSplits,
} from "../../src/data/prepare.js";
import { SegmentationDataset } from "../../src/train/dataset.js";

const TMP = mkdtempSync(join(tmpdir(), "dedos-prepare-splits-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

const quiet = { progress: false, log: () => {} };

async function writeJpg(file: string, w: number, h: number): Promise<void> {
  await sharp({ create: { width: w, height: h, channels: 3, background: "#406080" } })
    .jpeg()
    .toFile(file);
}

function writeIndexPng(file: string, w: number, h: number, values: number[]): void {
  writeFileSync(file, encodePng({ width: w, height: h, channels: 1, data: Uint8Array.from(values) }));
}

/** Raw stuffthingmaps (COCO id − 1, 255 unlabelled) and the COCO-Stuff-171 train ids they map to. */
const TRAIN_MAPS: { name: string; w: number; h: number; raw: number[]; mapped: number[] }[] = [
  {
    name: "000000000009",
    w: 4,
    h: 2,
    raw: [0, 11, 12, 90, 91, 181, 255, 66],
    mapped: [0, 255, 11, 255, 80, 170, 255, 60],
  },
  {
    name: "000000000025",
    w: 3,
    h: 3,
    raw: [26, 27, 28, 29, 30, 88, 89, 182, 123],
    mapped: [24, 25, 255, 255, 26, 78, 79, 255, 112],
  },
  { name: "000000000030", w: 2, h: 1, raw: [255, 255], mapped: [255, 255] },
];

/** coco-stuff/{images,annotations}/{train2017,val2017} with the maps above for train and one val map. */
async function writeCocoRaw(root: string): Promise<string> {
  const ds = join(root, "coco-stuff");
  for (const d of ["images/train2017", "annotations/train2017", "images/val2017", "annotations/val2017"])
    mkdirSync(join(ds, d), { recursive: true });
  for (const m of TRAIN_MAPS) {
    writeIndexPng(join(ds, "annotations", "train2017", `${m.name}.png`), m.w, m.h, m.raw);
    await writeJpg(join(ds, "images", "train2017", `${m.name}.jpg`), m.w, m.h);
  }
  writeIndexPng(join(ds, "annotations", "val2017", "000000000139.png"), 2, 1, [0, 91]);
  await writeJpg(join(ds, "images", "val2017", "000000000139.jpg"), 2, 1);
  return ds;
}

describe("prepare splits", () => {
  it("lists the splits each benchmark supports, and names them when a split is refused", () => {
    assert.deepEqual(preparableSplits("cocostuff171"), ["val", "train"]);
    assert.deepEqual(preparableSplits("ade150"), ["val", "train"]);
    assert.deepEqual(preparableSplits("voc20"), ["val"]);
    assert.equal(PREPARE_TRAIN_SIZES.cocostuff171, 118287);
    assert.deepEqual(resolvePrepareSplits("cocostuff171", "all"), ["val", "train"]);
    assert.deepEqual(resolvePrepareSplits("cocostuff171", "train"), ["train"]);
    assert.deepEqual(resolvePrepareSplits("pc59", "all"), ["val"]);
    assert.throws(
      () => resolvePrepareSplits("voc20", "train"),
      /the train split of voc20 cannot be prepared \(supported splits of voc20: val, all\)/,
    );
    assert.throws(
      () => resolvePrepareSplits("cocostuff171", "test"),
      /unknown split 'test'.*val, train, all/,
    );
  });

  it("cocostuff171 train2017: exact 182→171 mapping, count check, idempotent and resumable", async () => {
    const root = join(TMP, "coco");
    const ds = await writeCocoRaw(root);
    const out = join(ds, "annotations_detectron2", "train2017");
    const r1 = await prepareDataset("cocostuff171", { ...quiet, root, split: "train", expected: 3 });
    assert.equal(r1.split, "train");
    assert.equal(r1.outDir, out);
    assert.deepEqual([r1.listed, r1.written, r1.upToDate, r1.failed.length], [3, 3, 0, 0]);
    assert.equal(r1.ok, true);
    for (const m of TRAIN_MAPS) {
      const l = await readLabelMap(join(out, `${m.name}.png`));
      assert.deepEqual([l.width, l.height], [m.w, m.h]);
      assert.deepEqual(Array.from(l.data), m.mapped, m.name);
    }
    // the val split is left alone
    assert.ok(!existsSync(join(ds, "annotations_detectron2", "val2017")));

    // a re-run writes nothing and keeps the files
    const before = statSync(join(out, `${TRAIN_MAPS[0]!.name}.png`)).mtimeMs;
    const r2 = await prepareDataset("cocostuff171", { ...quiet, root, split: "train", expected: 3 });
    assert.deepEqual([r2.written, r2.upToDate, r2.ok], [0, 3, true]);
    assert.equal(statSync(join(out, `${TRAIN_MAPS[0]!.name}.png`)).mtimeMs, before);

    // an interrupted run (an output lost, a stale temp file) and a newer input are rebuilt, nothing else
    rmSync(join(out, `${TRAIN_MAPS[1]!.name}.png`));
    writeFileSync(join(out, `.${TRAIN_MAPS[1]!.name}.png.tmp-1234`), "partial");
    const future = new Date(Date.now() + 10_000);
    utimesSync(join(ds, "annotations", "train2017", `${TRAIN_MAPS[2]!.name}.png`), future, future);
    const r3 = await prepareDataset("cocostuff171", { ...quiet, root: ds, split: "train", expected: 3 });
    assert.deepEqual([r3.written, r3.upToDate, r3.ok], [2, 1, true]);
    assert.ok(!existsSync(join(out, `.${TRAIN_MAPS[1]!.name}.png.tmp-1234`)));
    assert.deepEqual(
      Array.from((await readLabelMap(join(out, `${TRAIN_MAPS[1]!.name}.png`))).data),
      TRAIN_MAPS[1]!.mapped,
    );

    // the default count check is COCO-Stuff's train2017 size
    const r4 = await prepareDataset("cocostuff171", { ...quiet, root, split: "train" });
    assert.equal(r4.expected, 118287);
    assert.equal(r4.present, 3);
    assert.equal(r4.ok, false);

    // what prepare writes is what the training set reads
    const train = SegmentationDataset.open({ root, benchmark: "cocostuff171", split: "train" });
    assert.equal(train.length, 3);
    const s = await train.get(1);
    assert.deepEqual(Array.from(s.label.data), TRAIN_MAPS[1]!.mapped);
  });

  it("names a train image that is missing and a corrupt stuffthingmap", async () => {
    const root = join(TMP, "coco-bad");
    const ds = await writeCocoRaw(root);
    rmSync(join(ds, "images", "train2017", `${TRAIN_MAPS[0]!.name}.jpg`));
    writeFileSync(join(ds, "annotations", "train2017", `${TRAIN_MAPS[2]!.name}.png`), "not a png");
    const r = await prepareDataset("cocostuff171", { ...quiet, root, split: "train", expected: 3 });
    assert.equal(r.ok, false);
    assert.equal(r.written, 2);
    assert.ok(r.failed.some((f) => f.file.endsWith(`train2017/${TRAIN_MAPS[0]!.name}.jpg`)));
    assert.ok(
      r.failed.some(
        (f) => f.file.endsWith(`train2017/${TRAIN_MAPS[2]!.name}.png`) && /corrupt PNG/.test(f.error),
      ),
    );
  });

  it("ade150 training: raw − 1 into annotations_detectron2/training", async () => {
    const root = join(TMP, "ade");
    const ds = join(root, "ADEChallengeData2016");
    mkdirSync(join(ds, "annotations", "training"), { recursive: true });
    mkdirSync(join(ds, "images", "training"), { recursive: true });
    writeIndexPng(join(ds, "annotations", "training", "ADE_train_00000001.png"), 3, 1, [0, 1, 150]);
    await writeJpg(join(ds, "images", "training", "ADE_train_00000001.jpg"), 3, 1);
    const r = await prepareDataset("ade150", { ...quiet, root, split: "train", expected: 1 });
    assert.equal(r.ok, true);
    const l = await readLabelMap(join(ds, "annotations_detectron2", "training", "ADE_train_00000001.png"));
    assert.deepEqual(Array.from(l.data), [255, 0, 149]);
    const d = await prepareDataset("ade150", { ...quiet, root, split: "train" });
    assert.equal(d.expected, 20210);
  });

  it("refuses the train split of benchmarks without one", async () => {
    await assert.rejects(
      prepareDataset("pc59", { ...quiet, root: TMP, split: "train" }),
      /prepare pc59: the train split of pc59 cannot be prepared \(supported splits of pc59: val, all\)/,
    );
  });

  it("the command: --split train / all, refused splits exit 2 naming the supported ones", async () => {
    const root = join(TMP, "coco-cli");
    const ds = await writeCocoRaw(root);
    const err = console.error;
    const lines: string[] = [];
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      assert.equal(await prepareCommand(["voc20", "--root", root, "--split", "train"]), 2);
      assert.ok(lines.some((l) => /supported splits of voc20: val, all/.test(l)));
      assert.equal(await prepareCommand(["cocostuff171", "--root", root, "--split", "test"]), 2);
      assert.ok(lines.some((l) => /--split must be one of val, train, all/.test(l)));
      lines.length = 0;
      // the real split sizes are not met by the synthetic copy: exit 1, but both splits are written
      assert.equal(
        await prepareCommand(["cocostuff171", "--root", root, "--split", "all", "--no-progress"]),
        1,
      );
      const text = lines.join("\n");
      assert.match(text, /COCO-Stuff-171 \(val2017\): .*val2017/);
      assert.match(text, /count check: 1 files, expected 5000: MISMATCH/);
      assert.match(text, /COCO-Stuff-171 \(train split\): .*train2017/);
      assert.match(text, /count check: 3 files, expected 118287: MISMATCH/);
      for (const m of TRAIN_MAPS)
        assert.deepEqual(
          Array.from(
            (await readLabelMap(join(ds, "annotations_detectron2", "train2017", `${m.name}.png`))).data,
          ),
          m.mapped,
        );
      assert.deepEqual(
        Array.from(
          (await readLabelMap(join(ds, "annotations_detectron2", "val2017", "000000000139.png"))).data,
        ),
        [0, 80],
      );
      lines.length = 0;
      assert.equal(
        await prepareCommand(["cocostuff171", "--root", root, "--split", "train", "--no-progress"]),
        1,
      );
      assert.match(lines.join("\n"), /listed 3, written 0, up to date 3, failed 0/);
      assert.ok(!lines.join("\n").includes("val2017"));
    } finally {
      console.error = err;
    }
  });
});
