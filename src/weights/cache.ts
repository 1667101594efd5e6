// Where weights live on disk, and when a cached file counts as complete.
//
// The cache folder is DEDOS_CACHE, else $XDG_CACHE_HOME/dedos, else ~/.cache/dedos. A weight's file lives at
// <cache>/<name>/<file path> (a folder weight is the folder <cache>/<name>); while it downloads, its bytes
// are in <final>.part beside it, and only a verified file is renamed to the final name.
//
// The complete-file rule: a file under its final name is complete when its size is the published one (when
// published) and, for a file whose SHA-256 is published, when the marker `.<file>.verified` beside it records
// that hash together with the file's current size and modification time. The marker is written after the
// download's streaming hash (or a re-hash) matched, so an unchanged file is never re-hashed; a file changed
// since (other size or mtime) is re-hashed once before use.
import { createHash, type Hash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../util/fs.js";
import { getWeight, type WeightEntry, type WeightFile } from "./registry.js";

export interface CacheOptions {
  /** The cache folder; default {@link cacheDir}(). */
  cacheDir?: string;
}

/** DEDOS_CACHE, else $XDG_CACHE_HOME/dedos, else ~/.cache/dedos. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DEDOS_CACHE) return env.DEDOS_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "dedos");
  return join(homedir(), ".cache", "dedos");
}

/** Where a registered weight is or would be: the file of a one-file weight, the folder of a folder weight. */
export function weightPath(name: string, o: CacheOptions = {}): string {
  const entry = getWeight(name);
  const folder = join(o.cacheDir ?? cacheDir(), entry.name);
  return entry.kind === "folder" ? folder : join(folder, ...entry.files[0]!.path.split("/"));
}

/** The final path of one file of a weight: <cache>/<name>/<file path>. */
export function weightFilePath(entry: WeightEntry, file: WeightFile, o: CacheOptions = {}): string {
  return join(o.cacheDir ?? cacheDir(), entry.name, ...file.path.split("/"));
}

/** The download in progress for a final path. */
export function partPath(final: string): string {
  return `${final}.part`;
}

/** The verified-marker of a final path: `.<file>.verified` in the same folder. */
export function markerPath(final: string): string {
  return join(dirname(final), `.${basename(final)}.verified`);
}

/** What a verified-marker records: the file's SHA-256 and the size and mtime it had when hashed. */
export interface VerifiedMarker {
  sha256: string;
  size: number;
  mtimeMs: number;
  url?: string;
  verifiedAt: string;
}

export async function readMarker(final: string): Promise<VerifiedMarker | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(markerPath(final), "utf8")) as VerifiedMarker;
    return typeof m.sha256 === "string" && typeof m.size === "number" ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Records that `final` (as it is now on disk) hashes to `sha256`. */
export async function writeMarker(final: string, sha256: string, url?: string): Promise<void> {
  const st = await fsp.stat(final);
  const m: VerifiedMarker = {
    sha256,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ...(url && { url }),
    verifiedAt: new Date().toISOString(),
  };
  await writeFileAtomic(markerPath(final), `${JSON.stringify(m, null, 2)}\n`);
}

export async function removeMarker(final: string): Promise<void> {
  await fsp.rm(markerPath(final), { force: true });
}

/** Feeds a file's bytes to `hash` as a stream (bounded memory); returns the number of bytes read. */
export async function hashFileInto(hash: Hash, path: string, signal?: AbortSignal): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  return n;
}

/** Lower-case hex SHA-256 of a file. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("sha256");
  await hashFileInto(h, path, signal);
  return h.digest("hex");
}

/**
 * A cached file's state without hashing it: complete (by the rule above), unverified (present, right size,
 * its published SHA-256 not yet confirmed for these bytes), wrong-size, partial (only a .part) or missing.
 */
export type FileState =
  | { state: "complete"; path: string; size: number }
  | { state: "unverified"; path: string; size: number }
  | { state: "wrong-size"; path: string; size: number }
  | { state: "partial"; path: string; size: number }
  | { state: "missing"; path: string };

export async function fileState(
  entry: WeightEntry,
  file: WeightFile,
  o: CacheOptions = {},
): Promise<FileState> {
  const path = weightFilePath(entry, file, o);
  const st = await fsp.stat(path).catch(() => undefined);
  if (!st?.isFile()) {
    const part = await fsp.stat(partPath(path)).catch(() => undefined);
    return part ? { state: "partial", path, size: part.size } : { state: "missing", path };
  }
  if (file.size !== undefined && st.size !== file.size) return { state: "wrong-size", path, size: st.size };
  if (file.sha256 === undefined) return { state: "complete", path, size: st.size };
  const m = await readMarker(path);
  const fresh = m && m.sha256 === file.sha256 && m.size === st.size && m.mtimeMs === st.mtimeMs;
  return { state: fresh ? "complete" : "unverified", path, size: st.size };
}

/** One line of a verification: the file, and ok / mismatch / unknown-hash / not-cached. */
export interface VerifyResult {
  weight: string;
  file: string;
  path: string;
  status: "ok" | "mismatch" | "unknown-hash" | "not-cached";
  expected?: string;
  actual?: string;
  /** Why a mismatch is one (hash or size), or what "not cached" found. */
  detail?: string;
}

/**
 * Re-hashes the cached files of a weight whose SHA-256 is published. A match refreshes the verified-marker;
 * a mismatch removes it (so the next fetch re-checks and downloads again). Files without a published hash
 * are reported as unknown-hash (a size that differs from the published one is still a mismatch).
 */
export async function verifyWeights(
  name: string,
  o: CacheOptions & { signal?: AbortSignal } = {},
): Promise<VerifyResult[]> {
  const entry = getWeight(name);
  const out: VerifyResult[] = [];
  for (const file of entry.files) {
    const s = await fileState(entry, file, o);
    const base = { weight: entry.name, file: file.path, path: s.path };
    if (s.state === "missing" || s.state === "partial") {
      const detail = s.state === "partial" ? `partial download, ${s.size} bytes` : undefined;
      out.push({ ...base, status: "not-cached", ...(detail && { detail }) });
    } else if (s.state === "wrong-size") {
      await removeMarker(s.path);
      out.push({ ...base, status: "mismatch", detail: `size ${s.size} bytes, expected ${file.size}` });
    } else if (file.sha256 === undefined) {
      out.push({ ...base, status: "unknown-hash" });
    } else {
      const actual = await sha256File(s.path, o.signal);
      if (actual === file.sha256) await writeMarker(s.path, actual, file.url);
      else await removeMarker(s.path);
      out.push({
        ...base,
        status: actual === file.sha256 ? "ok" : "mismatch",
        expected: file.sha256,
        actual,
        ...(actual !== file.sha256 && { detail: `SHA-256 ${actual}, expected ${file.sha256}` }),
      });
    }
  }
  return out;
}
