// The engine side of bench/harness.ts for engines written in TypeScript (dedos): each call of a case timed with
// its minor page faults, its own CPU time and the CPU time other processes took meanwhile, answered over the
// line protocol of the harness. bench/reference/common.py (`serve`) is the same for the PyTorch engines.
// No addon import here: the caller brings the cases.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

/** One timed call: wall ms, minor page faults, own CPU ms (all threads) and other processes' CPU ms. */
export interface Sample {
  ms: number;
  faults: number;
  selfCpuMs: number;
  othersCpuMs: number;
}

/**
 * A case made ready to run: one call per `run()`, everything it allocates released before it returns (or
 * before its promise settles, for engines whose API is asynchronous).
 */
export type CaseRun = () => void | Promise<void>;
/** Makes a case ready; may load what only it needs (so the other cases' processes do not carry it). */
export type CaseFactory = (spec: Record<string, unknown>, threads: number) => CaseRun | Promise<CaseRun>;

/** Prefix of the protocol's reply lines, so that anything else a library prints to stdout is not mistaken. */
export const REPLY_PREFIX = "@@bench ";

/** Jiffy length (USER_HZ = 100 on every Linux the kernel ABI allows for /proc). */
const TICK_MS = 10;

/** All CPUs' busy jiffies (user nice system irq softirq steal; not idle or iowait) from /proc/stat. */
function busyJiffies(): number {
  const v = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
}

/** This process's utime + stime (all threads) in jiffies and its minor faults, from /proc/self/stat. */
function selfJiffiesAndFaults(): [number, number] {
  const s = readFileSync("/proc/self/stat", "utf8");
  const rest = s.slice(s.lastIndexOf(")") + 2).split(" "); // rest[0] is field 3 (state)
  return [Number(rest[11]) + Number(rest[12]), Number(rest[7])];
}

/** `reps` calls of `run`, each measured alone (after `warm` untimed calls that re-warm caches). */
export async function sampleCalls(run: CaseRun, reps: number, warm = 0): Promise<Sample[]> {
  for (let i = 0; i < warm; i++) await run();
  const out: Sample[] = [];
  for (let i = 0; i < reps; i++) {
    const b0 = busyJiffies();
    const [s0, f0] = selfJiffiesAndFaults();
    const t0 = process.hrtime.bigint();
    const p = run();
    if (p) await p; // synchronous engines are timed without a turn of the microtask queue
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const b1 = busyJiffies();
    const [s1, f1] = selfJiffiesAndFaults();
    const own = (s1 - s0) * TICK_MS;
    out.push({ ms, faults: f1 - f0, selfCpuMs: own, othersCpuMs: (b1 - b0) * TICK_MS - own });
  }
  return out;
}

/** A field of /proc/self/status (VmHWM, VmRSS) in MB, null where unreadable. */
export function statusMb(field: string): number | null {
  try {
    const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Answers the harness on stdin/stdout until it says exit. Requests: {op: "setup", case, spec, threads, warmup},
 * {op: "sample", reps, warm}, {op: "exit"}; replies are REPLY_PREFIX + one JSON object per line.
 * `prepare(threads)` runs once before the first setup (thread settings); `info()` describes the engine.
 */
export async function serve(
  factories: Record<string, CaseFactory>,
  prepare: (threads: number) => void,
  info: () => Record<string, unknown>,
): Promise<void> {
  let run: CaseRun | null = null;
  const reply = (o: object) => process.stdout.write(`${REPLY_PREFIX}${JSON.stringify(o)}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    const req = JSON.parse(line) as Record<string, unknown>;
    try {
      if (req.op === "setup") {
        const threads = Number(req.threads);
        prepare(threads);
        const t0 = performance.now();
        const factory = factories[String(req.case)];
        if (!factory) throw new Error(`unknown case ${String(req.case)}`);
        run = await factory(req.spec as Record<string, unknown>, threads);
        for (let i = 0; i < Number(req.warmup ?? 1); i++) await run();
        reply({ setupMs: performance.now() - t0, rssMb: statusMb("VmRSS"), info: info() });
      } else if (req.op === "sample") {
        if (!run) throw new Error("sample before setup");
        reply({ samples: await sampleCalls(run, Number(req.reps), Number(req.warm ?? 0)) });
      } else if (req.op === "exit") {
        reply({ peakRssMb: statusMb("VmHWM"), rssMb: statusMb("VmRSS") });
        return;
      } else {
        reply({ error: `unknown op ${String(req.op)}` });
      }
    } catch (e) {
      reply({ error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
    }
  }
}
