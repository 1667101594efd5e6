// Worker for test/torch/distributed.test.ts, started by dist.spawnWorkers (DEDOS_RANK etc. in the env).
// Usage: node dist-worker.js <scenario> [timeoutMs]. Exits non-zero when an expectation fails.
import assert from "node:assert/strict";
import { dist, Generator, nn, randn, tensor } from "../../src/torch/index.js";

const scenario = process.argv[2] ?? "collectives";
const timeoutMs = Number(process.argv[3] ?? 10000);
// Ranks start seconds apart on a loaded machine (loading libtorch), so the rendezvous gets a generous timeout
// of its own; the collectives use the short one.
const initTimeoutMs = 30000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= atol,
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

async function collectives(): Promise<void> {
  dist.initProcessGroup({ timeoutMs, initTimeoutMs });
  const r = dist.getRank();
  const w = dist.getWorldSize();
  assert.equal(w, 2);
  assert.equal(r, Number(process.env.DEDOS_RANK));
  assert.equal(dist.getBackend(), "gloo");

  const sum = dist.allReduce(tensor([1, 2, 3]).mul(r + 1), "sum");
  assert.deepEqual(sum.toArray(), [3, 6, 9]);
  const isum = dist.allReduce(
    tensor([10, -4])
      .long()
      .mul(r + 1),
    "sum",
  );
  assert.equal(isum.dtype, "int64");
  assert.deepEqual(isum.toArray(), [30, -12]);
  const avg = dist.allReduce(tensor([2 * r, 10 + r]), "avg");
  assert.deepEqual(avg.toArray(), [1, 10.5]);
  const mx = dist.allReduce(tensor([r, 5 - r, 1 - 2 * r]), "max");
  assert.deepEqual(mx.toArray(), [1, 5, 1]);
  const mn = dist.allReduce(tensor([r, 5 - r, 1 - 2 * r]), "min");
  assert.deepEqual(mn.toArray(), [0, 4, -1]);
  // A non-contiguous view is reduced in place through a contiguous copy.
  const base = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]).mul(r + 1);
  const tr = base.transpose(0, 1);
  assert.equal(tr.isContiguous(), false);
  dist.allReduce(tr, "sum");
  assert.deepEqual(base.toArray(), [3, 6, 9, 12, 15, 18]);

  const b1 = dist.broadcast(tensor([r, r, r, r]).add(r === 1 ? 7 : 0), 1);
  assert.deepEqual(b1.toArray(), [8, 8, 8, 8]);
  const b0 = dist.broadcast(tensor([r + 0.5, -1]), 0);
  assert.deepEqual(b0.toArray(), [0.5, -1]);

  // Barrier: rank 1 arrives 400 ms late, so rank 0 must wait for it.
  if (r === 1) await sleep(400);
  const t0 = performance.now();
  dist.barrier();
  const waited = performance.now() - t0;
  if (r === 0)
    assert.ok(waited >= 300, `barrier returned after ${waited.toFixed(0)} ms, before rank 1 arrived`);

  // Data-parallel gradients: identical weights, rank-dependent data; the synchronised gradient must be the
  // average of the two ranks' local gradients (both computed here, since the data is deterministic).
  const make = () => new nn.Linear(3, 2, true, { generator: new Generator(0) });
  const input = (k: number) => randn([4, 3], { generator: new Generator(100 + k) });
  const localGrads = (k: number) => {
    const m = make();
    m.forward(input(k)).square().sum().backward();
    return m.parameters().map((p) => Array.from(p.grad!.toTypedArray() as Float32Array));
  };
  const g0 = localGrads(0);
  const g1 = localGrads(1);
  const model = make();
  model.forward(input(r)).square().sum().backward();
  const before = model.parameters().map((p) => Array.from(p.grad!.toTypedArray() as Float32Array));
  close(before.flat(), (r === 0 ? g0 : g1).flat(), 0, "local grad");
  dist.allReduceGradients(model.parameters(), { average: true });
  const params = model.parameters();
  for (let i = 0; i < params.length; i++) {
    const got = params[i]!.grad!.toTypedArray() as Float32Array;
    const want = g0[i]!.map((v, j) => (v + g1[i]![j]!) / 2);
    close(got, want, 1e-6, `averaged grad ${i}`);
  }
  // Sum mode keeps the sum.
  dist.allReduceGradients(params, { average: false });
  close(
    params[1]!.grad!.toTypedArray() as Float32Array,
    g0[1]!.map((v, j) => v + g1[1]![j]!),
    1e-5,
    "summed grad",
  );

  dist.barrier();
  dist.destroyProcessGroup();
  assert.equal(dist.isInitialized(), false);
  console.log(
    `RESULT ${JSON.stringify({ rank: r, sum: sum.toArray(), avg: avg.toArray(), max: mx.toArray() })}`,
  );
}

// One rank leaves right after the rendezvous; the other must fail its next collective with an error.
async function peerExit(leaver: number): Promise<void> {
  dist.initProcessGroup({ timeoutMs, initTimeoutMs });
  const r = dist.getRank();
  dist.barrier();
  if (r === leaver) {
    console.log("LEAVING");
    process.exit(0);
  }
  await sleep(200);
  const t0 = performance.now();
  try {
    dist.allReduce(tensor([1, 2, 3]), "sum");
  } catch (e) {
    const ms = performance.now() - t0;
    console.log(`CAUGHT ${ms.toFixed(0)} ${(e as Error).message.split("\n")[0]}`);
    process.exit(0);
  }
  console.log("NO ERROR");
  process.exit(3);
}

// One rank is alive but never joins the collective: the other must time out instead of hanging.
async function peerStall(): Promise<void> {
  dist.initProcessGroup({ timeoutMs, initTimeoutMs });
  const r = dist.getRank();
  dist.barrier();
  if (r === 1) {
    console.log("STALLING");
    await sleep(timeoutMs * 1.5);
    process.exit(0);
  }
  const t0 = performance.now();
  try {
    dist.allReduce(tensor([1, 2, 3]), "sum");
  } catch (e) {
    const ms = performance.now() - t0;
    console.log(`CAUGHT ${ms.toFixed(0)} ${(e as Error).message.split("\n")[0]}`);
    process.exit(0);
  }
  console.log("NO ERROR");
  process.exit(3);
}

// Only one of two ranks ever starts: the rendezvous itself must time out with an error.
function initTimeout(): void {
  dist.isInitialized(); // the first op loads the engine: do that before timing the rendezvous
  const t0 = performance.now();
  try {
    dist.initProcessGroup({ rank: 0, worldSize: 2, timeoutMs: 60000, initTimeoutMs: timeoutMs });
  } catch (e) {
    const ms = performance.now() - t0;
    console.log(`CAUGHT ${ms.toFixed(0)} ${(e as Error).message.split("\n")[0]}`);
    assert.equal(dist.isInitialized(), false);
    return;
  }
  console.log("NO ERROR");
  process.exit(3);
}

// A launcher of two workers that wait until stopped: the test signals the launcher and checks that the workers
// were stopped too (launch-sleepers runs spawnWorkers; sleep is each worker).
async function launchSleepers(): Promise<void> {
  try {
    await dist.spawnWorkers(process.argv[1]!, ["sleep"], {
      nproc: 2,
      onLine: (rank, _stream, line) => console.log(`W${rank} ${line}`),
    });
    console.log("NO ERROR");
  } catch (e) {
    if (!(e instanceof dist.WorkerFailedError)) throw e;
    console.log(`INTERRUPTED ${e.interruptedBy} ${JSON.stringify(e.exits.map((x) => x.signal))}`);
  }
}

function sleepUntilStopped(): void {
  console.log(`PID ${process.pid}`);
  setInterval(() => {}, 1000);
}

if (scenario === "collectives") await collectives();
else if (scenario === "launch-sleepers") await launchSleepers();
else if (scenario === "sleep") sleepUntilStopped();
else if (scenario === "peer-exit-1") await peerExit(1);
else if (scenario === "peer-exit-0") await peerExit(0);
else if (scenario === "peer-stall") await peerStall();
else if (scenario === "init-timeout") initTimeout();
else throw new Error(`unknown scenario ${scenario}`);
