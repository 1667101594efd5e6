import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { getBenchmark } from "../../src/data/benchmarks.js";
import { readLabelMap, writeLabelMap } from "../../src/data/labels.js";
import { mapAde150 } from "../../src/data/prepare.js";
import { evaluateShard, listSplit } from "../../src/eval/evaluate.js";
import { ConfusionMatrix, computeMetrics } from "../../src/eval/semseg-metrics.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const TINY = TINY_CATSEG;

describe("evaluation over a prepared split", () => {
  // The three real ADE20K val images with their masks, laid out as `dedos prepare ade150` writes them.
  const root = tempDir("dedos-eval-");
  const ade = join(root, "ADEChallengeData2016");
  let seg: Segmenter;
  let whole: Awaited<ReturnType<typeof evaluateShard>> | undefined;
  before(async () => {
    mkdirSync(join(ade, "images/validation"), { recursive: true });
    mkdirSync(join(ade, "annotations_detectron2/validation"), { recursive: true });
    for (const i of [1, 2, 3]) {
      const name = `ADE_val_0000000${i}`;
      copyFileSync(`assets/ade20k/images/${name}.jpg`, join(ade, "images/validation", `${name}.jpg`));
      const raw = await readLabelMap(`assets/ade20k/annotations/${name}.png`);
      await writeLabelMap(join(ade, "annotations_detectron2/validation", `${name}.png`), {
        ...raw,
        data: mapAde150(raw.data as Uint8Array),
      });
    }
    seg = await Segmenter.create({ config: TINY, weights: "random", seed: 7 });
  });
  after(() => seg.dispose());

  it("the confusion matrix is the sum over images of (prediction, prepared GT) pairs", async () => {
    const spec = getBenchmark("ade150");
    assert.equal(listSplit(spec, root).length, 3);
    const shard = await evaluateShard(seg, "ade150", root, { limit: 2 });
    assert.equal(shard.images, 2);
    assert.deepEqual(shard.failed, []);
    whole = shard;
    const expect = new ConfusionMatrix(150, 255);
    for (const { image, gt } of listSplit(spec, root).slice(0, 2)) {
      const r = await seg.segment(image, shard.classNames);
      expect.add(r.labels, (await readLabelMap(gt)).data);
    }
    assert.deepEqual(shard.conf.toBigInt64Array(), expect.toBigInt64Array());
    assert.equal(computeMetrics(shard.conf).mIoU, computeMetrics(expect).mIoU);
  });
  it("two shards summed equal one process; --limit keeps the first images", async () => {
    const a = await evaluateShard(seg, "ade150", root, { limit: 2, rank: 0, worldSize: 2 });
    const b = await evaluateShard(seg, "ade150", root, { limit: 2, rank: 1, worldSize: 2 });
    assert.equal(a.images + b.images, 2);
    assert.deepEqual(ConfusionMatrix.merge(a.conf, b.conf).toBigInt64Array(), whole!.conf.toBigInt64Array());
  });
  it("dedos eval writes metrics.json and the per-class tables; a missing folder is named", () => {
    const cfg = join(root, "tiny.json");
    writeFileSync(cfg, JSON.stringify(TINY));
    const out = join(root, "report");
    const r = spawnSync(
      process.execPath,
      [
        "dist/src/cli/main.js",
        "eval",
        "--dataset",
        "ade150",
        "--root",
        root,
        "--config",
        cfg,
        "--limit",
        "1",
        "--out",
        out,
      ],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"));
    assert.equal(m.images, 1);
    assert.equal(Object.keys(m.per_class).length, 150);
    assert.equal(readFileSync(join(out, "per_class_iou.csv"), "utf8").trim().split("\n").length, 151);
    assert.match(readFileSync(join(out, "per_class_iou.md"), "utf8"), /^# ade150: 1 images/);
    const bad = spawnSync(
      process.execPath,
      ["dist/src/cli/main.js", "eval", "--dataset", "voc20", "--root", root, "--config", cfg],
      { encoding: "utf8" },
    );
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /voc20: image folder .*JPEGImages does not exist/);
  });
  it("dedos eval --nproc 2 (c10d) gives exactly the single-process metrics", () => {
    const cfg = join(root, "tiny.json");
    writeFileSync(cfg, JSON.stringify(TINY));
    const run = (extra: string[], out: string) =>
      spawnSync(
        process.execPath,
        [
          "dist/src/cli/main.js",
          "eval",
          "--dataset",
          "ade150",
          "--root",
          root,
          "--config",
          cfg,
          "--limit",
          "3",
          "--out",
          out,
          ...extra,
        ],
        { encoding: "utf8" },
      );
    const one = run([], join(root, "one"));
    assert.equal(one.status, 0, one.stderr);
    const two = run(["--nproc", "2"], join(root, "two"));
    assert.equal(two.status, 0, two.stderr + two.stdout);
    assert.match(two.stdout, /\[rank 0\] .*3 image\(s\) over 2 processes/);
    const a = JSON.parse(readFileSync(join(root, "one", "metrics.json"), "utf8"));
    const b = JSON.parse(readFileSync(join(root, "two", "metrics.json"), "utf8"));
    assert.deepEqual(b, a);
  });
});
