// The run folder's guards: one training run at a time per folder (a lock file), the litter of interrupted
// writes removed at start, and write errors that name the file and the cause.
//
//   <out>/.lock   {"pid": 1234, "host": "node-7", "started": "2025-…"}: created exclusively (`wx`) by rank 0
//                 of the run using the folder, removed when it ends (also on error, and on process.exit).
//
// A second run refuses the folder while the owner lives. A lock whose pid is not alive on this host
// (process.kill(pid, 0) fails with ESRCH: the run was killed) is stale and taken over with a note. A lock of
// another host cannot be checked from here and is refused, naming the file to delete once that run is known
// to be gone.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { TEMP_MARKER } from "../util/fs.js";

export const LOCK_FILE = ".lock";

/** What a lock file holds. */
interface LockOwner {
  pid: number;
  host: string;
  started?: string;
}

/** The folder is in use by a live run. */
export class RunFolderLockedError extends Error {
  constructor(
    readonly folder: string,
    readonly owner: LockOwner | null,
    detail: string,
  ) {
    super(detail);
    this.name = "RunFolderLockedError";
  }
}

/** Lock files this process holds (a lock naming this pid is stale only if it is not among them). */
const held = new Set<string>();

/** A held lock; `release()` removes the file (only while it is still this process's). */
export interface RunLock {
  file: string;
  release(): void;
}

/**
 * Takes `<out>/.lock` for this process (creating `out`); throws RunFolderLockedError naming the folder and
 * the owner's pid when a live run holds it. A stale lock is taken over, with a note through `note`.
 */
export function acquireRunLock(out: string, note: (line: string) => void): RunLock {
  const file = join(out, LOCK_FILE);
  writingFile(out, () => mkdirSync(out, { recursive: true }), "run folder");
  const mine: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, "wx");
      try {
        writeSync(fd, `${JSON.stringify(mine)}\n`);
      } finally {
        closeSync(fd);
      }
      held.add(file);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw fileWriteError(file, e, "lock");
      if (attempt >= 5)
        throw new RunFolderLockedError(
          out,
          null,
          `${out}: other runs keep taking its lock ${file}; use another --out`,
        );
    }
    const seen = readLock(file);
    if (seen === "gone") continue; // released meanwhile: try again
    const stale = staleness(seen, file);
    if (stale === null) {
      const who = seen === "unreadable" ? null : seen;
      throw new RunFolderLockedError(
        out,
        who,
        who
          ? `${out} is in use by another training run (pid ${who.pid} on ${who.host}${who.started ? `, started ${who.started}` : ""}; lock file ${file}). ` +
              `Wait for it to end, stop it, or use another --out` +
              (who.host !== hostname() ? `; if that run is gone, delete ${file}` : "")
          : `${out} is being taken by another training run (lock file ${file} is being written); use another --out`,
      );
    }
    // Take it over: move it aside first, then check that what was moved is the stale lock that was judged
    // (another starter may have replaced it meanwhile; then it goes back and the folder is refused).
    const aside = `${file}${TEMP_MARKER}${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // someone else moved it: look again
    }
    const moved = readLock(aside);
    if (JSON.stringify(moved) !== JSON.stringify(seen)) {
      try {
        renameSync(aside, file);
      } catch {
        // best effort
      }
      continue;
    }
    rmSync(aside, { force: true });
    note(`note: took over the stale lock ${file}: ${stale}`);
  }
  let holding = true;
  const release = () => {
    if (!holding) return;
    holding = false;
    held.delete(file);
    process.off("exit", release);
    const now = readLock(file);
    if (typeof now === "object" && now.pid === mine.pid && now.host === mine.host)
      rmSync(file, { force: true });
  };
  process.on("exit", release);
  return { file, release };
}

function readLock(file: string): LockOwner | "unreadable" | "gone" {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "unreadable";
  }
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    if (typeof v.pid === "number" && Number.isInteger(v.pid) && v.pid > 0 && typeof v.host === "string")
      return { pid: v.pid, host: v.host, started: typeof v.started === "string" ? v.started : undefined };
  } catch {
    // below
  }
  return "unreadable";
}

/** Why a lock is stale, or null when its owner may be alive. */
function staleness(seen: LockOwner | "unreadable", file: string): string | null {
  if (seen === "unreadable") {
    // Empty or garbled: a starter killed between creating and writing it, or one writing it right now.
    let age = 0;
    try {
      age = Date.now() - statSync(file).mtimeMs;
    } catch {
      return null;
    }
    return age > 10_000 ? "it is unreadable and over 10 s old" : null;
  }
  if (seen.host !== hostname()) return null;
  if (seen.pid === process.pid)
    return held.has(file) ? null : "it names this process, which does not hold it";
  try {
    process.kill(seen.pid, 0);
    return null; // alive (or alive under another user: EPERM)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return `pid ${seen.pid} is not running`;
    return null;
  }
}

/** The files of the run folder itself that training writes atomically (their temporaries are `.<name>.tmp-…`). */
const RUN_FILES = ["config.json", "metrics.jsonl", "model_final.safetensors", LOCK_FILE.slice(1)];

/**
 * Removes the temporary files and folders that interrupted writes left: every `.tmp-` name in the
 * checkpoints folder (training's own), and those of training's files in the run folder (other files there
 * are left alone). Call it while holding the lock: no write of another run can be under way. Returns what
 * was removed.
 */
export function removeStaleTemporaries(out: string, checkpoints: string): string[] {
  const removed: string[] = [];
  for (const dir of [out, checkpoints]) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const ours =
        dir === checkpoints
          ? name.includes(TEMP_MARKER)
          : RUN_FILES.some((f) => name.startsWith(`.${f}${TEMP_MARKER}`));
      if (!ours) continue;
      const path = join(dir, name);
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

/**
 * A write error naming the file and the cause: Node's ENOSPC / EFBIG / EACCES messages name no path (or
 * a temporary one). `what` says what was being written (e.g. "checkpoint"). The code is kept.
 */
export function fileWriteError(file: string, e: unknown, what?: string): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as NodeJS.ErrnoException).code;
  const hint =
    code === "ENOSPC"
      ? " (the disk is full)"
      : code === "EFBIG"
        ? " (the file size limit was reached)"
        : code === "EDQUOT"
          ? " (the disk quota is used up)"
          : "";
  const named = new Error(`cannot write ${what ? `${what} file ` : ""}${file}: ${err.message}${hint}`, {
    cause: err,
  });
  if (code) (named as NodeJS.ErrnoException).code = code;
  return named;
}

/** Runs a write, turning its error into a {@link fileWriteError}. */
export function writingFile<T>(file: string, write: () => T, what?: string): T {
  try {
    return write();
  } catch (e) {
    throw fileWriteError(file, e, what);
  }
}
