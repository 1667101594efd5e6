import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AugmentConfig, Rng } from "../../src/train/augment.js";
import { SegmentationDataset } from "../../src/train/dataset.js";
import { type Batch, BatchPlan, DataLoader, type DataLoaderOptions } from "../../src/train/loader.js";
import { writeCocoFixture } from "./data-fixture.js";

const TMP = mkdtempSync(join(tmpdir(), "dedos-train-loader-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

const CFG: AugmentConfig = {
  minSize: [12, 14],
  maxSize: 1333,
  crop: [12, 12],
  singleCategoryMaxArea: 0.9,
  colorAug: true,
  flip: true,
  padImage: 128,
  ignoreLabel: 255,
};

interface Plain {
  images: number[];
  labels: number[];
  shape: number[];
  indices: number[];
}

function plain(b: Batch): Plain {
  const out = {
    images: Array.from(b.images.toTypedArray() as Float32Array),
    labels: Array.from(b.labels.toTypedArray() as BigInt64Array, Number),
    shape: b.images.shape,
    indices: b.indices,
  };
  b.images.dispose();
  b.labels.dispose();
  return out;
}

async function take(ds: SegmentationDataset, o: DataLoaderOptions, n: number): Promise<Plain[]> {
  const loader = new DataLoader(ds, { augment: CFG, seed: 11, ...o });
  try {
    const out: Plain[] = [];
    for (let i = 0; i < n; i++) out.push(plain(await loader.next()));
    return out;
  } finally {
    await loader.close();
  }
}

let ds: SegmentationDataset;
before(async () => {
  await writeCocoFixture(join(TMP, "six"), 6);
  ds = SegmentationDataset.open({ root: join(TMP, "six") });
});

describe("BatchPlan", () => {
  it("cuts per-epoch permutations into global batches across epoch boundaries", () => {
    const plan = new BatchPlan(6, 5, 4);
    const p0 = Array.from(plan.permutation(0));
    const p1 = Array.from(plan.permutation(1));
    assert.deepEqual([...p0].sort(), [0, 1, 2, 3, 4, 5]);
    assert.notDeepEqual(p0, p1);
    const a = plan.take({ epoch: 0, position: 0 });
    assert.deepEqual(
      a.samples.map((s) => s.index),
      p0.slice(0, 4),
    );
    assert.deepEqual(a.next, { epoch: 0, position: 4 });
    const b = plan.take(a.next);
    assert.deepEqual(
      b.samples.map((s) => [s.epoch, s.index]),
      [
        [0, p0[4]],
        [0, p0[5]],
        [1, p1[0]],
        [1, p1[1]],
      ],
    );
    assert.deepEqual(b.next, { epoch: 1, position: 2 });
    // Rank 1 of 2 with batch 2 takes positions 2..3 of each global batch of 4.
    const r1 = new BatchPlan(6, 5, 2, 1, 2).take({ epoch: 0, position: 4 });
    assert.deepEqual(
      r1.samples.map((s) => s.index),
      [p1[0], p1[1]],
    );
    assert.deepEqual(r1.next, { epoch: 1, position: 2 });
    assert.throws(() => new BatchPlan(6, 5, 2, 2, 2), /rank 2/);
  });
});

describe("DataLoader", () => {
  it("delivers (B,3,H,W) float32 images and (B,H,W) int64 labels", async () => {
    const loader = new DataLoader(ds, { batchSize: 3, augment: CFG, seed: 1, workers: 1 });
    try {
      const b = await loader.next();
      assert.deepEqual(b.images.shape, [3, 3, 12, 12]);
      assert.equal(b.images.dtype, "float32");
      assert.deepEqual(b.labels.shape, [3, 12, 12]);
      assert.equal(b.labels.dtype, "int64");
      const px = b.images.toTypedArray() as Float32Array;
      assert.ok(px.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
      const labs = Array.from(b.labels.toTypedArray() as BigInt64Array, Number);
      // Fixture labels are k·5 + {0..3} (k = 0..5) or 255.
      assert.ok(labs.every((v) => v === 255 || (v >= 0 && v < 29)));
      assert.equal(b.indices.length, 3);
      assert.deepEqual(b.state, { epoch: 0, position: 3 });
      assert.deepEqual(loader.state(), { epoch: 0, position: 3 });
      b.images.dispose();
      b.labels.dispose();
      // The batch is what the dataset gives for the same (seed, epoch, index).
      const b2 = await loader.next();
      const direct = await ds.getAugmented(b2.indices[1]!, CFG, 1, 0);
      const img = b2.images.toTypedArray() as Float32Array;
      const hw = 144;
      for (let p = 0; p < hw; p++)
        for (let c = 0; c < 3; c++) assert.equal(img[(3 + c) * hw + p], direct.image[3 * p + c]);
      const lab = b2.labels.toTypedArray() as BigInt64Array;
      for (let p = 0; p < hw; p++) assert.equal(Number(lab[hw + p]), direct.label[p]);
      b2.images.dispose();
      b2.labels.dispose();
      const st = loader.stats();
      assert.equal(st.batches, 2);
      assert.ok(st.waitMs >= 0 && st.idleShare >= 0 && st.idleShare <= 1);
    } finally {
      await loader.close();
    }
    await assert.rejects(loader.next(), /closed/);
  });

  it("gives identical batches with 0, 1 and 2 workers", async () => {
    const o = { batchSize: 2, prefetch: 3 };
    const w0 = await take(ds, { ...o, workers: 0 }, 5);
    const w1 = await take(ds, { ...o, workers: 1 }, 5);
    const w2 = await take(ds, { ...o, workers: 2, prefetch: 1 }, 5);
    assert.deepEqual(w1, w0);
    assert.deepEqual(w2, w0);
    // Five batches of two cover epoch 0 (6 samples) and part of epoch 1.
    assert.deepEqual(
      w0
        .slice(0, 3)
        .flatMap((b) => b.indices)
        .sort(),
      [0, 1, 2, 3, 4, 5],
    );
    // A different seed gives different batches.
    const other = await take(ds, { ...o, workers: 0, seed: 12 }, 1);
    assert.notDeepEqual(other[0], w0[0]);
  });

  it("2 ranks × batch 2 see exactly the batches of 1 rank × batch 4", async () => {
    const steps = 4;
    const whole = await take(ds, { batchSize: 4, workers: 0 }, steps);
    const r0 = await take(ds, { batchSize: 2, rank: 0, worldSize: 2, workers: 1 }, steps);
    const r1 = await take(ds, { batchSize: 2, rank: 1, worldSize: 2, workers: 0 }, steps);
    const hw = 144;
    for (let k = 0; k < steps; k++) {
      assert.deepEqual([...r0[k]!.indices, ...r1[k]!.indices], whole[k]!.indices, `step ${k} indices`);
      assert.deepEqual([...r0[k]!.images, ...r1[k]!.images], whole[k]!.images, `step ${k} images`);
      assert.deepEqual([...r0[k]!.labels, ...r1[k]!.labels], whole[k]!.labels, `step ${k} labels`);
      assert.equal(r0[k]!.labels.length, 2 * hw);
    }
  });

  it("resumes from state() exactly where an uninterrupted run goes on", async () => {
    const o = { batchSize: 4, workers: 1 };
    const straight = await take(ds, o, 5);
    const first = new DataLoader(ds, { ...o, augment: CFG, seed: 11 });
    const head: Plain[] = [];
    for (let i = 0; i < 2; i++) head.push(plain(await first.next()));
    const state = first.state();
    await first.close();
    assert.deepEqual(state, { epoch: 1, position: 2 });
    const tail = await take(ds, { ...o, start: JSON.parse(JSON.stringify(state)) }, 3);
    assert.deepEqual([...head, ...tail], straight);
    assert.throws(() => new DataLoader(ds, { ...o, start: { epoch: 0, position: 6 } }), /not valid/);
  });

  it("fails with the file's name on a corrupt image", async () => {
    const root = join(TMP, "bad");
    const { imageDir, samples } = await writeCocoFixture(root, 4);
    const bad = join(imageDir, `${samples[2]!.name}.jpg`);
    writeFileSync(bad, Buffer.from("garbage"));
    const bds = SegmentationDataset.open({ root });
    for (const workers of [0, 1]) {
      const loader = new DataLoader(bds, { batchSize: 4, augment: CFG, workers });
      try {
        await assert.rejects(loader.next(), (e: Error) => e.message.includes(bad), `workers ${workers}`);
        await assert.rejects(loader.next(), (e: Error) => e.message.includes(bad));
      } finally {
        await loader.close();
      }
    }
  });

  it("derives each sample's generator from (seed, epoch, index) only", () => {
    // Same keys, same stream, whatever else was drawn before.
    const a = new Rng(11, 0x53414d50, 3, 4);
    const b = new Rng(11, 0x53414d50, 3, 4);
    new Rng(11, 0x53414d50, 3, 5).float();
    assert.equal(a.float(), b.float());
  });
});
