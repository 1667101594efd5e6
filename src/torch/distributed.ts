// Process-group collectives (torch.distributed) over libtorch's c10d with the Gloo backend, plus a small
// launcher that starts one Node process per rank (torchrun's job) for data-parallel training.
//
// One process group per process. Collectives are synchronous: they block the calling thread until every
// rank has joined (or the group's timeout expires, which throws). Every rank must issue the same
// collectives in the same order with tensors of the same shape and dtype.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { native as N } from "./native.js";
import { cat, noGrad, type Tensor, tensor, tidy } from "./tensor.js";

/** Reductions for `allReduce`; "avg" is a sum followed by a division by the world size. */
export type ReduceOp = "sum" | "avg" | "max" | "min" | "product";

export interface InitOptions {
  /** This process's rank in [0, worldSize); default: $DEDOS_RANK. */
  rank?: number;
  /** Number of processes; default: $DEDOS_WORLD_SIZE. */
  worldSize?: number;
  /** Host of rank 0's rendezvous store; default: $DEDOS_MASTER_ADDR or 127.0.0.1. */
  masterAddr?: string;
  /** Port of rank 0's rendezvous store; default: $DEDOS_MASTER_PORT. */
  masterPort?: number;
  /** Timeout of every collective, in ms; default 30 minutes (as in PyTorch). */
  timeoutMs?: number;
  /** Timeout of the rendezvous (all ranks joining), in ms; default `timeoutMs`. */
  initTimeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`dist: $${name} must be an integer, got '${v}'`);
  return n;
}

/**
 * Joins the process group: rank 0 hosts a TCP rendezvous store at masterAddr:masterPort, every rank connects
 * to it and the Gloo backend connects all ranks pairwise. Blocks until all `worldSize` ranks have joined
 * (or throws after `initTimeoutMs`). Values not given are read from the DEDOS_* variables that
 * `spawnWorkers` sets.
 */
export function initProcessGroup(opts: InitOptions = {}): void {
  const rank = opts.rank ?? envInt("DEDOS_RANK");
  const worldSize = opts.worldSize ?? envInt("DEDOS_WORLD_SIZE");
  const masterAddr = opts.masterAddr ?? process.env.DEDOS_MASTER_ADDR ?? "127.0.0.1";
  const masterPort = opts.masterPort ?? envInt("DEDOS_MASTER_PORT");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (rank === undefined) throw new Error("dist.initProcessGroup: no rank (pass rank or set DEDOS_RANK)");
  if (worldSize === undefined)
    throw new Error("dist.initProcessGroup: no worldSize (pass worldSize or set DEDOS_WORLD_SIZE)");
  if (masterPort === undefined)
    throw new Error("dist.initProcessGroup: no masterPort (pass masterPort or set DEDOS_MASTER_PORT)");
  const initTimeoutMs = opts.initTimeoutMs ?? timeoutMs;
  N.distInit(rank, worldSize, masterAddr, masterPort, Math.round(timeoutMs), Math.round(initTimeoutMs));
}

/** Whether this process has joined a process group. */
export function isInitialized(): boolean {
  return N.distIsInitialized() as boolean;
}

/** Leaves the process group and releases its sockets and threads (no-op when not initialised). */
export function destroyProcessGroup(): void {
  N.distDestroy();
}

export function getRank(): number {
  return N.distRank() as number;
}

export function getWorldSize(): number {
  return N.distWorldSize() as number;
}

/** "gloo" (or "gloo+nccl" with a CUDA libtorch). */
export function getBackend(): string {
  return N.distBackend() as string;
}

/** Reduces `t` across all ranks, in place: afterwards every rank holds the result. Returns `t`. */
export function allReduce(t: Tensor, op: ReduceOp = "sum"): Tensor {
  N.distAllReduce(t.handle, op);
  return t;
}

/** Copies rank `root`'s `t` into `t` on every other rank, in place. Returns `t`. */
export function broadcast(t: Tensor, root = 0): Tensor {
  N.distBroadcast(t.handle, root);
  return t;
}

/** Blocks until every rank has reached the barrier. */
export function barrier(): void {
  N.distBarrier();
}

/**
 * Data-parallel gradient synchronisation: the gradients of `params` (those that have one) are flattened into
 * one buffer per dtype, all-reduced in a single collective, and copied back, so that afterwards every rank
 * holds the sum (or, with `average`, the mean) over ranks. Every rank must pass the same parameters with
 * gradients present for the same ones. Call it between `backward()` and the optimiser step.
 */
export function allReduceGradients(params: Tensor[], opts: { average?: boolean } = {}): void {
  const op: ReduceOp = (opts.average ?? true) ? "avg" : "sum";
  tidy(() =>
    noGrad(() => {
      const byDtype = new Map<string, Tensor[]>();
      for (const p of params) {
        const g = p.grad;
        if (g === null) continue;
        const list = byDtype.get(g.dtype) ?? [];
        list.push(g);
        byDtype.set(g.dtype, list);
      }
      for (const grads of byDtype.values()) {
        const flat = cat(grads.map((g) => g.reshape(-1)));
        allReduce(flat, op);
        let offset = 0;
        for (const g of grads) {
          const n = g.numel;
          g.copy_(flat.narrow(0, offset, n).view(...g.shape));
          offset += n;
        }
      }
    }),
  );
}

/** Broadcasts parameters (or buffers) from `root` so that every rank starts from the same weights. */
export function broadcastParameters(params: Tensor[], root = 0): void {
  noGrad(() => {
    for (const p of params) broadcast(p, root);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Collectives on plain values (numbers, counts, strings); outside a process group (or in a group of one)
// they return this process's values.

/** Whether collectives reach other processes: a process group of more than one rank is initialised. */
export function isDistributed(): boolean {
  return isInitialized() && getWorldSize() > 1;
}

/** A float64 tensor of `values` (exact for bytes, lengths and counts below 2⁵³). */
export function tensorFromNumbers(values: readonly number[]): Tensor {
  return tensor(Float64Array.from(values), [values.length]);
}

/** `values` reduced element-wise over the process group (float64): every rank gets the result. */
export function allReduceNumbers(values: readonly number[], op: ReduceOp = "sum"): number[] {
  if (!isDistributed()) return [...values];
  return tidy(() => Array.from(allReduce(tensorFromNumbers(values), op).toTypedArray() as Float64Array));
}

/** Integer counts reduced element-wise over the process group in int64 (exact): every rank gets the result. */
export function allReduceCounts(values: BigInt64Array, op: ReduceOp = "sum"): BigInt64Array {
  if (!isDistributed()) return values.slice();
  const t = tensor(values, undefined, { dtype: "int64" });
  allReduce(t, op);
  return t.intoTypedArray() as BigInt64Array;
}

/** Every rank's string, in rank order (e.g. per-rank RNG states). */
export function gatherStrings(mine: string): string[] {
  if (!isDistributed()) return [mine];
  // Fixed-size all-reduce: each rank writes its bytes into its own slot.
  const world = getWorldSize();
  const rank = getRank();
  const bytes = Buffer.from(mine, "utf8");
  const len = tidy(() => allReduce(tensorFromNumbers([bytes.length]), "max").item());
  return tidy(() => {
    const buf = new Float64Array(world * (len + 1));
    buf[rank * (len + 1)] = bytes.length;
    for (let i = 0; i < bytes.length; i++) buf[rank * (len + 1) + 1 + i] = bytes[i]!;
    const all = allReduce(tensorFromNumbers(Array.from(buf)), "sum").toTypedArray() as Float64Array;
    const out: string[] = [];
    for (let r = 0; r < world; r++) {
      const n = all[r * (len + 1)]!;
      out.push(
        Buffer.from(Array.from(all.subarray(r * (len + 1) + 1, r * (len + 1) + 1 + n))).toString("utf8"),
      );
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Launcher

/** Resolves with a TCP port that was free a moment ago (bind port 0, read it, close). */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

export interface SpawnOptions {
  /** Number of processes (the world size). */
  nproc: number;
  /** Rendezvous port; default: a free port. */
  port?: number;
  /** Rendezvous host; default 127.0.0.1. With several machines: the address of node 0's machine. */
  addr?: string;
  /** Machines taking part (default 1); every machine runs `nproc` workers. */
  nnodes?: number;
  /** This machine's index among `nnodes` (default 0); its workers get ranks nodeRank·nproc + 0…nproc−1. */
  nodeRank?: number;
  /** Extra environment for every worker (on top of process.env). */
  env?: NodeJS.ProcessEnv;
  /** Node flags for the workers (default: none). */
  execArgv?: string[];
  /** Kill the remaining workers as soon as one fails (as torchrun does); default true. */
  killOnFailure?: boolean;
  /** Receives every output line; default: written to this process's stdout/stderr prefixed "[rank N] ". */
  onLine?: (rank: number, stream: "stdout" | "stderr", line: string) => void;
}

export interface WorkerExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Thrown by `spawnWorkers` when a worker exits with a non-zero code or a signal; `interruptedBy` is the signal the
 * launcher received and passed on to the workers, if that is why they stopped.
 */
export class WorkerFailedError extends Error {
  constructor(
    readonly exits: WorkerExit[],
    readonly interruptedBy: NodeJS.Signals | null = null,
  ) {
    const bad = exits
      .filter((e) => e.code !== 0)
      .map((e) => `rank ${e.rank} ${e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`}`);
    const why = interruptedBy ? `interrupted by ${interruptedBy}, passed on to the workers: ` : "";
    super(`dist.spawnWorkers: ${why}${bad.join(", ")}`);
    this.name = "WorkerFailedError";
  }
}

/** Signals a launcher passes on to its workers (Ctrl-C, a job scheduler's stop, a closed terminal). */
const FORWARDED_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Starts `nproc` Node processes running `script args…` with DEDOS_RANK, DEDOS_WORLD_SIZE, DEDOS_MASTER_ADDR and
 * DEDOS_MASTER_PORT set (so `initProcessGroup()` needs no arguments), streams their output line by line
 * prefixed with the rank, and resolves with their exit codes (by rank) once all have exited; rejects with a
 * `WorkerFailedError` if any failed.
 */
export async function spawnWorkers(script: string, args: string[], opts: SpawnOptions): Promise<number[]> {
  const { nproc } = opts;
  if (!Number.isInteger(nproc) || nproc < 1)
    throw new Error("dist.spawnWorkers: nproc must be an integer ≥ 1");
  const addr = opts.addr ?? "127.0.0.1";
  const nnodes = opts.nnodes ?? 1;
  const nodeRank = opts.nodeRank ?? 0;
  if (
    !Number.isInteger(nnodes) ||
    nnodes < 1 ||
    !Number.isInteger(nodeRank) ||
    nodeRank < 0 ||
    nodeRank >= nnodes
  )
    throw new Error(`dist.spawnWorkers: node rank ${nodeRank} of ${nnodes} nodes`);
  if (nnodes > 1 && opts.port === undefined)
    throw new Error("dist.spawnWorkers: several nodes need an agreed rendezvous port (opts.port)");
  const port = opts.port ?? (await findFreePort(addr));
  const killOnFailure = opts.killOnFailure ?? true;
  const onLine =
    opts.onLine ??
    ((rank: number, stream: "stdout" | "stderr", line: string) => {
      (stream === "stdout" ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`);
    });

  const children = Array.from({ length: nproc }, (_, rank) =>
    spawn(process.execPath, [...(opts.execArgv ?? []), script, ...args], {
      env: {
        ...process.env,
        ...opts.env,
        DEDOS_RANK: String(nodeRank * nproc + rank),
        DEDOS_WORLD_SIZE: String(nnodes * nproc),
        DEDOS_MASTER_ADDR: addr,
        DEDOS_MASTER_PORT: String(port),
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );

  // A signal to the launcher goes to every worker still running, so none is left orphaned; the launcher's own
  // default action (ending at once) waits until they have exited.
  let received: NodeJS.Signals | null = null;
  const forward = (signal: NodeJS.Signals) => {
    received = signal;
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  const exits = await Promise.all(
    children.map(
      (child, rank) =>
        new Promise<WorkerExit>((resolve) => {
          let open = 2;
          let exit: WorkerExit | undefined;
          const finish = () => {
            if (open === 0 && exit) resolve(exit);
          };
          for (const stream of ["stdout", "stderr"] as const) {
            const rl = createInterface({ input: child[stream], crlfDelay: Number.POSITIVE_INFINITY });
            rl.on("line", (line) => onLine(rank, stream, line));
            rl.on("close", () => {
              open--;
              finish();
            });
          }
          child.on("error", (err) => {
            onLine(rank, "stderr", `failed to start: ${err.message}`);
            exit = { rank, code: -1, signal: null };
            open = 0;
            finish();
          });
          child.on("exit", (code, signal) => {
            exit = { rank, code, signal };
            if (code !== 0 && killOnFailure) {
              for (const other of children)
                if (other !== child && other.exitCode === null) other.kill("SIGTERM");
            }
            finish();
          });
        }),
    ),
  ).finally(() => {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  });
  if (received || exits.some((e) => e.code !== 0)) throw new WorkerFailedError(exits, received);
  return exits.map((e) => e.code ?? -1);
}
