// Process-group collectives over c10d/Gloo: two real processes over loopback (dist-worker.js), plus the
// single-process API surface and error paths.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { dist, tensor } from "../../src/torch/index.js";

const WORKER = join(dirname(fileURLToPath(import.meta.url)), "dist-worker.js");
const ENV = { DEDOS_NUM_THREADS: "1", OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" };

interface Run {
  codes: number[] | Error;
  lines: string[][];
}

async function run(scenario: string, nproc: number, timeoutMs: number, killOnFailure = true): Promise<Run> {
  const lines: string[][] = Array.from({ length: nproc }, () => []);
  let codes: number[] | Error;
  try {
    codes = await dist.spawnWorkers(WORKER, [scenario, String(timeoutMs)], {
      nproc,
      port: await dist.findFreePort(),
      env: ENV,
      killOnFailure,
      onLine: (rank, _stream, line) => lines[rank]!.push(line),
    });
  } catch (e) {
    codes = e as Error;
  }
  return { codes, lines };
}

function caught(lines: string[]): { ms: number; message: string } {
  const line = lines.find((l) => l.startsWith("CAUGHT "));
  assert.ok(line, `no CAUGHT line in:\n${lines.join("\n")}`);
  const m = /^CAUGHT (\d+) (.*)$/.exec(line)!;
  return { ms: Number(m[1]), message: m[2]! };
}

describe("dist (single process)", () => {
  it("rejects collectives before initProcessGroup", () => {
    assert.equal(dist.isInitialized(), false);
    assert.throws(() => dist.allReduce(tensor([1]), "sum"), /distAllReduce: .*not initialised/);
    assert.throws(() => dist.barrier(), /distBarrier: .*not initialised/);
    assert.throws(() => dist.getRank(), /not initialised/);
    dist.destroyProcessGroup(); // no-op
  });

  it("a world of one: identity collectives, argument errors", async () => {
    dist.initProcessGroup({ rank: 0, worldSize: 1, masterPort: await dist.findFreePort(), timeoutMs: 5000 });
    try {
      assert.equal(dist.getRank(), 0);
      assert.equal(dist.getWorldSize(), 1);
      assert.deepEqual(dist.allReduce(tensor([1.5, -2]), "avg").toArray(), [1.5, -2]);
      assert.deepEqual(dist.broadcast(tensor([3, 4]), 0).toArray(), [3, 4]);
      dist.barrier();
      assert.throws(
        () => dist.allReduce(tensor([1]), "mean" as unknown as dist.ReduceOp),
        /distAllReduce: unknown reduce op 'mean'/,
      );
      assert.throws(() => dist.allReduce(tensor([1]).long(), "avg"), /avg needs a floating-point tensor/);
      assert.throws(() => dist.broadcast(tensor([1]), 1), /distBroadcast: root must be in/);
      assert.throws(
        () => dist.initProcessGroup({ rank: 0, worldSize: 1, masterPort: 1 }),
        /already initialised/,
      );
    } finally {
      dist.destroyProcessGroup();
    }
    assert.equal(dist.isInitialized(), false);
  });

  it("validates init arguments", () => {
    assert.throws(() => dist.initProcessGroup({ rank: 2, worldSize: 2, masterPort: 1 }), /rank must be in/);
    assert.throws(() => dist.initProcessGroup({ rank: 0, worldSize: 1 }), /no masterPort/);
  });
});

describe("dist (two processes over loopback)", { concurrency: true }, () => {
  it("all-reduce sum/avg/max/min, broadcast, barrier, allReduceGradients", async () => {
    const { codes, lines } = await run("collectives", 2, 10000);
    assert.deepEqual(codes, [0, 0], lines.map((l, r) => `rank ${r}:\n${l.join("\n")}`).join("\n"));
    for (const r of [0, 1]) {
      const res = lines[r]!.find((l) => l.startsWith("RESULT "));
      assert.ok(res, `rank ${r} printed no RESULT`);
      assert.deepEqual(JSON.parse(res.slice(7)), { rank: r, sum: [3, 6, 9], avg: [1, 10.5], max: [1, 5, 1] });
    }
  });

  for (const leaver of [1, 0]) {
    it(`rank ${leaver} exiting early makes the other rank's all-reduce throw`, async () => {
      const { codes, lines } = await run(`peer-exit-${leaver}`, 2, 3000, false);
      assert.deepEqual(codes, [0, 0], lines.flat().join("\n"));
      assert.ok(lines[leaver]!.includes("LEAVING"));
      const { ms, message } = caught(lines[1 - leaver]!);
      assert.match(message, /^distAllReduce: allreduce failed: /);
      assert.ok(ms < 3000 + 1000, `took ${ms} ms`);
    });
  }

  it("a stalled peer makes the all-reduce time out", async () => {
    const { codes, lines } = await run("peer-stall", 2, 1500, false);
    assert.deepEqual(codes, [0, 0], lines.flat().join("\n"));
    const { ms, message } = caught(lines[0]!);
    assert.match(message, /^distAllReduce: allreduce failed: .*Timed out/);
    assert.ok(ms >= 1000 && ms < 1500 + 1500, `took ${ms} ms`);
  });

  it("a missing rank makes the rendezvous fail", async () => {
    const { codes, lines } = await run("init-timeout", 1, 1000);
    assert.deepEqual(codes, [0], lines.flat().join("\n"));
    const { ms, message } = caught(lines[0]!);
    assert.match(message, /^distInit: .*127\.0\.0\.1:\d+ \(rank 0 of 2, timeout 1000 ms\) failed: /);
    assert.ok(ms < 5000, `took ${ms} ms`);
  });

  it("a signal to the launcher stops every worker; spawnWorkers then rejects naming it", async () => {
    const launcher = spawn(process.execPath, [WORKER, "launch-sleepers"], {
      env: { ...process.env, ...ENV },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines: string[] = [];
    const pids: number[] = [];
    const exited = new Promise<number | null>((resolve) => launcher.on("exit", (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: launcher.stdout! }).on("line", (line) => {
        lines.push(line);
        const m = /^W\d PID (\d+)$/.exec(line);
        if (m) pids.push(Number(m[1]));
        if (pids.length === 2) resolve();
      });
      launcher.on("exit", () => reject(new Error(`the launcher exited early:\n${lines.join("\n")}`)));
    });
    launcher.kill("SIGTERM");
    assert.equal(await exited, 0, lines.join("\n"));
    assert.ok(lines.includes('INTERRUPTED SIGTERM ["SIGTERM","SIGTERM"]'), lines.join("\n"));
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} still runs`);
  });

  it("spawnWorkers rejects when a worker fails", async () => {
    const lines: string[] = [];
    await assert.rejects(
      dist.spawnWorkers(join(dirname(WORKER), "no-such-worker.js"), [], {
        nproc: 2,
        onLine: (rank, stream, line) => lines.push(`${rank} ${stream} ${line}`),
      }),
      (e: unknown) =>
        e instanceof dist.WorkerFailedError &&
        /rank \d exited with code 1/.test(e.message) &&
        e.exits.length === 2,
    );
    assert.ok(lines.some((l) => l.includes(" stderr ") && l.includes("Cannot find module")));
  });
});
