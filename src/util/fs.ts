// Atomic file writes, the one way every writer of dedos puts a file in place: the bytes go to a temporary
// name in the same folder (so the rename stays on one file system), are flushed, then renamed over the final
// name. A crash or a full disk leaves either the old file or the new one, never half of one, and the
// temporary file is removed on failure.
import { randomBytes } from "node:crypto";
import { closeSync, promises as fsp, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** The marker of dedos's temporary names: `.<name>.tmp-<pid>-<random>`; stale ones can be found by it. */
export const TEMP_MARKER = ".tmp-";

/** A fresh temporary path beside `file` (hidden, with the pid and a random tag). */
export function tempPathFor(file: string): string {
  return join(
    dirname(file),
    `.${basename(file)}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

/** Flushes a file or folder to disk (a folder: its entries, so a rename inside it is durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Runs `write(tmp)`, which must create the file at `tmp`, then renames it to `file`; `tmp` is gone on failure. */
export function writeAtomicWithSync(file: string, write: (tmp: string) => void): void {
  const tmp = tempPathFor(file);
  try {
    write(tmp);
    fsyncPath(tmp);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Asynchronous {@link writeAtomicWithSync} (e.g. an encoder that writes its own file). */
export async function writeAtomicWith(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(file);
  try {
    await write(tmp);
    fsyncPath(tmp);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/** Writes bytes to `file` atomically. */
export function writeFileAtomicSync(file: string, bytes: Uint8Array | string): void {
  writeAtomicWithSync(file, (tmp) => writeFileSync(tmp, bytes));
}

/** Asynchronous {@link writeFileAtomicSync}. */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  await writeAtomicWith(file, (tmp) => fsp.writeFile(tmp, bytes));
}
