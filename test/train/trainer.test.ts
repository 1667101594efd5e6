// The training loop on a tiny DEDOS and synthetic scenes: exact resume, losses falling, NaN handling, bad
// data, config overrides, and the schedule / parameter groups.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DedosModel } from "../../src/dedos/model.js";
import { createModel } from "../../src/models/factory.js";
import { loadCheckpoint } from "../../src/torch/io/load.js";
import { dispose, tidy } from "../../src/torch/tensor.js";
import { latestCheckpoint, listCheckpoints } from "../../src/train/checkpoint.js";
import { applyOverrides, type TrainConfig, trainPreset } from "../../src/train/config.js";
import { cosineLrFactor, DEFAULT_SOLVER, setupTrainable } from "../../src/train/solver.js";
import { NonFiniteLossError, train } from "../../src/train/trainer.js";
import { SCENE_CLASSES, writeScenes } from "../synthetic-scenes.js";
import { tinyDedosConfig, tinyDiffusion } from "../tiny-models.js";

const tmp = mkdtempSync(join(tmpdir(), "dedos-train-"));
const data = join(tmp, "data");
const sd = tinyDiffusion(5);
before(async () => {
  await writeScenes(data, 0, 12);
});
after(() => {
  sd.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

export function tinyTrainConfig(patch: (c: TrainConfig) => void = () => {}): TrainConfig {
  const c = trainPreset("vitb_384");
  c.model = tinyDedosConfig();
  c.solver = { ...c.solver, lr: 1e-3, maxIter: 20, gradClip: 1 };
  c.data = { ...c.data, batchSize: 4, minSize: 32, crop: 32, workers: 1, prefetch: 2 };
  c.train = { ...c.train, checkpointEvery: 5, keepCheckpoints: 2, logEvery: 5 };
  patch(c);
  return c;
}

function readWeights(file: string): Map<string, Float32Array> {
  const ck = loadCheckpoint(file);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of ck.tensors) out.set(k, Float32Array.from(t.toTypedArray() as Float32Array));
  dispose([...ck.tensors.values()]);
  return out;
}
function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}
const quiet = () => {};

describe("training loop", () => {
  test("20 steps straight = 10 steps, stop, resume 10 (weights, optimizer, schedule, data, RNG)", async () => {
    const c = tinyTrainConfig();
    const common = { config: c, dataRoot: data, classNames: SCENE_CLASSES, diffusion: sd, log: quiet };
    const a = join(tmp, "straight");
    const ra = await train({ ...common, out: a });
    assert.equal(ra.iteration, 20);
    const b = join(tmp, "resumed");
    const rb1 = await train({ ...common, out: b, stopAfter: 10 });
    assert.equal(rb1.iteration, 10);
    assert.deepEqual(listCheckpoints(join(b, "checkpoints")), [5, 10]);
    assert.equal(existsSync(join(b, "model_final.safetensors")), false);
    const rb2 = await train({ ...common, out: b, resume: true });
    assert.equal(rb2.iteration, 20);
    const err = maxDiff(
      readWeights(join(a, "model_final.safetensors")),
      readWeights(join(b, "model_final.safetensors")),
    );
    assert.ok(err <= 1e-6, `max |straight − resumed| = ${err}`);
    // Metrics log: the resumed run continues the straight one's lines exactly.
    const lines = (dir: string) =>
      readFileSync(join(dir, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { iteration: number; total: number });
    const la = lines(a);
    const lb = lines(b);
    assert.deepEqual(
      lb.map((l) => l.iteration),
      [5, 10, 15, 20],
    );
    for (const [i, l] of la.entries())
      assert.ok(Math.abs(l.total - lb[i]!.total) < 1e-5, `iteration ${l.iteration}`);
    // Keep-last-K and the config saved with the checkpoint.
    assert.deepEqual(listCheckpoints(join(b, "checkpoints")), [15, 20]);
    const state = JSON.parse(
      readFileSync(join(latestCheckpoint(join(b, "checkpoints"))!, "state.json"), "utf8"),
    );
    assert.equal(state.config.solver.lr, 1e-3);
    // The trained weights load as a DEDOS model on their own.
    const m = createModel({ arch: "dedos", weights: join(a, "model_final.safetensors") });
    assert.equal(m.config.maskHead.hiddenDim, 16);
    m.dispose();
  });

  test("the loss falls on synthetic scenes", async () => {
    const c = tinyTrainConfig((c) => {
      c.solver.maxIter = 60;
      c.train.logEvery = 10;
      c.train.checkpointEvery = 1000;
    });
    const out = join(tmp, "falls");
    await train({ config: c, out, dataRoot: data, classNames: SCENE_CLASSES, diffusion: sd, log: quiet });
    const totals = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { total: number }).total);
    assert.equal(totals.length, 6);
    assert.ok(totals[5]! < 0.8 * totals[0]!, `loss ${totals[0]} → ${totals[5]}`);
  });

  test("periodic evaluation on a prepared benchmark is logged with the iteration", async () => {
    const root = join(tmp, "with-val");
    await writeScenes(root, 0, 8);
    await writeScenes(root, 100, 2, "val");
    const c = tinyTrainConfig((c) => {
      c.model.proxy.conditioning = "static"; // inference without SD: the sliding window sees 384² views
      c.solver.maxIter = 4;
      c.train.evalEvery = 2;
      c.train.evalDataset = "cocostuff171";
      c.train.evalLimit = 1;
      c.train.logEvery = 2;
    });
    const out = join(tmp, "eval");
    const lines: string[] = [];
    await train({
      config: c,
      out,
      dataRoot: root,
      classNames: SCENE_CLASSES,
      diffusion: sd,
      log: (l) => lines.push(l),
    });
    const evals = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { iteration: number; eval?: { images: number; mIoU: number } })
      .filter((r) => r.eval);
    assert.deepEqual(
      evals.map((r) => r.iteration),
      [2, 4],
    );
    for (const r of evals) {
      assert.equal(r.eval!.images, 1);
      assert.ok(r.eval!.mIoU >= 0 && r.eval!.mIoU <= 100);
    }
    assert.ok(
      lines.some((l) => /^eval cocostuff171 at iteration 2: 1 image\(s\), mIoU [\d.]+/.test(l)),
      lines.join("\n"),
    );
  });

  test("bf16 autocast (CPU) trains close to float32 but not identically", async () => {
    const run = async (amp: "off" | "bf16") => {
      const c = tinyTrainConfig((c) => {
        c.solver.maxIter = 4;
        c.solver.amp = amp;
        c.train.logEvery = 1;
        c.train.checkpointEvery = 100;
      });
      const out = join(tmp, `amp-${amp}`);
      await train({ config: c, out, dataRoot: data, classNames: SCENE_CLASSES, diffusion: sd, log: quiet });
      return readFileSync(join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { total: number }).total);
    };
    const fp32 = await run("off");
    const bf16 = await run("bf16");
    assert.equal(bf16.length, 4);
    assert.notDeepEqual(bf16, fp32, "autocast changed the arithmetic");
    // Step 1 is the same weights and data: only bf16 rounding separates the two losses.
    assert.ok(Math.abs(bf16[0]! - fp32[0]!) < 0.01 * fp32[0]!, `step 1: ${bf16[0]} vs ${fp32[0]}`);
    // Later steps also differ by the updates: AdamW's first steps are nearly sign(gradient) · lr, so a
    // rounding that flips a tiny gradient moves that weight by a full lr. Close, but not to bf16 precision.
    for (let i = 1; i < 4; i++)
      assert.ok(Math.abs(bf16[i]! - fp32[i]!) < 0.15 * fp32[i]!, `step ${i + 1}: ${bf16[i]} vs ${fp32[i]}`);
    const c = tinyTrainConfig((c) => {
      c.solver.amp = "fp16";
    });
    await assert.rejects(
      train({
        config: c,
        out: join(tmp, "amp-fp16"),
        dataRoot: data,
        classNames: SCENE_CLASSES,
        diffusion: sd,
        log: quiet,
      }),
      /fp16 needs a CUDA device/,
    );
  });

  test("a NaN loss stops the run with a clear error and the last good checkpoint intact", async () => {
    const c = tinyTrainConfig((c) => {
      c.solver.lr = 1e30;
      c.solver.gradClip = 0;
      c.train.checkpointEvery = 1;
    });
    const out = join(tmp, "nan");
    await assert.rejects(
      train({ config: c, out, dataRoot: data, classNames: SCENE_CLASSES, diffusion: sd, log: quiet }),
      (e: Error) => {
        assert.ok(e instanceof NonFiniteLossError, e.message);
        assert.match(e.message, /(loss is (NaN|Infinity|-Infinity)|non-finite values).* at iteration \d+/);
        assert.match(e.message, /last good checkpoint is .*iter_\d+/);
        return true;
      },
    );
    const last = latestCheckpoint(join(out, "checkpoints"))!;
    const w = readWeights(join(last, "model.safetensors"));
    assert.ok(w.size > 0);
  });

  test("bad data: a missing label and a corrupt image are named", async () => {
    const root = join(tmp, "bad");
    const scenes = await writeScenes(root, 0, 3);
    const gt = join(root, "coco-stuff", "annotations_detectron2", "train2017", `${scenes[1]!.name}.png`);
    unlinkSync(gt);
    const c = tinyTrainConfig();
    await assert.rejects(
      train({
        config: c,
        out: join(tmp, "bad-out"),
        dataRoot: root,
        classNames: SCENE_CLASSES,
        diffusion: sd,
        log: quiet,
      }),
      new RegExp(scenes[1]!.name),
    );
    await writeScenes(root, 1, 1);
    const img = join(root, "coco-stuff", "images", "train2017", `${scenes[2]!.name}.jpg`);
    writeFileSync(img, Buffer.from("not an image"));
    // A corrupt sample is skipped up to data.maxBadSamples (test/reliability/training.test.ts); 0 makes the
    // first one an error, which must name the file.
    const strict = tinyTrainConfig((c) => {
      c.data.maxBadSamples = 0;
    });
    await assert.rejects(
      train({
        config: strict,
        out: join(tmp, "bad-out2"),
        dataRoot: root,
        classNames: SCENE_CLASSES,
        diffusion: sd,
        log: quiet,
      }),
      new RegExp(scenes[2]!.name),
    );
    await assert.rejects(
      train({
        config: c,
        out: join(tmp, "bad-out3"),
        dataRoot: join(tmp, "nowhere"),
        classNames: SCENE_CLASSES,
        log: quiet,
      }),
      /does not exist|not found|no such/i,
    );
  });
});

describe("training config and solver", () => {
  test("--set overrides parse as the field's type and name unknown fields", () => {
    const c = trainPreset("vitb_384");
    applyOverrides(c, [
      "solver.lr=1e-4",
      "data.flip=false",
      "model.head=cost-aggregation",
      "model.diffusion.timesteps=50,100",
    ]);
    assert.equal(c.solver.lr, 1e-4);
    assert.equal(c.data.flip, false);
    assert.equal(c.model.head, "cost-aggregation");
    assert.deepEqual(c.model.diffusion.timesteps, [50, 100]);
    assert.throws(() => applyOverrides(c, ["solver.lrr=1"]), /solver has no field "lrr"/);
    assert.throws(() => applyOverrides(c, ["solver.lr=fast"]), /not a number/);
    assert.throws(() => applyOverrides(c, ["data.flip=yes"]), /boolean/);
  });

  test("cosine schedule with linear warmup (detectron2 WarmupCosineLR)", () => {
    const s = { maxIter: 100, warmupIters: 10, warmupFactor: 0.001 };
    assert.equal(cosineLrFactor(0, s), 0.001 * 0.5 * (1 + Math.cos(0)));
    const a = 5 / 10;
    assert.ok(
      Math.abs(cosineLrFactor(5, s) - (0.001 * (1 - a) + a) * 0.5 * (1 + Math.cos((Math.PI * 5) / 100))) <
        1e-15,
    );
    assert.ok(Math.abs(cosineLrFactor(50, s) - 0.5) < 1e-15);
    assert.equal(cosineLrFactor(100, s), 0);
  });

  test("parameter groups: CLIP ×0.01, no weight decay for norms and embeddings, SD absent", () => {
    const model = new DedosModel(tinyDedosConfig());
    const setup = setupTrainable(model, { ...DEFAULT_SOLVER });
    const groupOf = (name: string) => setup.names.findIndex((n) => n.includes(name));
    const g = (name: string) => setup.groups[groupOf(name)]!;
    const clipQ =
      "catseg.sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.in_proj_weight";
    assert.equal(g(clipQ).lr, DEFAULT_SOLVER.lr * 0.01);
    assert.equal(g(clipQ).weightDecay, DEFAULT_SOLVER.weightDecay);
    assert.equal(g("mask_head.predictor.decoder_norm.weight").weightDecay, 0);
    assert.equal(g("mask_head.predictor.query_feat.weight").weightDecay, 0);
    assert.equal(g("proxy.basic_kernel").weightDecay, 0);
    assert.equal(g("mask_head.predictor.class_embed.weight").weightDecay, DEFAULT_SOLVER.weightDecay);
    assert.equal(g("mask_head.predictor.class_embed.weight").lr, DEFAULT_SOLVER.lr);
    assert.equal(groupOf("clip_model.visual.conv1.weight"), -1, "frozen CLIP parts are not in the optimizer");
    assert.equal(
      groupOf("clip_model.transformer.resblocks.0.attn.in_proj_weight"),
      -1,
      "text tower frozen (mask head)",
    );
    tidy(() => dispose(setup.frozenRows.map((r) => r.saved)));
    model.dispose();
  });
});
