// Atomic file writes, the one way every writer of dedos puts a file in place: the bytes go to a temporary
// name in the same folder (so the rename stays on one file system), are flushed, then renamed over the final
// name. A crash or a full disk leaves either the old file or the new one, never half of one, and the
// temporary file is removed on failure.
import { randomBytes } from "node:crypto";
import { closeSync, promises as fsp, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

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

/**
 * One member of a set for {@link writeFileSetAtomic}: its bytes, a function that creates the file at the
 * temporary path it is given (e.g. an encoder writing its own file), or `remove: true` for a file that must
 * not outlive the set (an output the new set no longer has; missing is fine).
 */
export type FileSetEntry =
  | { file: string; data: Uint8Array | string }
  | { file: string; write: (tmp: string) => void | Promise<void> }
  | { file: string; remove: true };

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** `e` with `file` in its message (Node's ENOSPC / EISDIR messages name no path); code and cause kept. */
function naming(file: string, e: unknown): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  if (err.message.includes(file)) return err;
  const named = new Error(`cannot write ${file}: ${err.message}`, { cause: err });
  const code = errorCode(err);
  if (code) (named as NodeJS.ErrnoException).code = code;
  return named;
}

/** The file at `path` if something is there (not following a symlink), else undefined. */
async function lstatOrUndefined(path: string) {
  try {
    return await fsp.lstat(path);
  } catch (e) {
    if (errorCode(e) === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Writes several files as one set: a reader sees the whole old set or the whole new one, never a mix.
 * 1. every file is written to a temporary name beside its final one ({@link tempPathFor}) and flushed;
 * 2. nothing but a file may sit at a final name (a directory there would fail a rename half way);
 * 3. only then are they renamed into place one after another (and `remove` entries taken away), the old
 *    files kept under temporary names until the last rename, so that a failing rename puts every old file
 *    back.
 * On any failure the error names the file, no temporary file stays behind and the old set is as it was.
 * A kill between two renames of step 3 can leave a mix; the old files then sit under temporary names
 * (`.<name>.tmp-…`, {@link TEMP_MARKER}).
 */
export async function writeFileSetAtomic(entries: readonly FileSetEntry[]): Promise<void> {
  const seen = new Set<string>();
  for (const e of entries) {
    const key = resolve(e.file);
    if (seen.has(key)) throw new Error(`writeFileSetAtomic: ${e.file} is given twice`);
    seen.add(key);
  }
  const temps: (string | undefined)[] = entries.map(() => undefined);
  const removeTemps = async () => {
    for (const t of temps) if (t) await fsp.rm(t, { force: true });
  };
  try {
    for (const [i, e] of entries.entries()) {
      if ("remove" in e) continue;
      const tmp = tempPathFor(e.file);
      temps[i] = tmp;
      try {
        if ("data" in e) await fsp.writeFile(tmp, e.data);
        else await e.write(tmp);
        fsyncPath(tmp);
      } catch (err) {
        throw naming(e.file, err);
      }
    }
    for (const e of entries) {
      const st = await lstatOrUndefined(e.file);
      if (st?.isDirectory()) {
        const err = new Error(`cannot write ${e.file}: a directory is in the way (EISDIR)`);
        (err as NodeJS.ErrnoException).code = "EISDIR";
        throw err;
      }
    }
  } catch (e) {
    await removeTemps();
    throw e;
  }

  // Step 3: each old file gets a second name first (a hard link; a copy where links are not supported), so
  // that a failed rename can put it back.
  const backups: (string | undefined)[] = entries.map(() => undefined);
  const placed: number[] = [];
  try {
    for (const [i, e] of entries.entries()) {
      const st = await lstatOrUndefined(e.file);
      if (!st) continue;
      const backup = tempPathFor(e.file);
      if ("remove" in e) {
        await fsp.rename(e.file, backup);
        backups[i] = backup;
        placed.push(i);
        continue;
      }
      try {
        await fsp.link(e.file, backup);
      } catch {
        await fsp.copyFile(e.file, backup);
      }
      backups[i] = backup;
    }
    for (const [i, e] of entries.entries()) {
      if ("remove" in e) continue;
      try {
        await fsp.rename(temps[i]!, e.file);
      } catch (err) {
        throw naming(e.file, err);
      }
      temps[i] = undefined;
      placed.push(i);
    }
  } catch (e) {
    for (const i of placed.reverse()) {
      const { file } = entries[i]!;
      const backup = backups[i];
      try {
        if (backup) {
          await fsp.rename(backup, file);
          backups[i] = undefined;
        } else await fsp.rm(file, { force: true });
      } catch {
        // Best effort: the old file stays under its temporary name (a TEMP_MARKER name) if this fails too.
      }
    }
    await removeTemps();
    for (const b of backups) if (b) await fsp.rm(b, { force: true });
    throw e;
  }
  for (const b of backups) if (b) await fsp.rm(b, { force: true });
  for (const dir of new Set(entries.map((e) => dirname(resolve(e.file))))) {
    try {
      fsyncPath(dir);
    } catch {
      // Some file systems cannot fsync a folder; the renames are done either way.
    }
  }
}
