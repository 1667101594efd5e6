// Downloads of registered weights into the cache, never leaving half a file under its final name.
//
// Each file streams to <final>.part (hashed while streaming, bounded memory), is checked against its
// published size and SHA-256, flushed, and only then renamed into place. A transfer that breaks resumes
// with `Range: bytes=N-` (206: continue; 200: the server ignored the range, start over), after hashing the
// part already on disk; the ETag (or Last-Modified) of the first response is kept in <final>.part.validator
// and sent as If-Range, so a file that changed on the server meanwhile is fetched whole, not spliced.
// Redirects are followed (the Hub answers 302 to its CDN; relative Location headers too). DEDOS_OFFLINE=1
// never touches the network. Concurrent fetches of one file share the work: in one
// process through a map of running downloads, across processes through a `<final>.lock` file.
import { createHash, type Hash } from "node:crypto";
import { constants as fsc, promises as fsp } from "node:fs";
import http from "node:http";
import https from "node:https";
import { hostname } from "node:os";
import { dirname } from "node:path";
import {
  type CacheOptions,
  fileState,
  hashFileInto,
  partPath,
  removeMarker,
  sha256File,
  weightFilePath,
  weightPath,
  writeMarker,
} from "./cache.js";
import { fileUrl, getWeight, type WeightEntry, type WeightFile } from "./registry.js";

/** A progress report: one file of one weight. bytesDone only grows, unless a server ignores a resume. */
export interface FetchProgress {
  name: string;
  file: string;
  bytesDone: number;
  /** Undefined while the size is unknown (not published and no Content-Length yet). */
  bytesTotal: number | undefined;
  /** Over the last few seconds, of this session's bytes (a resumed prefix does not count). */
  rateBytesPerSecond: number;
  /** Undefined while the total or the rate is unknown. */
  etaSeconds: number | undefined;
}

export interface FetchOptions extends CacheOptions {
  /** Called at most every 100 ms per file, and once when a file's bytes are all there. */
  onProgress?: (p: FetchProgress) => void;
  /** Aborting stops the transfer; the .part file is kept, so the next fetch resumes it. */
  signal?: AbortSignal;
  /** Never touch the network; default: DEDOS_OFFLINE is 1 (or true/yes/on). */
  offline?: boolean;
  /** Attempts in a row that bring no new byte before giving up (default 4). */
  retries?: number;
  /** Wait before the first retry; doubles on each retry without progress, at most 30 s (default 500). */
  retryDelayMs?: number;
  /** A connection silent for this long counts as dropped (default 60000). */
  timeoutMs?: number;
}

export type WeightsErrorKind = "offline" | "http" | "network" | "size" | "checksum" | "aborted";

/** The one error a fetch ends with: names the weight and the URL (a checksum error: both hashes). */
export class WeightsError extends Error {
  constructor(
    readonly kind: WeightsErrorKind,
    readonly weight: string,
    readonly url: string,
    message: string,
  ) {
    super(message);
    this.name = "WeightsError";
  }
}

/** DEDOS_OFFLINE set to 1, true, yes or on. */
export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.DEDOS_OFFLINE?.trim() ?? "");
}

const running = new Map<string, Promise<void>>();

/**
 * Makes every file of a registered weight complete in the cache (downloading what is missing) and returns
 * its local path: the file, or the folder of a folder weight.
 *
 * @example
 *   const pth = await fetchWeights("catseg-vitb", { onProgress: (p) => console.log(p.bytesDone) });
 */
export async function fetchWeights(name: string, o: FetchOptions = {}): Promise<string> {
  const entry = getWeight(name);
  for (const file of entry.files) {
    const final = weightFilePath(entry, file, o);
    for (;;) {
      let job = running.get(final);
      const shared = job !== undefined;
      if (!job) {
        job = ensureFile(entry, file, final, o).finally(() => running.delete(final));
        running.set(final, job);
      }
      try {
        await job;
        break;
      } catch (e) {
        // another caller's download was aborted by its own signal: this caller goes on with its own
        if (!(shared && e instanceof WeightsError && e.kind === "aborted" && !o.signal?.aborted)) throw e;
      }
    }
  }
  return weightPath(name, o);
}

/** True when the file is complete in the cache; re-hashes a file whose verified-marker is stale. */
async function isComplete(entry: WeightEntry, file: WeightFile, o: FetchOptions): Promise<boolean> {
  const s = await fileState(entry, file, o);
  if (s.state === "complete") return true;
  if (s.state !== "unverified") return false;
  const actual = await sha256File(s.path, o.signal);
  if (actual !== file.sha256) {
    await removeMarker(s.path);
    return false;
  }
  await writeMarker(s.path, actual, file.url);
  return true;
}

async function ensureFile(
  entry: WeightEntry,
  file: WeightFile,
  final: string,
  o: FetchOptions,
): Promise<void> {
  if (await isComplete(entry, file, o)) return;
  const url = fileUrl(file);
  if (o.offline ?? isOffline()) {
    const s = await fileState(entry, file, o);
    const why =
      s.state === "missing" || s.state === "partial"
        ? "is not in the cache"
        : "is in the cache but does not match its published size or SHA-256";
    throw new WeightsError(
      "offline",
      entry.name,
      url,
      `weights "${entry.name}": ${final} ${why}, and DEDOS_OFFLINE=1 forbids downloading it from ${url}`,
    );
  }
  await fsp.mkdir(dirname(final), { recursive: true });
  await withLock(final, o.signal, async () => {
    if (await isComplete(entry, file, o)) return; // another process finished it meanwhile
    await new Download(entry, file, url, final, o).run();
  });
}

/** Thrown inside an attempt for a failure that a new attempt may cure (dropped connection, 5xx, timeout). */
class Retryable extends Error {}

const FLUSH_BYTES = 1 << 20;

/** One file's transfer, with its resume state: the .part handle, the hash of its bytes, their count. */
class Download {
  private hash: Hash = createHash("sha256");
  private done = 0;
  private total: number | undefined;
  private readonly meter = new RateMeter();
  private lastReport = 0;
  private lastReported = "";
  private readonly part: string;
  private fh: fsp.FileHandle | undefined;
  private finalUrl: string;
  /** If-Range value for resuming: a strong ETag or Last-Modified of the response that began the .part. */
  private validator: string | undefined;

  constructor(
    private readonly entry: WeightEntry,
    private readonly file: WeightFile,
    private readonly url: string,
    private readonly final: string,
    private readonly o: FetchOptions,
  ) {
    this.part = partPath(final);
    this.total = file.size;
    this.finalUrl = url;
  }

  async run(): Promise<void> {
    try {
      await this.resumeFromDisk();
      await this.transferWithRetries();
      await this.fh!.sync();
    } catch (e) {
      throw this.explain(e);
    } finally {
      await this.fh?.close();
    }
    await this.verifyAndPlace();
  }

  /** Opens the .part without truncating it and hashes the bytes already there. */
  private async resumeFromDisk(): Promise<void> {
    const st = await fsp.stat(this.part).catch(() => undefined);
    if (st && this.file.size !== undefined && st.size > this.file.size) await fsp.rm(this.part);
    this.fh = await fsp.open(this.part, fsc.O_WRONLY | fsc.O_CREAT);
    if (st && st.size > 0 && (this.file.size === undefined || st.size <= this.file.size))
      this.done = await hashFileInto(this.hash, this.part, this.o.signal);
    await this.fh.truncate(this.done);
    const v = this.done > 0 ? await fsp.readFile(this.validatorPath, "utf8").catch(() => "") : "";
    this.validator = v.trim() || undefined;
    this.meter.reset(this.done);
  }

  private async transferWithRetries(): Promise<void> {
    const retries = this.o.retries ?? 4;
    const baseDelay = this.o.retryDelayMs ?? 500;
    let stalls = 0;
    let failures = 0;
    for (;;) {
      this.o.signal?.throwIfAborted();
      if (this.file.size !== undefined && this.done === this.file.size) return; // nothing left to fetch
      const before = this.done;
      try {
        await this.attempt();
        return;
      } catch (e) {
        if (!(e instanceof Retryable) || this.o.signal?.aborted) throw e;
        failures++;
        stalls = this.done > before ? 0 : stalls + 1;
        if (stalls > retries || failures > 50)
          throw new Retryable(`${e.message} (gave up after ${failures} attempts)`);
        await sleep(Math.min(30_000, baseDelay * 2 ** Math.max(0, stalls - 1)), this.o.signal);
      }
    }
  }

  /** One request: resumes at `done`, appends the body to the .part, hashing it. */
  private async attempt(): Promise<void> {
    const headers: Record<string, string> = {};
    if (this.done > 0) headers.range = `bytes=${this.done}-`;
    if (this.done > 0 && this.validator) headers["if-range"] = this.validator;
    const { res, url } = await openResponse(this.url, headers, this.o);
    this.finalUrl = url;
    const status = res.statusCode ?? 0;
    const range = parseContentRange(res.headers["content-range"]);
    if (status === 416) {
      res.resume();
      if (range?.total !== undefined && range.total === this.done) {
        this.total = range.total; // the .part already holds every byte
        return;
      }
      const msg = `the server cannot serve bytes=${this.done}- (HTTP 416)`;
      await this.startOver();
      throw new Retryable(msg);
    }
    if (status === 206) {
      if (!range || range.start !== this.done) {
        res.destroy();
        const msg = `the server answered range ${res.headers["content-range"]} to bytes=${this.done}-`;
        await this.startOver();
        throw new Retryable(msg);
      }
      this.total = range.total ?? this.file.size;
    } else if (status >= 200 && status < 300) {
      if (this.done > 0) await this.startOver(); // Range ignored: the body is the whole file
      const cl = res.headers["content-length"];
      const len = cl === undefined ? Number.NaN : Number(cl);
      this.total = Number.isSafeInteger(len) ? len : this.file.size;
      await this.keepValidator(res);
    } else {
      res.resume();
      const msg = `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ""}`;
      if (status >= 500 || status === 429 || status === 408) throw new Retryable(msg);
      throw new WeightsError("http", this.entry.name, this.url, msg);
    }
    if (this.file.size !== undefined && this.total !== this.file.size) {
      res.destroy();
      throw new WeightsError(
        "size",
        this.entry.name,
        this.url,
        `the server announces ${this.total} bytes, the registry ${this.file.size}`,
      );
    }
    this.report(true);
    await this.consume(res);
    if (this.total !== undefined && this.done < this.total)
      throw new Retryable(`connection closed at byte ${this.done} of ${this.total}`);
    this.total ??= this.done;
    this.report(true);
  }

  /** Streams the body to disk in batches of about 1 MB; bytes received before a drop are kept. */
  private async consume(res: http.IncomingMessage): Promise<void> {
    let batch: Buffer[] = [];
    let batched = 0;
    let flushedAt = performance.now();
    const flush = async () => {
      flushedAt = performance.now();
      if (batched === 0) return;
      const chunks = batch;
      batch = [];
      batched = 0;
      let n = 0;
      for (const c of chunks) n += c.length;
      const { bytesWritten } = await this.fh!.writev(chunks, this.done);
      if (bytesWritten !== n) throw new Error(`short write to ${this.part}`);
      for (const c of chunks) this.hash.update(c);
      this.done += n;
      this.report(false);
    };
    try {
      for await (const chunk of res) {
        batch.push(chunk as Buffer);
        batched += (chunk as Buffer).length;
        // about 1 MB per write on a fast link; at least every 100 ms on a slow one (progress stays live)
        if (batched >= FLUSH_BYTES || performance.now() - flushedAt > 100) await flush();
      }
    } catch (e) {
      await flush();
      if (this.o.signal?.aborted) throw e;
      throw new Retryable(`connection dropped at byte ${this.done}${this.total ? ` of ${this.total}` : ""}`);
    }
    await flush();
  }

  private get validatorPath(): string {
    return `${this.part}.validator`;
  }

  /** Records what identifies this version of the file, for If-Range on a later resume. */
  private async keepValidator(res: http.IncomingMessage): Promise<void> {
    const etag = res.headers.etag;
    const v = etag && !etag.startsWith("W/") ? etag : res.headers["last-modified"];
    this.validator = v;
    if (v) await fsp.writeFile(this.validatorPath, v);
    else await fsp.rm(this.validatorPath, { force: true });
  }

  private async startOver(): Promise<void> {
    await this.fh!.truncate(0);
    this.hash = createHash("sha256");
    this.done = 0;
    this.meter.reset(0);
  }

  private report(force: boolean): void {
    if (!this.o.onProgress) return;
    const now = performance.now();
    this.meter.add(now, this.done);
    const atEnd = this.total !== undefined && this.done === this.total;
    if (!force && !atEnd && now - this.lastReport < 100) return;
    const key = `${this.done}/${this.total}`;
    if (key === this.lastReported) return;
    this.lastReport = now;
    this.lastReported = key;
    const rate = this.meter.rate(now);
    this.o.onProgress({
      name: this.entry.name,
      file: this.file.path,
      bytesDone: this.done,
      bytesTotal: this.total,
      rateBytesPerSecond: rate,
      etaSeconds:
        this.total === undefined
          ? undefined
          : atEnd
            ? 0
            : rate > 0
              ? (this.total - this.done) / rate
              : undefined,
    });
  }

  /** Size and SHA-256 checks, then the rename: the only way a file reaches its final name. */
  private async verifyAndPlace(): Promise<void> {
    const where = `weights "${this.entry.name}": ${this.url}`;
    const expectedSize = this.file.size ?? this.total;
    await fsp.rm(this.validatorPath, { force: true });
    if (expectedSize !== undefined && this.done !== expectedSize) {
      await fsp.rm(this.part, { force: true });
      throw new WeightsError(
        "size",
        this.entry.name,
        this.url,
        `${where}: downloaded ${this.done} bytes, expected ${expectedSize}; the partial download ${this.part} was deleted`,
      );
    }
    const actual = this.hash.digest("hex");
    if (this.file.sha256 !== undefined && actual !== this.file.sha256) {
      await fsp.rm(this.part, { force: true });
      throw new WeightsError(
        "checksum",
        this.entry.name,
        this.url,
        `${where}: SHA-256 mismatch: expected ${this.file.sha256}, got ${actual}; the download ${this.part} was deleted (try again, or check DEDOS_ENDPOINT / the registry entry)`,
      );
    }
    await fsp.rename(this.part, this.final);
    await writeMarker(this.final, actual, this.url);
  }

  /** The one message a failure ends with. */
  private explain(e: unknown): Error {
    const name = this.entry.name;
    const via = this.finalUrl !== this.url ? ` (redirected to ${this.finalUrl})` : "";
    const head = `weights "${name}": download of ${this.url}${via}`;
    if (this.o.signal?.aborted)
      return new WeightsError(
        "aborted",
        name,
        this.url,
        `${head} aborted at byte ${this.done}; ${this.keptNote()}`,
      );
    if (e instanceof WeightsError)
      return new WeightsError(e.kind, name, this.url, `${head} failed: ${e.message}`);
    if (e instanceof Retryable)
      return new WeightsError("network", name, this.url, `${head} failed: ${e.message}; ${this.keptNote()}`);
    return new WeightsError("network", name, this.url, `${head} failed: ${(e as Error).message}`);
  }

  private keptNote(): string {
    return this.done > 0
      ? `the ${this.done} bytes received are kept in ${this.part} and the next fetch resumes from there`
      : "nothing was received";
  }
}

/** Bytes per second over the last few seconds. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];

  reset(bytes: number): void {
    this.samples = [{ t: performance.now(), bytes }];
  }

  add(t: number, bytes: number): void {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[1]!.t > 3000) this.samples.shift();
  }

  rate(t: number): number {
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const dt = (t - first.t) / 1e3;
    return dt > 0.05 ? Math.max(0, last.bytes - first.bytes) / dt : 0;
  }
}

/** "bytes 100-199/1000" → { start: 100, total: 1000 }; "bytes *\/1000" → { start: undefined, total: 1000 } */
function parseContentRange(
  h: string | undefined,
): { start: number | undefined; total: number | undefined } | undefined {
  const m = h ? /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(h.trim()) : null;
  if (!m) return undefined;
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    total: m[2] === "*" ? undefined : Number(m[2]),
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** GET with `extraHeaders` (Range, If-Range) on every hop, following up to 10 redirects (absolute, relative). */
async function openResponse(
  url: string,
  extraHeaders: Record<string, string>,
  o: FetchOptions,
): Promise<{ res: http.IncomingMessage; url: string }> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const res = await get(current, extraHeaders, o);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || !location) return { res, url: current.href };
    res.resume();
    if (hop >= 10) throw new WeightsError("http", "", url, `more than 10 redirects (last to ${location})`);
    current = new URL(location, current);
  }
}

const USER_AGENT = `dedos (node ${process.version})`;

function get(url: URL, extraHeaders: Record<string, string>, o: FetchOptions): Promise<http.IncomingMessage> {
  if (url.protocol !== "https:" && url.protocol !== "http:")
    return Promise.reject(new WeightsError("http", "", url.href, `unsupported protocol ${url.protocol}`));
  const timeoutMs = o.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const headers = { "user-agent": USER_AGENT, "accept-encoding": "identity", ...extraHeaders };
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.get(url, { headers, signal: o.signal }, (res) => {
      const onAbort = () => res.destroy(o.signal!.reason as Error);
      o.signal?.addEventListener("abort", onAbort, { once: true });
      res.once("close", () => o.signal?.removeEventListener("abort", onAbort));
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Retryable(`no data for ${timeoutMs / 1000} s`)));
    req.on("error", (e) =>
      reject(o.signal?.aborted ? e : e instanceof Retryable ? e : new Retryable(e.message)),
    );
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `fn` holding `<final>.lock` (created exclusively; it records pid and host and is touched every 15 s).
 * A lock whose process is gone (same host) or untouched for 60 s (another host) is stale and taken over.
 */
async function withLock<T>(final: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const lock = `${final}.lock`;
  for (;;) {
    signal?.throwIfAborted();
    try {
      await fsp.writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname() }), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (await lockIsStale(lock)) await fsp.rm(lock, { force: true });
      else await sleep(500, signal);
    }
  }
  const beat = setInterval(() => {
    const now = new Date();
    fsp.utimes(lock, now, now).catch(() => {});
  }, 15_000);
  beat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(beat);
    await fsp.rm(lock, { force: true });
  }
}

async function lockIsStale(lock: string): Promise<boolean> {
  const st = await fsp.stat(lock).catch(() => undefined);
  if (!st) return false; // gone: just retry
  try {
    const { pid, host } = JSON.parse(await fsp.readFile(lock, "utf8")) as { pid: number; host: string };
    if (host === hostname()) {
      try {
        process.kill(pid, 0);
        return false;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === "ESRCH";
      }
    }
  } catch {}
  return Date.now() - st.mtimeMs > 60_000;
}
