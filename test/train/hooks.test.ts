// The training loop's contract with its hooks (order, iteration numbers, a throwing hook stops the run),
// the NaN guard's message, and the metrics hook's intervals, means, console line and resume truncation.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MetricsWriter } from "../../src/train/hooks/metrics.js";
import { NanGuard, NonFiniteLossError } from "../../src/train/hooks/nan-guard.js";
import { type Hook, type StepOutput, TrainLoop } from "../../src/train/loop.js";
import { tempDir } from "../temp-dir.js";

function recorder(name: string, calls: string[]): Hook {
  return {
    beforeTrain: (l) => {
      calls.push(`${name}.before@${l.iteration}`);
    },
    afterStep: (l, s) => {
      calls.push(`${name}.after@${l.iteration}:${s.losses.total}`);
    },
    afterTrain: (l) => {
      calls.push(`${name}.end@${l.iteration}`);
    },
  };
}

describe("training loop and hooks", () => {
  test("beforeTrain, then each step and every afterStep in hook order, then afterTrain", async () => {
    const calls: string[] = [];
    const loop = new TrainLoop({
      start: 3,
      maxIter: 10,
      stopAt: 5,
      step: async (i) => {
        calls.push(`step ${i}`);
        return { losses: { total: i }, lr: 0.1 };
      },
      hooks: [recorder("a", calls), recorder("b", calls)],
    });
    await loop.run();
    assert.equal(loop.iteration, 5);
    assert.equal(loop.startIteration, 3);
    assert.deepEqual(calls, [
      "a.before@3",
      "b.before@3",
      "step 3",
      "a.after@4:3",
      "b.after@4:3",
      "step 4",
      "a.after@5:4",
      "b.after@5:4",
      "a.end@5",
      "b.end@5",
    ]);
  });

  test("the NaN guard stops the run before later hooks see the step, naming the last checkpoint", async () => {
    const calls: string[] = [];
    const run = (checkpoint: string | null) =>
      new TrainLoop({
        start: 0,
        maxIter: 10,
        stopAt: 10,
        step: async (i): Promise<StepOutput> =>
          i === 2
            ? { losses: { total: Number.NaN }, lr: 1, nonFinite: "loss is NaN (loss_sem_seg)" }
            : { losses: { total: 1 }, lr: 1 },
        hooks: [new NanGuard(() => checkpoint), recorder("m", calls)],
      }).run();
    await assert.rejects(run("/run/checkpoints/iter_0000002"), (e: Error) => {
      assert.ok(e instanceof NonFiniteLossError);
      assert.equal(
        e.message,
        "loss is NaN (loss_sem_seg) at iteration 3; stopped. The last good checkpoint is " +
          "/run/checkpoints/iter_0000002; lower solver.lr or check the data",
      );
      return true;
    });
    assert.deepEqual(calls, ["m.before@0", "m.after@1:1", "m.after@2:1"]);
    await assert.rejects(
      run(null),
      /^Error: loss is NaN \(loss_sem_seg\) at iteration 3; stopped\. No checkpoint was written yet; lower solver\.lr or check the data$/,
    );
  });

  test("metrics: mean losses every N iterations and at the last, one console line each", async () => {
    const dir = tempDir("dedos-metrics-");
    const file = join(dir, "metrics.jsonl");
    // A resumed run at iteration 4 drops the lines past it.
    writeFileSync(file, ['{"iteration":2}', '{"iteration":4}', '{"iteration":6}', ""].join("\n"));
    const lines: string[] = [];
    const metrics = new MetricsWriter({
      file,
      every: 3,
      rank: 0,
      log: (l) => lines.push(l),
      dataIdleShare: () => 0.25,
    });
    const loop = new TrainLoop({
      start: 4,
      maxIter: 20,
      stopAt: 8,
      step: async (i) => ({ losses: { loss_a: i, loss_a_0: 1, total: 2 * i }, lr: 0.001 }),
      hooks: [metrics],
    });
    await loop.run();
    const records = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, number>);
    assert.deepEqual(
      records.map((r) => r.iteration),
      [2, 4, 6, 8],
    );
    // Iterations 5 and 6 ran steps 4 and 5; iterations 7 and 8 ran steps 6 and 7.
    assert.deepEqual(
      records.slice(2).map((r) => [r.loss_a, r.loss_a_0, r.total, r.lr, r.data_idle]),
      [
        [4.5, 1, 9, 0.001, 0.25],
        [6.5, 1, 13, 0.001, 0.25],
      ],
    );
    assert.deepEqual(metrics.last, { loss_a: 6.5, loss_a_0: 1, total: 13 });
    assert.equal(lines.length, 2);
    assert.match(
      lines[1]!,
      /^iter 8\/20 {2}loss 13\.0000 \(a 6\.500\) {2}lr 1\.00e-3 {2}[\d.]+ it\/s {2}ETA \S+ {2}data idle 25\.0%$/,
    );
  });
});
