// Fair comparisons of engines (bench/run.ts): every engine in a process of its own (so its peak RSS is its
// own), one case per process, the engines alternated round after round on the same machine (round r: A, B,
// C; then again), each call timed with its minor page faults and the CPU time other processes took meanwhile;
// rounds where others took more than NOISY_SHARE of a core are flagged and left out of the ranges.
// The engine side of the protocol: bench/sample.ts (TypeScript) and bench/reference/common.py (PyTorch).
// No addon import: this runs in the small parent process.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { BenchCase } from "./cases.js";
import { REPLY_PREFIX, type Sample } from "./sample.js";

/** Rounds in which other processes took more than this share of one core are flagged as noisy. */
export const NOISY_SHARE = 0.1;

export const PYTHON = "/usr/bin/python3";

/** Longest wait for one reply (a full-size setup on a loaded 2-core machine takes minutes). */
const REQUEST_TIMEOUT_MS = 30 * 60 * 1000;

/** How OpenBLAS picks its kernels in a PyTorch process: pinned by OPENBLAS_CORETYPE, or auto-detected. */
export type BlasChoice = "pinned" | "auto";

/**
 * The environment of a PyTorch reference process at its best: threads limited before start (OpenBLAS ignores
 * torch.set_num_threads), OpenBLAS pinned to this machine's OPENBLAS_CORETYPE (AVX2 `Haswell` here) or left
 * to detect the CPU itself (SkylakeX / AVX-512), and glibc malloc that never mmaps (MALLOC_MMAP_MAX_=0:
 * otherwise every block above the mmap threshold, 32 MiB at most, is mapped and unmapped per op, hundreds of
 * thousands of minor page faults per UNet forward) nor trims its heap. The in-process half (flushed
 * denormals, inference_mode, channels-last convolution weights) is in bench/reference/.
 */
export function pythonEnv(threads: number, blas: BlasChoice): NodeJS.ProcessEnv {
  const env = bestMallocEnv(threads);
  if (blas === "auto") delete env.OPENBLAS_CORETYPE;
  else env.OPENBLAS_CORETYPE = process.env.OPENBLAS_CORETYPE ?? "Haswell";
  return env;
}

/**
 * This environment with threads limited before start and glibc malloc that never mmaps and never trims its
 * heap (for the reference engines; dedos sets its own mallopt when its addon loads).
 */
export function bestMallocEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
    MALLOC_MMAP_MAX_: "0",
    MALLOC_TRIM_THRESHOLD_: String(1024 * 1024 * 1024),
    MALLOC_TOP_PAD_: String(64 * 1024 * 1024),
  };
  delete env.MALLOC_MMAP_THRESHOLD_;
  return env;
}

/** An engine: how to start its process. */
export interface EngineSpec {
  id: string;
  /** The case ids it runs; undefined: all. */
  cases?: string[];
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (dist/bench/.. /..), where bench/reference/ and assets/ are. */
export const ROOT = join(here, "..", "..");

/**
 * dedos (this environment as given, threads limited like the references'), PyTorch pinned / auto, and
 * onnxruntime-node (CPU) for the single-operator cases.
 */
export function defaultEngines(threads: number): EngineSpec[] {
  const engines: EngineSpec[] = [
    {
      id: "dedos",
      command: process.execPath,
      args: [join(here, "worker.js")],
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
    },
  ];
  if (existsSync(PYTHON))
    for (const blas of ["pinned", "auto"] as const)
      engines.push({
        id: `pytorch-${blas}`,
        command: PYTHON,
        args: [join(ROOT, "bench", "reference", "worker.py")],
        env: pythonEnv(threads, blas),
      });
  engines.push({
    id: "onnxruntime",
    cases: ["matmul", "clip-vision", "segment-image"],
    command: process.execPath,
    args: [join(here, "worker-ort.js")],
    env: bestMallocEnv(threads),
  });
  return engines;
}

type Reply = Record<string, unknown>;

/** One engine process speaking the line protocol (requests on stdin, REPLY_PREFIX lines on stdout). */
export class EngineProcess {
  private readonly child: ChildProcess;
  private readonly waiting: ((r: Reply) => void)[] = [];
  private exited = false;

  constructor(readonly spec: EngineSpec) {
    this.child = spawn(spec.command, spec.args, {
      env: spec.env,
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const tag = (line: string) => `  [${spec.id}] ${line}\n`;
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      if (line.startsWith(REPLY_PREFIX)) this.waiting.shift()?.(JSON.parse(line.slice(REPLY_PREFIX.length)));
      else process.stderr.write(tag(line));
    });
    createInterface({ input: this.child.stderr! }).on("line", (line) => process.stderr.write(tag(line)));
    this.child.on("exit", (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w({ error: `${spec.id} exited (${code ?? signal})` });
    });
  }

  /** Sends one request; resolves with its reply (or {error} if the process died). */
  request(req: Reply): Promise<Reply> {
    if (this.exited) return Promise.resolve({ error: `${this.spec.id} is not running` });
    return new Promise((resolve) => {
      // A hung engine is ended (its pending reply becomes an error) rather than stalling the whole run.
      const timer = setTimeout(() => this.kill(), REQUEST_TIMEOUT_MS);
      this.waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.child.stdin!.write(`${JSON.stringify(req)}\n`);
    });
  }

  kill(): void {
    if (!this.exited) this.child.kill();
  }
}

/** The engines that run case `c`. */
export function enginesFor(c: BenchCase, engines: EngineSpec[]): EngineSpec[] {
  return engines.filter(
    (e) => (!e.cases || e.cases.includes(c.id)) && (!c.engines || c.engines.includes(e.id)),
  );
}

/** One engine's calls in one round, summarised. */
export interface Round {
  /** Median wall ms of the round's calls. */
  medianMs: number;
  /** Median minor page faults per call. */
  faultsPerCall: number;
  /** CPU time other processes took during the round's calls ÷ their wall time (1 = one core). */
  othersShare: number;
  noisy: boolean;
  samples: Sample[];
}

/** One engine on one case. */
export interface EngineResult {
  engine: string;
  rounds: Round[];
  setupMs: number | null;
  /** The engine process's peak RSS (VmHWM) over setup and every round, MB. */
  peakRssMb: number | null;
  info: unknown;
  error?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function summariseRound(samples: Sample[]): Round {
  const wall = samples.reduce((s, x) => s + x.ms, 0);
  // Signed sum: with 10 ms jiffies a short call's reading is off by a tick either way; the errors cancel.
  const others = samples.reduce((s, x) => s + x.othersCpuMs, 0);
  const othersShare = wall > 0 ? Math.max(0, others) / wall : 0;
  return {
    medianMs: median(samples.map((x) => x.ms)),
    faultsPerCall: median(samples.map((x) => x.faults)),
    othersShare,
    noisy: othersShare > NOISY_SHARE,
    samples,
  };
}

/**
 * Runs one case on every engine: starts them (one process each, set up one after the other), then rounds of
 * `reps` timed calls per engine in turn until `rounds` rounds were quiet for every engine or `rounds` +
 * `extraRounds` rounds ran, then asks each engine for its peak RSS and ends it.
 */
export async function runCase(
  c: BenchCase,
  engines: EngineSpec[],
  o: { threads: number; rounds: number; extraRounds: number; reps: number; log: (s: string) => void },
): Promise<EngineResult[]> {
  engines = enginesFor(c, engines);
  const spec = c.spec();
  const procs = engines.map((e) => new EngineProcess(e));
  const results: EngineResult[] = engines.map((e) => ({
    engine: e.id,
    rounds: [],
    setupMs: null,
    peakRssMb: null,
    info: null,
  }));
  try {
    for (const [i, p] of procs.entries()) {
      const r = await p.request({ op: "setup", case: c.id, spec, threads: o.threads, warmup: c.warmup });
      if (r.error) results[i]!.error = String(r.error);
      results[i]!.setupMs = (r.setupMs as number) ?? null;
      results[i]!.info = r.info ?? null;
    }
    // Up to `extraRounds` more rounds while fewer than `rounds` were quiet for every engine.
    let quiet = 0;
    for (let round = 0; round < o.rounds + o.extraRounds && quiet < o.rounds; round++) {
      const line: string[] = [];
      let noisy = false;
      for (const [i, p] of procs.entries()) {
        if (results[i]!.error) continue;
        const r = await p.request({ op: "sample", reps: o.reps, warm: c.warm });
        if (r.error) {
          results[i]!.error = String(r.error);
          continue;
        }
        const s = summariseRound(r.samples as Sample[]);
        results[i]!.rounds.push(s);
        noisy ||= s.noisy;
        const others = `others ${s.othersShare.toFixed(2)} core`;
        line.push(`${engines[i]!.id} ${s.medianMs.toFixed(1)} ms${s.noisy ? ` (noisy: ${others})` : ""}`);
      }
      if (!noisy) quiet++;
      o.log(`  round ${round + 1} (${quiet}/${o.rounds} quiet): ${line.join(", ")}`);
    }
    for (const [i, p] of procs.entries()) {
      const r = await p.request({ op: "exit" });
      results[i]!.peakRssMb = (r.peakRssMb as number) ?? null;
    }
  } finally {
    for (const p of procs) p.kill();
  }
  return results;
}

/** min–max of the per-round medians over the quiet rounds (all rounds if none was quiet). */
export function roundRange(rounds: Round[]): { min: number; max: number; mid: number; quiet: number } | null {
  if (rounds.length === 0) return null;
  const quiet = rounds.filter((r) => !r.noisy);
  const use = (quiet.length > 0 ? quiet : rounds).map((r) => r.medianMs);
  return { min: Math.min(...use), max: Math.max(...use), mid: median(use), quiet: quiet.length };
}

/**
 * Ratios a ÷ b round by round (the engines ran back to back in each round), over rounds quiet for both (all
 * rounds if none was).
 */
export function ratioRange(a: Round[], b: Round[]): { min: number; max: number; mid: number } | null {
  const n = Math.min(a.length, b.length);
  if (n === 0) return null;
  const all = Array.from({ length: n }, (_, i) => i);
  const quiet = all.filter((i) => !a[i]!.noisy && !b[i]!.noisy);
  const ratios = (quiet.length > 0 ? quiet : all).map((i) => a[i]!.medianMs / b[i]!.medianMs);
  return { min: Math.min(...ratios), max: Math.max(...ratios), mid: median(ratios) };
}
