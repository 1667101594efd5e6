// `dedos weights list | fetch NAME… | path NAME | verify [NAME…]`: real weights by name, cached on disk.
import { formatSeconds } from "../util/progress.js";
import { cacheDir, fileState, verifyWeights } from "../weights/cache.js";
import { type FetchProgress, fetchWeights, isOffline } from "../weights/download.js";
import {
  entrySize,
  getWeight,
  hubEndpoint,
  listWeights,
  type WeightEntry,
  weightNames,
} from "../weights/registry.js";
import { parseCommandArgs } from "./options.js";

const HELP = `dedos weights — real weights by name: list, fetch into the cache, print the path, verify

Usage:
  dedos weights list [--json]         every name: size (when published), cached or not, config, licence
  dedos weights fetch NAME...         download into the cache (a progress line on a terminal)
  dedos weights path NAME             print the local path (fetching it first unless DEDOS_OFFLINE=1)
  dedos weights verify [NAME...]      re-hash cached files whose SHA-256 is published (default: all names);
                                      prints ok / mismatch / unknown hash / not cached; exit 1 on a mismatch

Options:
  --json           list: one JSON array (name, kind, files, config, licence, cached state)
  --no-progress    fetch, path: no progress line
  -h, --help       this text

Use a fetched weight by its path, e.g.
  dedos segment street.jpg --classes "road; car; sky" --config vitb_384 \\
    --weights "$(dedos weights path catseg-vitb)"
  dedos segment ... --weights model_final.safetensors --sd "$(dedos weights path sd2-base)"

Cache: a weight lives at <cache>/<name>/<file>, where <cache> is DEDOS_CACHE, else $XDG_CACHE_HOME/dedos,
else ~/.cache/dedos. Downloads go to <file>.part, resume after a dropped connection (HTTP Range), are checked
against the published size and SHA-256 where known, and only then renamed into place; an interrupted fetch
(Ctrl-C) keeps the .part and the next fetch continues it. A file whose SHA-256 is published is re-hashed
only when it changed since it was verified (the marker .<file>.verified beside it records size and mtime).

Environment:
  DEDOS_CACHE=DIR            the cache folder
  DEDOS_OFFLINE=1            never touch the network; a weight missing from the cache is an error
  DEDOS_ENDPOINT=URL         replaces https://huggingface.co in Hub addresses (a mirror), like HF_ENDPOINT
  DEDOS_REGISTRY_EXTRA=FILE  adds private weights: a JSON object of name -> entry, e.g.
      { "my-catseg": { "url": "https://example.org/w/model_final.pth", "size": 123456,
                       "sha256": "<64 hex>", "config": "vitb_384", "licence": "in-house" },
        "my-sd": { "files": [ { "path": "unet/config.json", "url": "https://..." }, ... ] } }
      size and sha256 are optional (unknown ones are not checked); built-in names cannot be replaced.

Exit codes: 0 done, 1 a download or verification failed, 2 bad usage or an unknown name.`;

export async function weightsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    json: { type: "boolean" },
    "no-progress": { type: "boolean" },
  });
  const [sub, ...names] = positionals;
  if (values.help || sub === "help") {
    console.log(HELP);
    return 0;
  }
  const usage = (msg: string) => {
    console.error(`dedos weights: ${msg}\n\n${HELP}`);
    return 2;
  };
  if (!sub) return usage("expected a subcommand: list, fetch, path or verify");
  const unknown = names.filter((n) => !weightNames().includes(n));
  if (unknown.length > 0) {
    console.error(
      `dedos weights: unknown weight name${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => `"${n}"`).join(", ")} (registered: ${weightNames().join(", ")})`,
    );
    return 2;
  }
  const progress = !values["no-progress"] && process.stderr.isTTY === true;
  switch (sub) {
    case "list":
      if (names.length > 0) return usage("list takes no names");
      return listCommand(values.json === true);
    case "fetch":
      if (names.length === 0) return usage("fetch needs at least one NAME");
      return fetchCommand(names, progress);
    case "path":
      if (names.length !== 1) return usage("path needs exactly one NAME");
      return fetchCommand(names, progress);
    case "verify":
      return verifyCommand(names.length > 0 ? names : weightNames());
    default:
      return usage(`unknown subcommand "${sub}"`);
  }
}

/** "351.2 MB" (decimal units, as download sizes are usually quoted). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** How much of a weight is in the cache, in a few words, without hashing anything. */
async function cachedSummary(entry: WeightEntry): Promise<string> {
  const states = await Promise.all(entry.files.map((f) => fileState(entry, f)));
  const complete = states.filter((s) => s.state === "complete").length;
  if (complete === states.length) return "yes";
  if (entry.kind === "file") {
    const s = states[0]!;
    const size = entry.files[0]!.size;
    if (s.state === "partial")
      return size ? `partial ${Math.floor((100 * s.size) / size)}%` : `partial ${formatBytes(s.size)}`;
    return s.state === "missing" ? "no" : s.state === "unverified" ? "unverified" : "wrong size";
  }
  return complete === 0 && states.every((s) => s.state === "missing")
    ? "no"
    : `${complete}/${states.length} files`;
}

async function listCommand(json: boolean): Promise<number> {
  const entries = listWeights();
  const rows = await Promise.all(
    entries.map(async (e) => {
      const size = entrySize(e);
      return {
        name: e.name,
        size: size === undefined ? "?" : formatBytes(size),
        cached: await cachedSummary(e),
        config: e.config,
        licence: e.licence,
        entry: e,
      };
    }),
  );
  if (json) {
    const out = rows.map((r) => ({ ...r.entry, cached: r.cached }));
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  const head = { name: "NAME", size: "SIZE", cached: "CACHED", config: "CONFIG", licence: "LICENCE" };
  const cols = ["name", "size", "cached", "config"] as const;
  const width = Object.fromEntries(
    cols.map((c) => [c, Math.max(head[c].length, ...rows.map((r) => r[c].length))]),
  ) as Record<(typeof cols)[number], number>;
  for (const r of [head, ...rows])
    console.log(`${cols.map((c) => r[c].padEnd(width[c])).join("  ")}  ${r.licence}`);
  const endpoint = hubEndpoint();
  console.log(
    `\ncache: ${cacheDir()}${isOffline() ? "  (DEDOS_OFFLINE=1)" : ""}${endpoint !== "https://huggingface.co" ? `  Hub: ${endpoint}` : ""}`,
  );
  console.log("SIZE ? = not published (the download is then checked against the server's length only)");
  return 0;
}

/** One updating line on stderr: name, file, bytes, percentage, rate and ETA. */
export function progressLine(p: FetchProgress): string {
  const total = p.bytesTotal;
  const bytes =
    total === undefined
      ? formatBytes(p.bytesDone)
      : `${formatBytes(p.bytesDone)} / ${formatBytes(total)} (${total > 0 ? Math.floor((100 * p.bytesDone) / total) : 100}%)`;
  const eta = p.etaSeconds === undefined ? "?" : formatSeconds(p.etaSeconds);
  return `${p.name} ${p.file}  ${bytes}  ${formatBytes(p.rateBytesPerSecond)}/s  ETA ${eta}`;
}

async function fetchCommand(names: string[], progress: boolean): Promise<number> {
  const ac = new AbortController();
  const onSigint = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  let lineOpen = false;
  const onProgress = (p: FetchProgress) => {
    process.stderr.write(`\r${progressLine(p)}\x1b[K`);
    lineOpen = p.bytesTotal === undefined || p.bytesDone < p.bytesTotal;
    if (!lineOpen) process.stderr.write("\n");
  };
  let failed = 0;
  try {
    for (const name of names) {
      try {
        const path = await fetchWeights(name, { signal: ac.signal, ...(progress && { onProgress }) });
        if (lineOpen) process.stderr.write("\n");
        lineOpen = false;
        console.log(path);
      } catch (e) {
        if (lineOpen) process.stderr.write("\n");
        lineOpen = false;
        console.error(`dedos weights: ${(e as Error).message}`);
        failed++;
        if (ac.signal.aborted) return 130;
      }
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
  return failed > 0 ? 1 : 0;
}

async function verifyCommand(names: string[]): Promise<number> {
  const label = {
    ok: "ok",
    mismatch: "MISMATCH",
    "unknown-hash": "unknown hash",
    "not-cached": "not cached",
  };
  const counts = { ok: 0, mismatch: 0, "unknown-hash": 0, "not-cached": 0 };
  for (const name of names) {
    getWeight(name);
    for (const r of await verifyWeights(name)) {
      counts[r.status]++;
      const detail = r.detail ? `  (${r.detail})` : "";
      console.log(`${label[r.status].padEnd(13)} ${r.weight}/${r.file}${detail}`);
    }
  }
  console.log(
    `\n${counts.ok} ok, ${counts.mismatch} mismatch, ${counts["unknown-hash"]} unknown hash, ${counts["not-cached"]} not cached`,
  );
  if (counts.mismatch > 0)
    console.log("A mismatching file is downloaded again by: dedos weights fetch NAME (or delete it).");
  return counts.mismatch > 0 ? 1 : 0;
}
