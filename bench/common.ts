// Benchmark helpers: timing medians, running the PyTorch reference in the same run, printing ratio tables.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { F } from "../src/torch/index.js";
import { native } from "../src/torch/native.js";
import { dispose, Generator, randn, Tensor, tidy } from "../src/torch/tensor.js";
import { type BlasChoice, PYTHON, pythonEnv } from "./harness.js";

export interface Timing {
  name: string;
  /** Median milliseconds per call. */
  ms: number;
  /** Optional work per call, for a rate column. */
  gflop?: number;
  /** Optional peak resident set size (MB) while the case ran; adds peak RSS columns to the table. */
  peakRssMb?: number;
}

/**
 * Key under which a Python reference reports a case's peak RSS (MB) next to its time: `${name}${RSS_KEY}`.
 * Reference scripts print e.g. {"vision": 812.3, "vision | peak RSS MB": 700.1}.
 */
export const RSS_KEY = " | peak RSS MB";

/**
 * Resets this process's peak-RSS counter (VmHWM) to the current RSS by writing 5 to /proc/self/clear_refs
 * (Linux ≥ 4.0). Returns false where that is not possible; VmHWM then stays the process-lifetime peak.
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** Peak RSS (VmHWM) in MB since start or the last successful resetPeakRss(); null off Linux. */
export function peakRssMb(): number | null {
  return procStatusMb("VmHWM");
}

/** Current RSS (VmRSS) in MB; null off Linux. */
export function rssMb(): number | null {
  return procStatusMb("VmRSS");
}

function procStatusMb(field: string): number | null {
  try {
    const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Median wall time of `fn` in ms after `warmup` calls. */
export function timeMedian(fn: () => void, reps = 10, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

/**
 * timeMedian, but the event loop turns before every call. N-API runs the finalizers of garbage-collected
 * tensor handles only then, so this shows what a synchronous loop costs through their delayed release.
 */
export async function timeMedianYielding(fn: () => void, reps = 10, warmup = 2): Promise<number> {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  for (let i = 0; i < warmup; i++) {
    await turn();
    fn();
  }
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    await turn();
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

/**
 * Runs a Python reference script once with Debian's PyTorch at its best (bench/harness.ts pythonEnv: OpenBLAS
 * auto-detected unless `blas` says pinned, malloc without mmap; the script calls common.best_torch) and the
 * same thread count; returns its JSON. The fair, alternated comparison is bench/run.ts.
 */
export function runPythonReference(
  script: string,
  threads: number,
  args: string[] = [],
  blas: BlasChoice = "auto",
): Record<string, number> | null {
  if (!existsSync(PYTHON)) return null;
  const r = spawnSync(PYTHON, [script, String(threads), ...args], {
    encoding: "utf8",
    env: pythonEnv(threads, blas),
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) {
    console.error(`reference ${script} failed:\n${r.stderr}`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

/** Prints ours vs PyTorch with ratio = our time / PyTorch's (≤ 1 means we are as fast or faster). */
export function report(
  title: string,
  ours: Timing[],
  ref: Record<string, number> | null,
  file: string,
  extra?: Record<string, unknown>,
): void {
  // Peak RSS columns only when some case measured it (tables without memory keep their old layout).
  const mem = ours.some((o) => o.peakRssMb !== undefined);
  console.log(`\n${title}`);
  console.log(
    `| case | dedos (ms) | PyTorch (ms) | ratio | rate |${mem ? " dedos peak RSS (MB) | PyTorch peak RSS (MB) |" : ""}`,
  );
  console.log(`|---|---|---|---|---|${mem ? "---|---|" : ""}`);
  const rows = ours.map((o) => {
    const r = ref?.[o.name];
    const ratio = r ? o.ms / r : undefined;
    const rate = o.gflop ? `${(o.gflop / (o.ms / 1e3)).toFixed(0)} GFLOP/s` : "";
    const refRss = ref?.[o.name + RSS_KEY];
    const memCols = mem
      ? ` ${o.peakRssMb !== undefined ? o.peakRssMb.toFixed(0) : "—"} | ${refRss ? refRss.toFixed(0) : "—"} |`
      : "";
    console.log(
      `| ${o.name} | ${fmt(o.ms)} | ${r ? fmt(r) : "—"} | ${ratio ? ratio.toFixed(2) : "—"} | ${rate} |${memCols}`,
    );
    return {
      ...o,
      pytorchMs: r ?? null,
      ratio: ratio ?? null,
      ...(mem ? { pytorchPeakRssMb: refRss ?? null } : {}),
    };
  });
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(
    join("bench/results", file),
    `${JSON.stringify({ title, date: new Date().toISOString(), rows, ...extra }, null, 2)}\n`,
  );
}

function fmt(ms: number): string {
  return ms < 0.1 ? ms.toFixed(4) : ms < 10 ? ms.toFixed(3) : ms.toFixed(1);
}

/**
 * Share of a run's wall time spent outside libtorch kernels (binding and JavaScript overhead), estimated as
 * (native calls made) × (cost of the cheapest tensor-returning op call, an upper bound on per-call overhead)
 * / (wall time). Counting wraps every addon function during one run of `fn`.
 */
export function bindingOverhead(fn: () => void): {
  calls: number;
  perCallUs: number;
  wallMs: number;
  share: number;
} {
  const addon = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  const originals = { ...addon };
  let calls = 0;
  for (const [k, f] of Object.entries(originals)) {
    addon[k] = (...a: unknown[]) => {
      calls++;
      return f(...a);
    };
  }
  let wallMs: number;
  try {
    const s = performance.now();
    fn();
    wallMs = performance.now() - s;
  } finally {
    Object.assign(addon, originals);
  }
  // The cheapest op that makes a new tensor (a view), plus disposing it: binding + bookkeeping + a trivial kernel.
  const t = new Tensor(native.zeros([1], null, null));
  const n = 20000;
  const perCallUs =
    (timeMedian(
      () => {
        for (let i = 0; i < n; i++) t.view(1).dispose();
      },
      5,
      1,
    ) *
      1e3) /
    (2 * n); // two addon calls per iteration (view, free)
  t.dispose();
  return { calls, perCallUs, wallMs, share: (calls * perCallUs) / 1e3 / wallMs };
}

/** One of the engine's reference kernels: its name, GFLOP per run, one run, and the release of its inputs. */
export interface ReferenceKernel {
  name: string;
  gflop: number;
  run: () => void;
  dispose: () => void;
}

/**
 * The engine's reference kernels, the same two cases everywhere: matmul 1024³ and a 3×3 conv with
 * 320 → 320 channels at 64×64 (names match the PyTorch reference's keys).
 */
export function referenceKernels(only?: "matmul" | "conv"): ReferenceKernel[] {
  // Only the kernels asked for are made: a bench measuring one keeps the other's inputs out of its peak RSS.
  const g = new Generator(0);
  const out: ReferenceKernel[] = [];
  if (only !== "conv") {
    const [a, b] = tidy(() => [randn([1024, 1024], { generator: g }), randn([1024, 1024], { generator: g })]);
    out.push({
      name: "matmul 1024³",
      gflop: (2 * 1024 ** 3) / 1e9,
      run: () => a.matmul(b).dispose(),
      dispose: () => dispose([a, b]),
    });
  }
  if (only !== "matmul") {
    // Channels-last input and weights, as the PyTorch reference (its CPU performance guide's advice).
    const [x, w] = tidy(() => [
      randn([1, 320, 64, 64], { generator: g }).contiguous("channelsLast"),
      randn([320, 320, 3, 3], { generator: g }).contiguous("channelsLast"),
    ]);
    out.push({
      name: "conv3x3 320ch 64²",
      gflop: (2 * 320 * 320 * 9 * 64 * 64) / 1e9,
      run: () => F.conv2d(x, w, null, { padding: 1 }).dispose(),
      dispose: () => dispose([x, w]),
    });
  }
  return out;
}

/** The reference kernels' median times (reps, warm-up per kernel). */
export function kernelTimings(reps: { matmul: [number, number]; conv: [number, number] }): Timing[] {
  const [matmul, conv] = referenceKernels() as [ReferenceKernel, ReferenceKernel];
  try {
    return [
      { name: matmul.name, ms: timeMedian(matmul.run, ...reps.matmul), gflop: matmul.gflop },
      { name: conv.name, ms: timeMedian(conv.run, ...reps.conv), gflop: conv.gflop },
    ];
  } finally {
    matmul.dispose();
    conv.dispose();
  }
}

/**
 * Median times of several functions measured in turn, round after round, so that rates compared with each
 * other see the same machine: on a shared CPU, speed drifts by tens of percent within minutes, and back-to-back
 * blocks of runs would fold that drift into their ratio. In each round an entry with `runs` > 1 is first run
 * once untimed (its caches warm again after the others), then timed over `runs` calls (mean per call).
 */
export function interleavedMedians(entries: { fn: () => void; runs: number }[], rounds: number): number[] {
  for (const e of entries) e.fn();
  const times = entries.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++)
    entries.forEach((e, i) => {
      if (e.runs > 1) e.fn();
      const s = process.hrtime.bigint();
      for (let k = 0; k < e.runs; k++) e.fn();
      times[i]!.push(Number(process.hrtime.bigint() - s) / 1e6 / e.runs);
    });
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
}
