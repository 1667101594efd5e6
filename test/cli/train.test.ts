// `dedos train` end to end on a tiny config: data parallel over c10d equals one process with the whole batch,
// SIGKILL at any moment leaves a loadable latest checkpoint that --resume continues, --help teaches.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadCheckpoint } from "../../src/torch/io/load.js";
import { dispose } from "../../src/torch/tensor.js";
import { latestCheckpoint, listCheckpoints } from "../../src/train/checkpoint.js";
import type { TrainConfig } from "../../src/train/config.js";
import { trainCliArgs } from "../helpers.js";
import { writeScenes } from "../synthetic-scenes.js";
import { tinyStaticTrainConfig } from "../tiny-models.js";

const tmp = mkdtempSync(join(tmpdir(), "dedos-cli-train-"));
const data = join(tmp, "data");
before(async () => {
  await writeScenes(data, 0, 8);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[]) =>
  spawnSync(process.execPath, ["dist/src/cli/main.js", ...args], { encoding: "utf8", timeout: 300_000 });

/** A tiny run without Stable Diffusion (static proxy queries, no consistency loss), so no SD folder is needed. */
function configFile(name: string, patch: (c: TrainConfig) => void = () => {}): string {
  const c = tinyStaticTrainConfig({ maxIter: 5, checkpointEvery: 5, keepCheckpoints: 2 });
  patch(c);
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(c));
  return file;
}

function weights(file: string): Map<string, Float32Array> {
  const ck = loadCheckpoint(file);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of ck.tensors) out.set(k, Float32Array.from(t.toTypedArray() as Float32Array));
  dispose([...ck.tensors.values()]);
  return out;
}

describe("dedos train", () => {
  test("2 processes × batch 2 (c10d) give the parameters of 1 process × batch 4 after 5 steps", () => {
    const config = configFile("dp");
    const one = cli(["train", "--config", config, "--data", data, "--out", join(tmp, "one")]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stderr, /effective config/);
    assert.match(one.stderr, /iter 5\/5 {2}loss [\d.]+ .* it\/s {2}ETA/);
    const two = cli(["train", "--config", config, "--data", data, "--out", join(tmp, "two"), "--nproc", "2"]);
    assert.equal(two.status, 0, two.stderr);
    assert.match(two.stderr, /2 processes, batch 2 each/);
    const a = weights(join(tmp, "one", "model_final.safetensors"));
    const b = weights(join(tmp, "two", "model_final.safetensors"));
    let err = 0;
    let moved = 0;
    const init = weights(join(tmp, "one", "checkpoints", "iter_0000005", "model.safetensors"));
    for (const [k, x] of a) {
      const y = b.get(k)!;
      // An attention layer's key bias has an exactly zero gradient (softmax ignores a constant per query):
      // Adam turns the rounding noise of that zero into lr-sized steps, so those rows are not compared.
      const keyBias = k.endsWith("in_proj_bias") ? [x.length / 3, (2 * x.length) / 3] : [0, 0];
      for (let i = 0; i < x.length; i++)
        if (i < keyBias[0]! || i >= keyBias[1]!) err = Math.max(err, Math.abs(x[i]! - y[i]!));
      const z = init.get(k)!;
      for (let i = 0; i < x.length; i++) moved = Math.max(moved, Math.abs(x[i]! - z[i]!));
    }
    assert.ok(err <= 1e-5, `max |1×4 − 2×2| = ${err}`);
    // Both logs show the same losses (rank 0 writes the log).
    const totals = (dir: string) =>
      readFileSync(join(tmp, dir, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { total: number }).total);
    const ta = totals("one");
    const tb = totals("two");
    assert.equal(ta.length, 5);
    for (let i = 0; i < 5; i++)
      assert.ok(Math.abs(ta[i]! - tb[i]!) < 1e-4, `step ${i + 1}: ${ta[i]} vs ${tb[i]}`);
    assert.equal(moved, 0, "model_final equals the last checkpoint's weights");
  });

  test("SIGKILL at any moment leaves a loadable latest checkpoint; --resume continues", async () => {
    const config = configFile("kill", (c) => {
      c.solver.maxIter = 100000;
      c.train.checkpointEvery = 1;
      c.train.keepCheckpoints = 2;
    });
    const out = join(tmp, "kill");
    const ckpts = join(out, "checkpoints");
    for (const delay of [0, 37, 120]) {
      const child = spawn(
        process.execPath,
        [
          "dist/src/cli/main.js",
          ...trainCliArgs(config, data, out, ...(existsSync(ckpts) ? ["--resume"] : [])),
        ],
        { stdio: "ignore" },
      );
      const before = listCheckpoints(ckpts).at(-1) ?? 0;
      const t0 = Date.now();
      while ((listCheckpoints(ckpts).at(-1) ?? 0) <= before && Date.now() - t0 < 120_000) await sleep(10);
      await sleep(delay);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      const folder = latestCheckpoint(ckpts)!;
      assert.ok(folder, "a latest checkpoint exists");
      const state = JSON.parse(readFileSync(join(folder, "state.json"), "utf8")) as { iteration: number };
      assert.ok(state.iteration > before, `progress after kill ${delay}: ${state.iteration}`);
      for (const f of ["model.safetensors", "optimizer.safetensors"]) {
        const ck = loadCheckpoint(join(folder, f));
        assert.ok(ck.tensors.size > 0);
        dispose([...ck.tensors.values()]);
      }
    }
    const r = cli(trainCliArgs(config, data, out, "--resume", "--max-steps", "1"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /resumed from .*iter_\d+ at iteration \d+/);
  });

  test("--help teaches, bad arguments are named", () => {
    const h = cli(["train", "--help"]);
    assert.equal(h.status, 0);
    assert.match(h.stdout, /--set PATH=VALUE/);
    assert.match(h.stdout, /--nproc N/);
    const bad = cli(["train", "--data", data, "--out", join(tmp, "x"), "--set", "solver.lrr=1"]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /solver has no field "lrr"/);
    const missing = cli(["train", "--out", join(tmp, "x")]);
    assert.equal(missing.status, 2);
  });
});
