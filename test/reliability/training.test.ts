// Training under faults, as a user meets them: `dedos train` runs as child processes of the CLI (exit codes,
// messages), on a tiny config without Stable Diffusion; one case per fault: two runs into one folder (the
// lock), litter of killed writes, SIGINT / SIGTERM, a damaged latest checkpoint on --resume, corrupt
// training samples, a failing checkpoint write (disk full), a malformed config.json, and weights by name in
// train and eval. Each case checks that what earlier runs wrote (checkpoints, metrics lines) is intact.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadCheckpoint } from "../../src/torch/io/load.js";
import { dispose } from "../../src/torch/tensor.js";
import {
  checkpointName,
  LAST_CHECKPOINT,
  latestCheckpoint,
  listCheckpoints,
  readCheckpointState,
} from "../../src/train/checkpoint.js";
import { type TrainConfig, trainPreset, upgradeTrainConfig } from "../../src/train/config.js";
import { SegmentationDataset } from "../../src/train/dataset.js";
import { DataLoader, type SkippedSample, TooManyBadSamplesError } from "../../src/train/loader.js";
import { acquireRunLock, RunFolderLockedError } from "../../src/train/run-folder.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { checkConfigShape } from "../../src/util/config-shape.js";
import { TEMP_MARKER } from "../../src/util/fs.js";
import { trainCliArgs } from "../helpers.js";
import { writeScenes } from "../synthetic-scenes.js";
import { tempDir } from "../temp-dir.js";
import { tinyStaticTrainConfig } from "../tiny-models.js";
import { sha256, startServer, type TestServer } from "../weights/server.js";

const dir = tempDir("dedos-reliability-training-");
const data = join(dir, "data");
const MAIN = join(PACKAGE_ROOT, "dist/src/cli/main.js");

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Children still running; a failing case must not leave a training run behind (killed after the file). */
const running = new Set<ChildProcess>();
after(() => {
  for (const c of running) c.kill("SIGKILL");
});

/** A started CLI child; `done` resolves with its outcome (never blocks this process: a server may answer). */
function start(args: string[], o: { env?: NodeJS.ProcessEnv; fileSizeKb?: number } = {}) {
  const env = { ...process.env, ...o.env };
  // `ulimit -f` makes writes past the size fail with EFBIG (Node ignores SIGXFSZ): a stand-in for ENOSPC.
  const child: ChildProcess =
    o.fileSizeKb === undefined
      ? spawn(process.execPath, [MAIN, ...args], { env })
      : spawn("sh", ["-c", `ulimit -f ${o.fileSizeKb} && exec "$0" "$@"`, process.execPath, MAIN, ...args], {
          env,
        });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const done = new Promise<Run>((resolve) =>
    child.once("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { child, done, stderr: () => stderr };
}
const cli = (args: string[], o: { env?: NodeJS.ProcessEnv; fileSizeKb?: number } = {}) => start(args, o).done;

/** A tiny run without Stable Diffusion; checkpoints every iteration, a metrics line every iteration. */
function configFile(name: string, patch: (c: TrainConfig) => void = () => {}): string {
  const c = tinyStaticTrainConfig({ maxIter: 2, checkpointEvery: 1, keepCheckpoints: 5 });
  patch(c);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(c));
  return file;
}

const trainArgs = (config: string, out: string, ...more: string[]) =>
  trainCliArgs(config, data, out, ...more);

const metricsLines = (out: string) => readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n");
const iterations = (out: string) =>
  metricsLines(out).map((l) => (JSON.parse(l) as { iteration: number }).iteration);
const temporaries = (out: string) =>
  [out, join(out, "checkpoints")].flatMap((d) => readdirSync(d).filter((n) => n.includes(TEMP_MARKER)));

/** Asserts that a checkpoint folder loads: state.json, model and optimizer files. */
function assertLoadable(folder: string): number {
  const st = readCheckpointState(folder);
  for (const f of ["model.safetensors", "optimizer.safetensors"]) {
    const ck = loadCheckpoint(join(folder, f));
    assert.ok(ck.tensors.size > 0, f);
    dispose([...ck.tensors.values()]);
  }
  return st.iteration;
}

async function waitFor(what: string, ok: () => boolean, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const short = configFile("short");
const long = configFile("long", (c) => {
  c.solver.maxIter = 100000;
});
/** A finished 2-iteration run (checkpoints iter_1 and iter_2, metrics lines 1 and 2), copied by the cases. */
const base = join(dir, "base");
let baseMetrics: string[] = [];
const copyOfBase = (name: string) => {
  const out = join(dir, name);
  cpSync(base, out, { recursive: true });
  return out;
};

before(async () => {
  await writeScenes(data, 0, 8);
  await writeScenes(data, 100, 1, "val");
  const r = await cli(trainArgs(short, base));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(listCheckpoints(join(base, "checkpoints")), [1, 2]);
  baseMetrics = metricsLines(base);
  assert.equal(baseMetrics.length, 2);
});

describe("training under faults", () => {
  test("1. a second run into the same --out is refused while the first lives; a stale lock is taken over", async () => {
    const out = join(dir, "locked");
    const first = start(trainArgs(long, out));
    const ckpts = join(out, "checkpoints");
    await waitFor("the first run's checkpoint", () => listCheckpoints(ckpts).length > 0);
    const lock = JSON.parse(readFileSync(join(out, ".lock"), "utf8")) as { pid: number; host: string };
    assert.equal(lock.pid, first.child.pid);
    assert.equal(lock.host, hostname());

    const second = await cli(trainArgs(long, out, "--resume"));
    assert.equal(second.status, 1, second.stderr);
    assert.ok(
      second.stderr.includes(
        `${out} is in use by another training run (pid ${first.child.pid} on ${hostname()}`,
      ),
      second.stderr,
    );
    assert.doesNotMatch(second.stderr, /effective config|resumed from/, "the second run did nothing");

    first.child.kill("SIGTERM");
    const r = await first.done;
    assert.equal(r.status, 143, r.stderr);
    assert.equal(existsSync(join(out, ".lock")), false, "released at exit");
    const latest = latestCheckpoint(ckpts)!;
    const n = assertLoadable(latest);
    assert.deepEqual(
      iterations(out),
      Array.from({ length: n }, (_, i) => i + 1),
      "metrics lines intact",
    );

    // A lock whose pid is not alive on this host: taken over with a note (the run continues normally).
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    writeFileSync(join(out, ".lock"), JSON.stringify({ pid: dead, host: hostname() }));
    const third = await cli(trainArgs(long, out, "--resume", "--max-steps", "1"));
    assert.equal(third.status, 0, third.stderr);
    assert.ok(
      third.stderr.includes(
        `note: took over the stale lock ${join(out, ".lock")}: pid ${dead} is not running`,
      ),
      third.stderr,
    );
    assert.equal(existsSync(join(out, ".lock")), false);
    assert.equal(readCheckpointState(latestCheckpoint(ckpts)!).iteration, n + 1);

    // In-process: a lock of another host cannot be checked: refused, naming the file to delete.
    writeFileSync(join(out, ".lock"), JSON.stringify({ pid: 1, host: "elsewhere" }));
    assert.throws(
      () => acquireRunLock(out, () => {}),
      (e: Error) =>
        e instanceof RunFolderLockedError &&
        e.message.includes("pid 1 on elsewhere") &&
        e.message.includes(`delete ${join(out, ".lock")}`),
    );
  });

  test("2. what killed checkpoint writes left (.tmp-* folders) is removed at start, with a note", async () => {
    const out = copyOfBase("litter");
    const tmpFolder = join(out, "checkpoints", ".tmp-iter_0000003-99999");
    mkdirSync(tmpFolder);
    writeFileSync(join(tmpFolder, "model.safetensors"), Buffer.alloc(100));
    const tmpFile = join(out, `.metrics.jsonl${TEMP_MARKER}99999-0badf00d`);
    writeFileSync(tmpFile, "half a line");
    const r = await cli(trainArgs(short, out, "--resume", "--set", "solver.maxIter=3"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /note: removed what interrupted writes left behind: /);
    assert.ok(r.stderr.includes(tmpFolder) && r.stderr.includes(tmpFile), r.stderr);
    assert.deepEqual(temporaries(out), []);
    assert.deepEqual(listCheckpoints(join(out, "checkpoints")), [1, 2, 3]);
    assert.deepEqual(metricsLines(out).slice(0, 2), baseMetrics, "earlier metrics lines intact");
  });

  test("3. SIGINT stops between steps: exit 130, the checkpoint of the last step complete", async () => {
    const out = join(dir, "sigint");
    const run = start(trainArgs(long, out));
    const ckpts = join(out, "checkpoints");
    await waitFor("two checkpoints", () => listCheckpoints(ckpts).length >= 2);
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stderr, /SIGINT received: stopping after the current step/);
    const m =
      /interrupted by SIGINT at iteration (\d+)\/100000; the newest checkpoint is (\S+) \(continue with --resume\)/.exec(
        r.stderr,
      );
    assert.ok(m, r.stderr);
    const n = Number(m[1]);
    // The last step's hooks ran to the end: its checkpoint (every iteration here) is in place and named.
    assert.equal(m[2], join(ckpts, checkpointName(n)));
    assert.equal(latestCheckpoint(ckpts), m[2]);
    assert.equal(readFileSync(join(ckpts, LAST_CHECKPOINT), "utf8").trim(), checkpointName(n));
    assert.equal(assertLoadable(m[2]!), n);
    assert.deepEqual(temporaries(out), [], "no half checkpoint");
    assert.deepEqual(
      iterations(out),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.equal(existsSync(join(out, ".lock")), false);
  });

  test("4. --resume with a damaged latest checkpoint names the file; --resume-fallback takes the newest intact", async () => {
    // Truncated model file of the latest checkpoint.
    const out = copyOfBase("damaged");
    const ckpts = join(out, "checkpoints");
    const model = join(ckpts, "iter_0000002", "model.safetensors");
    truncateSync(model, 1000);
    const more = ["--resume", "--set", "solver.maxIter=3"];
    const refused = await cli(trainArgs(short, out, ...more));
    assert.equal(refused.status, 1, refused.stderr);
    assert.ok(
      refused.stderr.includes(`the latest checkpoint ${join(ckpts, "iter_0000002")} is damaged: ${model}`),
    );
    assert.ok(
      refused.stderr.includes(
        `The newest intact checkpoint is ${join(ckpts, "iter_0000001")}; pass --resume-fallback to continue from it`,
      ),
      refused.stderr,
    );
    assert.deepEqual(listCheckpoints(ckpts), [1, 2], "nothing changed");
    assert.deepEqual(metricsLines(out), baseMetrics);

    const fell = await cli(trainArgs(short, out, ...more, "--resume-fallback"));
    assert.equal(fell.status, 0, fell.stderr);
    assert.ok(
      fell.stderr.includes(`continuing from ${join(ckpts, "iter_0000001")}, the newest intact one`),
      fell.stderr,
    );
    assert.match(fell.stderr, /resumed from .*iter_0000001 at iteration 1/);
    assert.ok(
      existsSync(join(ckpts, "iter_0000002.damaged", "model.safetensors")),
      "the damaged one is kept aside",
    );
    assert.deepEqual(listCheckpoints(ckpts), [1, 2, 3]);
    assert.equal(assertLoadable(latestCheckpoint(ckpts)!), 3);
    assert.deepEqual(metricsLines(out)[0], baseMetrics[0]);

    // An unreadable state.json, through the CLI: named, exit 1 (no older intact one: none to suggest).
    const garbled = copyOfBase("garbled");
    for (const i of [1, 2])
      writeFileSync(join(garbled, "checkpoints", checkpointName(i), "state.json"), "{ half");
    const g = await cli(trainArgs(short, garbled, ...more));
    assert.equal(g.status, 1, g.stderr);
    assert.ok(
      g.stderr.includes(`${join(garbled, "checkpoints", "iter_0000002", "state.json")}: unreadable`),
      g.stderr,
    );
    assert.match(g.stderr, /No older checkpoint is intact either/);

    // A negative or fractional iteration is refused, naming the file.
    const st = join(out, "checkpoints", "iter_0000001", "state.json");
    const json = JSON.parse(readFileSync(st, "utf8")) as Record<string, unknown>;
    for (const bad of [-3, 1.5]) {
      writeFileSync(st, JSON.stringify({ ...json, iteration: bad }));
      assert.throws(
        () => readCheckpointState(join(out, "checkpoints", "iter_0000001")),
        (e: Error) => e.message === `${st}: "iteration" must be a non-negative integer, got ${bad}`,
      );
    }

    // The kill gap: a complete iter_* folder the pointer does not name yet (killed between the rename and
    // the pointer's update) is the latest; so is the newest complete one when the pointer is missing.
    const gap = join(dir, "gap");
    const folder = (i: number, savedAt: number) => {
      mkdirSync(join(gap, checkpointName(i)), { recursive: true });
      writeFileSync(join(gap, checkpointName(i), "state.json"), JSON.stringify({ iteration: i, savedAt }));
    };
    folder(1, 1000);
    assert.equal(
      latestCheckpoint(gap),
      join(gap, "iter_0000001"),
      "the first checkpoint, before its pointer",
    );
    writeFileSync(join(gap, LAST_CHECKPOINT), "iter_0000001\n");
    folder(2, 2000);
    assert.equal(
      latestCheckpoint(gap),
      join(gap, "iter_0000002"),
      "renamed into place, pointer not yet updated",
    );
    writeFileSync(join(gap, LAST_CHECKPOINT), "iter_0000009\n");
    assert.equal(latestCheckpoint(gap), join(gap, "iter_0000002"), "a pointer naming a folder that is gone");
    // An earlier run's higher iteration does not outrank the checkpoint saved after it.
    folder(50, 500);
    writeFileSync(join(gap, LAST_CHECKPOINT), "iter_0000002\n");
    assert.equal(latestCheckpoint(gap), join(gap, "iter_0000002"));
    mkdirSync(join(gap, "iter_0000060")); // a folder without state.json is not complete
    assert.equal(latestCheckpoint(gap), join(gap, "iter_0000002"));
  });

  test("5. corrupt training samples are skipped with a warning and counted; too many stop the run", async () => {
    const root = join(dir, "bad-data");
    const scenes = await writeScenes(root, 0, 8);
    const gtDir = join(root, "coco-stuff", "annotations_detectron2", "train2017");
    const badLabel = join(gtDir, `${scenes[3]!.name}.png`);
    writeFileSync(badLabel, Buffer.from("not a png"));
    const out = join(dir, "skip");
    const r = await cli(["train", "--config", short, "--data", root, "--out", out]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(`warning: skipped a training sample that failed to load: ${badLabel}`),
      r.stderr,
    );
    assert.match(r.stderr, /\(1 bad sample so far, data\.maxBadSamples allows 10\)/);
    assert.match(r.stderr, /iter 2\/2 .* {2}skipped 1 sample$/m);
    const last = JSON.parse(metricsLines(out).at(-1)!) as { skipped_samples: number };
    assert.equal(last.skipped_samples, 1);
    assert.match(r.stdout, /; 1 sample\(s\) skipped/);

    // Two distinct bad samples with data.maxBadSamples=1: the run stops, naming the data and the setting.
    const badImage = join(root, "coco-stuff", "images", "train2017", `${scenes[6]!.name}.jpg`);
    writeFileSync(badImage, Buffer.from("not an image"));
    const out2 = join(dir, "too-many");
    const r2 = await cli([
      "train",
      "--config",
      short,
      "--data",
      root,
      "--out",
      out2,
      "--set",
      "data.maxBadSamples=1",
    ]);
    assert.equal(r2.status, 1, r2.stderr);
    assert.match(
      r2.stderr,
      /too many bad training samples: 2 failed to load, more than maxBadSamples \(1\); the last: /,
    );
    assert.ok(r2.stderr.includes(badLabel) && r2.stderr.includes(badImage), r2.stderr);
    assert.match(r2.stderr, /--set data\.maxBadSamples=N/);
    assert.equal(existsSync(join(out2, ".lock")), false, "released on error");

    // The loader itself: replacements keep batches full and deterministic, with or without worker threads,
    // and a failing sample does not stop the pool (the batches after it come).
    const ds = SegmentationDataset.open({ root });
    const cfg = {
      minSize: 32,
      maxSize: 1333,
      crop: [32, 32] as [number, number],
      singleCategoryMaxArea: 1,
      colorAug: true,
      flip: true,
      padImage: 128,
      ignoreLabel: 255,
    };
    const batches: Float32Array[][] = [];
    for (const workers of [0, 1]) {
      const skips: SkippedSample[] = [];
      const loader = new DataLoader(ds, {
        batchSize: 4,
        augment: cfg,
        workers,
        maxBadSamples: 0.25, // 2 of 8
        onSkip: (s) => skips.push(s),
      });
      try {
        const got: Float32Array[] = [];
        for (let k = 0; k < 4; k++) {
          const b = await loader.next();
          assert.deepEqual(b.images.shape, [4, 3, 32, 32]);
          got.push(Float32Array.from(b.images.toTypedArray() as Float32Array));
          dispose([b.images, b.labels]);
        }
        batches.push(got);
        assert.deepEqual(
          [...new Set(skips.map((s) => s.index))].sort(),
          [3, 6],
          `workers ${workers}: ${skips.map((s) => s.error).join("; ")}`,
        );
        assert.equal(loader.stats().badSamples, 2);
        assert.equal(loader.stats().skipped, skips.length);
      } finally {
        await loader.close();
      }
    }
    assert.deepEqual(batches[0], batches[1], "0 and 1 workers give the same batches");
    const strict = new DataLoader(ds, { batchSize: 4, augment: cfg, workers: 1, maxBadSamples: 1 });
    try {
      await assert.rejects(
        (async () => {
          for (let k = 0; k < 4; k++) {
            const b = await strict.next();
            dispose([b.images, b.labels]);
          }
        })(),
        (e: Error) => e instanceof TooManyBadSamplesError && /2 failed to load/.test(e.message),
      );
    } finally {
      await strict.close();
    }
  });

  test("6. a checkpoint write failing (disk full) ends the run naming the file; the previous checkpoint stays", async () => {
    // ENOSPC cannot be had without a full file system; `ulimit -f` makes the model file's write fail with
    // EFBIG part way, through the same path: the error is named, the temporary folder removed, nothing renamed.
    const out = copyOfBase("full");
    const ckpts = join(out, "checkpoints");
    const r = await cli(trainArgs(short, out, "--resume", "--set", "solver.maxIter=4", "--max-steps", "1"), {
      fileSizeKb: 1024, // the tiny model's file is ~7 MB; config, metrics and state.json are a few kB
    });
    assert.equal(r.status, 1, r.stderr);
    const file = join(ckpts, "iter_0000003", "model.safetensors");
    assert.ok(
      r.stderr.includes(
        `cannot write checkpoint file ${file}: EFBIG: file too large, write (the file size limit was reached); the previous checkpoint ${join(ckpts, "iter_0000002")} is intact`,
      ),
      r.stderr,
    );
    assert.deepEqual(listCheckpoints(ckpts), [1, 2]);
    assert.equal(latestCheckpoint(ckpts), join(ckpts, "iter_0000002"));
    assert.equal(assertLoadable(join(ckpts, "iter_0000002")), 2);
    assert.deepEqual(temporaries(out), [], "the temporary folder is removed");
    assert.deepEqual(metricsLines(out).slice(0, 2), baseMetrics);
    assert.equal(existsSync(join(out, ".lock")), false);
  });

  test("7. a config.json of the wrong shape is refused field by field; an earlier run's is upgraded", async () => {
    const c = JSON.parse(readFileSync(short, "utf8")) as Record<string, Record<string, unknown>>;
    delete c.data!.batchSize;
    c.solver!.lrr = 1;
    c.train!.seed = "zero";
    const bad = join(dir, "bad-config.json");
    writeFileSync(bad, JSON.stringify(c));
    const r = await cli(trainArgs(bad, join(dir, "never")));
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes(`${bad}: not a valid config:`), r.stderr);
    assert.match(r.stderr, /data\.batchSize: missing/);
    assert.match(r.stderr, /solver\.lrr: unknown field/);
    assert.match(r.stderr, /train\.seed: expected number, got string/);
    assert.doesNotMatch(r.stderr, /Cannot read properties/);
    assert.equal(existsSync(join(dir, "never")), false, "nothing was written");
    const notJson = join(dir, "not-json.json");
    writeFileSync(notJson, "{");
    const r2 = await cli(trainArgs(notJson, join(dir, "never")));
    assert.equal(r2.status, 1);
    assert.ok(r2.stderr.includes(`${notJson}: cannot read the training config`), r2.stderr);
    // A config.json saved before data.maxBadSamples existed passes (the field gets its default).
    const old = JSON.parse(readFileSync(join(base, "config.json"), "utf8")) as {
      data: Record<string, unknown>;
    };
    delete old.data.maxBadSamples;
    const up = checkConfigShape(upgradeTrainConfig(old), trainPreset("vitb_384"), "old.json");
    assert.equal(up.data.maxBadSamples, 10);
  });

  describe("8. weights by name", () => {
    let server: TestServer;
    let env: NodeJS.ProcessEnv;
    const served = "/w/tiny-dedos.safetensors";
    before(async () => {
      const body = readFileSync(join(base, "model_final.safetensors"));
      server = await startServer();
      server.routes.set(served, { body });
      const extra = join(dir, "registry.json");
      writeFileSync(
        extra,
        JSON.stringify({
          "tiny-dedos": {
            url: `${server.origin}${served}`,
            size: body.length,
            sha256: sha256(body),
            config: "", // none: a DEDOS weights file carries its own
            licence: "test",
          },
        }),
      );
      env = { DEDOS_CACHE: join(dir, "cache"), DEDOS_REGISTRY_EXTRA: extra };
    });
    after(() => server.close());

    test("train --weights NAME and eval --weights NAME fetch once into the cache, then use it", async () => {
      const fetches = () => server.requests.filter((q) => q.path === served).length;
      const out = join(dir, "from-name");
      const t = await cli(trainArgs(short, out, "--weights", "tiny-dedos", "--max-steps", "1"), { env });
      assert.equal(t.status, 0, t.stderr);
      assert.doesNotMatch(t.stderr, /RANDOM/);
      assert.equal(fetches(), 1);
      assert.equal(assertLoadable(latestCheckpoint(join(out, "checkpoints"))!), 1);
      const e = await cli(
        [
          "eval",
          "--dataset",
          "cocostuff171",
          "--root",
          data,
          "--weights",
          "tiny-dedos",
          "--limit",
          "1",
        ].concat(["--out", join(dir, "eval-out")]),
        { env },
      );
      assert.equal(e.status, 0, e.stderr);
      assert.match(e.stdout, /1 image\(s\) — mIoU [\d.]+/);
      assert.equal(fetches(), 1, "eval found it in the cache");
      for (const [cmd, flag] of [
        ["train", "--catseg"],
        ["train", "--clip"],
        ["eval", "--weights"],
      ] as const) {
        const args =
          cmd === "train"
            ? trainArgs(short, join(dir, "never"), flag, "no-such-weight")
            : ["eval", "--dataset", "cocostuff171", "--root", data, flag, "no-such-weight"];
        const r = await cli(args, { env });
        assert.equal(r.status, 1, `${cmd} ${flag}: ${r.stderr}`);
        assert.match(
          r.stderr,
          /weights "no-such-weight": no such file or folder, and not a registered weight name/,
        );
      }
      const th = await cli(["train", "--help"]);
      assert.match(th.stdout, /--clip NAME\|FILE +OpenAI CLIP weights to start from: clip-vitb16/);
      assert.match(th.stdout, /--resume-fallback/);
      const eh = await cli(["eval", "--help"]);
      assert.match(eh.stdout, /--weights NAME\|FILE +catseg-vitb/);
    });
  });
});
