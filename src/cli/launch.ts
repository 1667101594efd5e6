// The multi-process launcher of `dedos eval` and `dedos train` (torchrun's job): with `--nproc N` (and, for
// several machines, `--nnodes M --node-rank R --master-addr HOST --master-port PORT`) the command re-runs
// itself as N worker processes with DEDOS_RANK, DEDOS_WORLD_SIZE, DEDOS_MASTER_ADDR and DEDOS_MASTER_PORT
// set, waits for them and fails when one fails. A worker joins the process group those variables describe.
import * as dist from "../torch/distributed.js";

/** The launcher's own flags: they are not passed on to the workers. */
export const LAUNCHER_FLAGS: readonly string[] = [
  "--nproc",
  "--nnodes",
  "--node-rank",
  "--master-addr",
  "--master-port",
];

export interface LaunchOptions {
  /** Worker processes on this machine. */
  nproc: number;
  /** Machines taking part (default 1). */
  nnodes?: number;
  /** This machine's index among them (default 0). */
  nodeRank?: number;
  /** Node 0's rendezvous address and port (default 127.0.0.1 and a free port). */
  addr?: string;
  port?: number;
}

/** The launcher flags' values as parsed by `parseArgs` (strings; absent = default). */
export interface LaunchFlagValues {
  nproc?: string;
  nnodes?: string;
  "node-rank"?: string;
  "master-addr"?: string;
  "master-port"?: string;
}

/** Reads the launcher flags; `--nproc` must be a positive integer. */
export function parseLaunchFlags(v: LaunchFlagValues): LaunchOptions {
  const nproc = Number(v.nproc ?? 1);
  if (!(Number.isInteger(nproc) && nproc >= 1)) throw new Error("--nproc must be a positive integer");
  return {
    nproc,
    nnodes: Number(v.nnodes ?? 1),
    nodeRank: Number(v["node-rank"] ?? 0),
    addr: v["master-addr"],
    port: v["master-port"] === undefined ? undefined : Number(v["master-port"]),
  };
}

/** Whether this process is a worker (started by the launcher, or by hand with the DEDOS_* variables). */
export function isWorkerProcess(): boolean {
  return process.env.DEDOS_WORLD_SIZE !== undefined;
}

/** Whether this process should start workers rather than do the work itself. */
export function shouldLaunch(o: LaunchOptions): boolean {
  return (o.nproc > 1 || (o.nnodes ?? 1) > 1) && !isWorkerProcess();
}

/** `argv` without the launcher flags and their values (`--nproc 2` and `--nproc=2` alike). */
export function withoutLauncherFlags(argv: readonly string[]): string[] {
  return argv.filter(
    (a, i) =>
      !LAUNCHER_FLAGS.includes(a) &&
      !LAUNCHER_FLAGS.includes(argv[i - 1] ?? "") &&
      !LAUNCHER_FLAGS.some((f) => a.startsWith(`${f}=`)),
  );
}

/**
 * Runs `dedos <command> argv… extra…` (launcher flags removed) as the workers of this machine, their output
 * prefixed with the rank. Resolves 0 once all succeeded; a failed worker stops the others and rejects
 * (WorkerFailedError naming the ranks and exit codes).
 */
export async function launchWorkers(
  command: string,
  argv: readonly string[],
  o: LaunchOptions,
  extra: readonly string[] = [],
): Promise<number> {
  let codes: number[];
  try {
    codes = await dist.spawnWorkers(process.argv[1]!, [command, ...withoutLauncherFlags(argv), ...extra], {
      nproc: o.nproc,
      nnodes: o.nnodes,
      nodeRank: o.nodeRank,
      addr: o.addr,
      port: o.port,
    });
  } catch (e) {
    // Stopped by a signal (passed on to the workers, who have exited): end by the same signal, as a shell expects.
    if (e instanceof dist.WorkerFailedError && e.interruptedBy) process.kill(process.pid, e.interruptedBy);
    throw e;
  }
  return codes.every((c) => c === 0) ? 0 : 1;
}

/**
 * Runs `fn` inside the process group when this process is a worker (joined before, left afterwards, also on
 * failure); otherwise simply runs it.
 */
export async function inProcessGroup<T>(fn: () => Promise<T>): Promise<T> {
  if (!isWorkerProcess()) return fn();
  dist.initProcessGroup();
  try {
    return await fn();
  } finally {
    dist.destroyProcessGroup();
  }
}
