// Readers for PyTorch checkpoints that never execute pickled code (see pickle.ts): the zip format of
// torch.save (PyTorch ≥ 1.6), the legacy non-zip format (torch.save with _use_new_zipfile_serialization=False
// and PyTorch 0.4–1.5), and TorchScript archives (torch.jit.save, e.g. OpenAI CLIP's ViT-B-16.pt). They
// produce TensorRecords (dtype, shape, strides, byte offset in the file) without reading tensor bytes, so
// the tensor layer can memory-map each tensor lazily.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import {
  PickledTensor,
  PickleEOFError,
  PickleObject,
  TorchStorage,
  TorchStorageType,
  toSafeNumber,
  type UnpickleOptions,
  unpickle,
  unpickleAt,
} from "./pickle.js";
import { readBytes, type TensorRecord } from "./records.js";
import {
  isZipFile,
  readEntry,
  readZipArchive,
  storedEntryRange,
  type ZipArchive,
  type ZipEntry,
} from "./zip.js";

export type TorchCheckpointFormat = "zip" | "legacy" | "torchscript";

export interface TorchCheckpoint {
  file: string;
  format: TorchCheckpointFormat;
  /**
   * Tensors by state_dict name. Tensors sharing storage (views, tied weights) get records pointing at the
   * same bytes; non-contiguous views carry `strides`.
   */
  records: Map<string, TensorRecord>;
  /**
   * Everything else. Ordinary checkpoints: the top-level entries next to an unwrapped `model`/`state_dict`
   * (e.g. detectron2's `iteration`) and non-tensor values inside the state dict (dotted names), as
   * unpickled values (numbers, strings, Maps, arrays, PickleObject placeholders, PickledTensor).
   * TorchScript: `module` (the root `__torch__` object tree) and `constants` (constants.pkl, tensors as
   * TensorRecords).
   */
  extra: Record<string, unknown>;
}

export interface ReadTorchCheckpointOptions {
  /** Unwrap `{"model": sd, ...}` / `{"state_dict": sd, ...}` wrappers (default true). */
  unwrap?: boolean;
  /** Globals outside the unpickler's allow-list: inert placeholders (default) or an error. */
  onUnknownGlobal?: "placeholder" | "error";
}

/** The unpickled contents of a checkpoint, with PickledTensor leaves (for callers that want the raw tree). */
export interface TorchPickleContents {
  file: string;
  format: TorchCheckpointFormat;
  /** The object passed to torch.save, or the TorchScript root module. */
  object: unknown;
  /** TorchScript only: the tuple in constants.pkl. */
  constants?: unknown[];
  /** TorchScript only: parameter/buffer names per class, parsed from the archive's code/ files. */
  scriptClasses?: Map<string, ScriptClassInfo>;
}

export interface ScriptClassInfo {
  isModule: boolean;
  parameters: string[];
  buffers: string[];
}

// ---------------------------------------------------------------------------------------------------
// Format detection and the raw object tree.

/** Unpickles a checkpoint (any supported format) into a tree whose tensors are PickledTensor records. */
export function loadTorchPickle(file: string, opts: ReadTorchCheckpointOptions = {}): TorchPickleContents {
  let head: Buffer;
  const fd = openSync(file, "r");
  try {
    head = Buffer.alloc(Math.min(fstatSync(fd).size, 512));
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return loadZip(file, opts);
  if (isZipFile(file)) return loadZip(file, opts);
  if (head.length >= 2 && head[0] === 0x80) return loadLegacy(file, opts);
  if (head.length >= 262 && head.toString("latin1", 257, 262) === "ustar") {
    throw new Error(
      `${file}: tar-format checkpoints (PyTorch < 0.4) are not supported; re-save it with a newer PyTorch`,
    );
  }
  throw new Error(
    `${file}: not a PyTorch checkpoint (neither a ZIP archive nor a legacy pickle; ${head.length} bytes read)`,
  );
}

function storageFromPid(
  pid: unknown,
  source: string,
): { type: TorchStorageType; key: string; location: string; numel: number; view: unknown } {
  if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
    throw new Error(`${source}: unsupported persistent id ${describePid(pid)}`);
  }
  const [, type, key, location, numel, view] = pid;
  if (!(type instanceof TorchStorageType)) {
    throw new Error(`${source}: persistent id names an unknown storage type (${describePid(type)})`);
  }
  return {
    type,
    key: String(key),
    location: String(location),
    numel: toSafeNumber(numel, "storage size", source),
    view,
  };
}

function describePid(v: unknown): string {
  if (Array.isArray(v)) return `(${v.map((x) => describePid(x)).join(", ")})`;
  if (typeof v === "string") return JSON.stringify(v);
  if (v instanceof TorchStorageType) return `torch.${v.name}`;
  if (v !== null && typeof v === "object") {
    const q = (v as { qualifiedName?: string }).qualifiedName;
    return q ?? (v as object).constructor.name;
  }
  return String(v);
}

function findDataPkl(zip: ZipArchive): ZipEntry {
  let best: ZipEntry | undefined;
  for (const e of zip.entries.values()) {
    if (e.name !== "data.pkl" && !e.name.endsWith("/data.pkl")) continue;
    const depth = e.name.split("/").length;
    if (!best || depth < best.name.split("/").length) best = e;
  }
  if (!best) {
    const names = [...zip.entries.keys()].slice(0, 5).join(", ");
    throw new Error(
      `${zip.file}: ZIP archive without a data.pkl, not a PyTorch checkpoint (entries: ${names})`,
    );
  }
  return best;
}

function loadZip(file: string, opts: ReadTorchCheckpointOptions): TorchPickleContents {
  const zip = readZipArchive(file);
  const pkl = findDataPkl(zip);
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  const byteorder = zip.entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = readEntry(zip, byteorder, { maxBytes: 64, what: "the byteorder record" })
      .toString("latin1")
      .trim();
    if (order !== "little") {
      throw new Error(
        `${file}: the checkpoint was written on a ${order}-endian machine (byteorder "${order}"); only little-endian checkpoints are supported`,
      );
    }
  }
  const torchscript =
    zip.entries.has(`${prefix}constants.pkl`) ||
    [...zip.entries.keys()].some((n) => n.startsWith(`${prefix}code/`));
  const format: TorchCheckpointFormat = torchscript ? "torchscript" : "zip";

  const load = (entry: ZipEntry, dataDir: string): unknown => {
    const source = `${file} (${entry.name})`;
    const cache = new Map<string, TorchStorage>();
    const persistentLoad = (pid: unknown): TorchStorage => {
      const s = storageFromPid(pid, source);
      const cached = cache.get(s.key);
      if (cached) return cached;
      const name = `${prefix}${dataDir}/${s.key}`;
      if (!zip.entries.has(name))
        throw new Error(`${file}: storage "${s.key}" is missing (no entry "${name}")`);
      const range = storedEntryRange(zip, name);
      const want = s.numel * s.type.itemSize;
      // torch.save writes each storage as exactly its nbytes (numel × itemsize); any other size is a
      // corrupt or tampered archive, and tensors would read bytes that are not theirs.
      if (range.length !== want) {
        throw new Error(
          `${file}: entry "${name}" has ${range.length} bytes but storage "${s.key}" (torch.${s.type.name}, ${s.numel} elements) needs ${want}`,
        );
      }
      const storage = new TorchStorage(file, s.key, s.type, range.offset, s.numel, s.location);
      cache.set(s.key, storage);
      return storage;
    };
    const uopts: UnpickleOptions = {
      source,
      persistentLoad,
      onUnknownGlobal: opts.onUnknownGlobal,
      torchScriptClasses: torchscript,
    };
    return unpickle(readEntry(zip, entry, { what: "a pickle" }), uopts);
  };

  const object = load(pkl, "data");
  if (!torchscript) return { file, format, object };
  const constEntry = zip.entries.get(`${prefix}constants.pkl`);
  let constants: unknown[] | undefined;
  if (constEntry) {
    const c = load(constEntry, "constants");
    constants = Array.isArray(c) ? [...c] : [c];
  }
  return { file, format, object, constants, scriptClasses: readScriptClasses(zip, prefix) };
}

/**
 * Reads `__parameters__` / `__buffers__` of every class in a TorchScript archive's code/ files, keyed by
 * qualified name (`code/__torch__/a/b.py` + `class C` → `__torch__.a.b.C`).
 */
function readScriptClasses(zip: ZipArchive, prefix: string): Map<string, ScriptClassInfo> {
  const classes = new Map<string, ScriptClassInfo>();
  const codeDir = `${prefix}code/`;
  for (const e of zip.entries.values()) {
    if (!e.name.startsWith(codeDir) || !e.name.endsWith(".py")) continue;
    let text: string;
    try {
      text = readEntry(zip, e, { maxBytes: 16 * 2 ** 20, what: "a TorchScript code file" }).toString("utf8");
    } catch {
      continue; // code is only used to order/select tensors; fall back to attribute scanning
    }
    const modulePath = e.name.slice(codeDir.length, -3).replace(/\//g, ".");
    let current: ScriptClassInfo | undefined;
    for (const line of text.split("\n")) {
      const cls = /^class\s+([\w.]+)\s*\(\s*([\w.]+)\s*\)\s*:/.exec(line);
      if (cls) {
        current = { isModule: cls[2] === "Module", parameters: [], buffers: [] };
        classes.set(`${modulePath}.${cls[1]}`, current);
        continue;
      }
      if (!current) continue;
      if (/^\S/.test(line)) {
        current = undefined;
        continue;
      }
      const list = /^\s+__(parameters|buffers)__\s*=\s*\[(.*)\]\s*$/.exec(line);
      if (list) {
        const names = [...list[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
          m[1]!.replace(/\\(.)/g, "$1"),
        );
        if (list[1] === "parameters") current.parameters = names;
        else current.buffers = names;
      }
    }
  }
  return classes;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;
/** The pickles of a legacy checkpoint are read into memory; like a zip's data.pkl, at most this much. */
const MAX_LEGACY_PICKLE_BYTES = 2 ** 30;

function loadLegacy(file: string, opts: ReadTorchCheckpointOptions): TorchPickleContents {
  const fd = openSync(file, "r");
  let size: number;
  try {
    size = fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
  // The pickles come first and their length is only known by parsing them: read a prefix and grow it
  // until they parse (a length past the end of the file is an error at once, not a reason to grow).
  const limit = Math.min(size, MAX_LEGACY_PICKLE_BYTES);
  let chunk = Math.min(limit, 1 << 20);
  for (;;) {
    const data = readBytes(file, 0, chunk);
    try {
      return parseLegacy(file, data, size, opts);
    } catch (e) {
      if (e instanceof PickleEOFError && chunk < limit) {
        chunk = Math.min(limit, chunk * 4);
        continue;
      }
      if (e instanceof PickleEOFError && chunk < size) {
        throw new Error(
          `${file}: the pickles of this legacy checkpoint do not end within its first ${MAX_LEGACY_PICKLE_BYTES} bytes (corrupt file?)`,
        );
      }
      if (e instanceof PickleEOFError) throw new Error(`${file}: truncated legacy checkpoint (${e.message})`);
      throw e;
    }
  }
}

function parseLegacy(
  file: string,
  data: Buffer,
  size: number,
  opts: ReadTorchCheckpointOptions,
): TorchPickleContents {
  const source = file;
  const available = size;
  const magic = unpickleAt(data, 0, { source, available });
  if (magic.value !== LEGACY_MAGIC) {
    throw new Error(
      `${file}: not a PyTorch checkpoint (a pickle, but without torch.save's legacy magic number)`,
    );
  }
  const version = unpickleAt(data, magic.end, { source, available });
  if (version.value !== LEGACY_PROTOCOL_VERSION) {
    throw new Error(`${file}: unsupported legacy checkpoint protocol version ${String(version.value)}`);
  }
  const sysInfo = unpickleAt(data, version.end, { source, available });
  if (sysInfo.value instanceof Map && sysInfo.value.get("little_endian") === false) {
    throw new Error(
      `${file}: the checkpoint was written on a big-endian machine; only little-endian checkpoints are supported`,
    );
  }
  const objStart = sysInfo.end;

  // Pass 1: find the storages (type, size) the object refers to and where the object pickle ends.
  const roots = new Map<string, { type: TorchStorageType; numel: number }>();
  const scan = (pid: unknown): TorchStorage => {
    const s = storageFromPid(pid, source);
    if (!roots.has(s.key)) roots.set(s.key, { type: s.type, numel: s.numel });
    return new TorchStorage(file, s.key, s.type, 0, Number.MAX_SAFE_INTEGER, s.location);
  };
  const uopts = { source, available, onUnknownGlobal: opts.onUnknownGlobal };
  const pass1 = unpickleAt(data, objStart, { ...uopts, persistentLoad: scan });
  const keysPickle = unpickleAt(data, pass1.end, { source, available });
  if (!Array.isArray(keysPickle.value))
    throw new Error(`${file}: corrupt legacy checkpoint (no storage key list)`);

  // The raw storages follow in key-list order, each as an int64 element count and the bytes.
  const offsets = new Map<string, number>();
  const fd = openSync(file, "r");
  try {
    let pos = keysPickle.end;
    const countBuf = Buffer.alloc(8);
    for (const k of keysPickle.value) {
      const key = String(k);
      const root = roots.get(key);
      if (!root)
        throw new Error(
          `${file}: storage "${key}" is listed but its type is unknown (not used by any tensor)`,
        );
      if (pos + 8 > size || readSync(fd, countBuf, 0, 8, pos) < 8) {
        throw new Error(
          `${file}: storage "${key}" header at byte ${pos} is past the end of the file (${size} bytes; truncated file?)`,
        );
      }
      const count = toSafeNumber(countBuf.readBigInt64LE(0), `element count of storage "${key}"`, file);
      if (count !== root.numel) {
        throw new Error(
          `${file}: storage "${key}" has ${count} elements in the file but ${root.numel} in the pickle (corrupt file?)`,
        );
      }
      const end = pos + 8 + count * root.type.itemSize;
      if (end > size) {
        throw new Error(
          `${file}: storage "${key}" ends at byte ${end} but the file has ${size} bytes (truncated file?)`,
        );
      }
      offsets.set(key, pos + 8);
      pos = end;
    }
  } finally {
    closeSync(fd);
  }

  // Pass 2: rebuild with the real offsets.
  const cache = new Map<string, TorchStorage>();
  const resolve = (pid: unknown): TorchStorage => {
    const s = storageFromPid(pid, source);
    const base = offsets.get(s.key);
    if (base === undefined) throw new Error(`${file}: storage "${s.key}" is not in the file's storage list`);
    // PyTorch < 0.4 storage views: view_metadata = (view_key, offset, view_size), offset in elements.
    let cacheKey = s.key;
    let byteOffset = base;
    let numel = s.numel;
    if (Array.isArray(s.view) && s.view.length === 3) {
      const [viewKey, offset, viewSize] = s.view;
      cacheKey = `${s.key}/${String(viewKey)}`;
      byteOffset = base + toSafeNumber(offset, "storage view offset", source) * s.type.itemSize;
      numel = toSafeNumber(viewSize, "storage view size", source);
    }
    const cached = cache.get(cacheKey);
    if (cached) return cached;
    const storage = new TorchStorage(file, s.key, s.type, byteOffset, numel, s.location);
    cache.set(cacheKey, storage);
    return storage;
  };
  const object = unpickleAt(data, objStart, { ...uopts, persistentLoad: resolve }).value;
  return { file, format: "legacy", object };
}

// ---------------------------------------------------------------------------------------------------
// Flattening to state_dict names.

const MAX_DEPTH = 256;

function keyString(k: unknown): string | undefined {
  if (typeof k === "string") return k;
  if (typeof k === "number" || typeof k === "bigint") return String(k);
  return undefined;
}

function join(prefix: string, k: string): string {
  return prefix === "" ? k : `${prefix}.${k}`;
}

/** A pickled nn.Module (a full module saved with torch.save): a placeholder with _parameters/_modules. */
function moduleState(v: unknown): Map<unknown, unknown> | undefined {
  if (!(v instanceof PickleObject) || !(v.state instanceof Map)) return undefined;
  const s = v.state;
  return s.get("_parameters") instanceof Map || s.get("_modules") instanceof Map ? s : undefined;
}

function containsTensor(v: unknown, depth = 0, visiting = new Set<object>()): boolean {
  if (v instanceof PickledTensor) return true;
  if (depth > MAX_DEPTH || v === null || typeof v !== "object" || visiting.has(v)) return false;
  visiting.add(v);
  try {
    if (v instanceof Map) {
      for (const x of v.values()) if (containsTensor(x, depth + 1, visiting)) return true;
    } else if (Array.isArray(v)) {
      for (const x of v) if (containsTensor(x, depth + 1, visiting)) return true;
    } else {
      const ms = moduleState(v);
      if (ms) return containsTensor(ms, depth + 1, visiting);
    }
    return false;
  } finally {
    visiting.delete(v);
  }
}

interface FlatOut {
  records: Map<string, TensorRecord>;
  extra: Record<string, unknown>;
}

function flattenValue(v: unknown, prefix: string, out: FlatOut, depth: number, visiting: Set<object>): void {
  if (v instanceof PickledTensor) {
    out.records.set(prefix, v.record);
    return;
  }
  const topLevelDict = depth === 0 && v instanceof Map;
  if (
    depth > MAX_DEPTH ||
    v === null ||
    typeof v !== "object" ||
    visiting.has(v) ||
    (!topLevelDict && !containsTensor(v))
  ) {
    out.extra[prefix] = v;
    return;
  }
  visiting.add(v);
  try {
    if (v instanceof Map) {
      for (const [k, x] of v) {
        const ks = keyString(k);
        if (ks === undefined) out.extra[join(prefix, String(k))] = x;
        else flattenValue(x, join(prefix, ks), out, depth + 1, visiting);
      }
    } else if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) flattenValue(x, join(prefix, String(i)), out, depth + 1, visiting);
    } else {
      flattenPickledModule(moduleState(v)!, prefix, out, depth, visiting);
    }
  } finally {
    visiting.delete(v);
  }
}

/** nn.Module.state_dict() order: own parameters, persistent buffers, then submodules. */
function flattenPickledModule(
  state: Map<unknown, unknown>,
  prefix: string,
  out: FlatOut,
  depth: number,
  visiting: Set<object>,
): void {
  const params = state.get("_parameters");
  const buffers = state.get("_buffers");
  const nonPersistent = state.get("_non_persistent_buffers_set");
  const skip = nonPersistent instanceof Set ? nonPersistent : new Set<unknown>();
  for (const [group, m] of [
    ["p", params],
    ["b", buffers],
  ] as const) {
    if (!(m instanceof Map)) continue;
    for (const [k, x] of m) {
      const ks = keyString(k);
      if (ks === undefined || (group === "b" && skip.has(k))) continue;
      if (x instanceof PickledTensor) out.records.set(join(prefix, ks), x.record);
    }
  }
  const modules = state.get("_modules");
  if (modules instanceof Map) {
    for (const [k, x] of modules) {
      const ks = keyString(k);
      if (ks !== undefined && moduleState(x)) flattenValue(x, join(prefix, ks), out, depth + 1, visiting);
    }
  }
}

function isScriptObject(v: unknown): v is PickleObject {
  return v instanceof PickleObject && (v.module === "__torch__" || v.module.startsWith("__torch__."));
}

function flattenScriptModule(
  obj: PickleObject,
  prefix: string,
  classes: Map<string, ScriptClassInfo>,
  records: Map<string, TensorRecord>,
  depth: number,
  visiting: Set<object>,
): void {
  const state = obj.state;
  if (!(state instanceof Map) || depth > MAX_DEPTH || visiting.has(obj)) return;
  visiting.add(obj);
  const info = classes.get(obj.qualifiedName);
  if (info) {
    for (const name of [...info.parameters, ...info.buffers]) {
      const v = state.get(name);
      if (v instanceof PickledTensor) records.set(join(prefix, name), v.record);
    }
  } else {
    // No code for this class: take every tensor-valued attribute.
    for (const [k, v] of state) {
      if (typeof k === "string" && k !== "training" && v instanceof PickledTensor)
        records.set(join(prefix, k), v.record);
    }
  }
  for (const [k, v] of state) {
    if (typeof k !== "string" || !isScriptObject(v)) continue;
    const childInfo = classes.get(v.qualifiedName);
    if (childInfo ? childInfo.isModule : v.state instanceof Map) {
      flattenScriptModule(v, join(prefix, k), classes, records, depth + 1, visiting);
    }
  }
  visiting.delete(obj);
}

/**
 * Reads a PyTorch checkpoint's tensor records without executing pickled code.
 *
 * - zip (torch.save ≥ 1.6) and legacy files: the state dict, unwrapping `{"model": sd}` /
 *   `{"state_dict": sd}` wrappers (other top-level entries go to `extra`); nested dicts/lists of tensors
 *   and pickled nn.Modules get dotted names; a bare tensor gets the name "".
 * - TorchScript: the module tree flattened exactly like `state_dict()` (parameters and buffers per the
 *   archive's code, in state_dict order).
 */
export function readTorchCheckpoint(file: string, opts: ReadTorchCheckpointOptions = {}): TorchCheckpoint {
  const contents = loadTorchPickle(file, opts);
  const records = new Map<string, TensorRecord>();
  const extra: Record<string, unknown> = {};
  if (contents.format === "torchscript") {
    const root = contents.object;
    if (!isScriptObject(root)) {
      throw new Error(`${file}: TorchScript archive whose data.pkl is not a module object`);
    }
    flattenScriptModule(root, "", contents.scriptClasses ?? new Map(), records, 0, new Set());
    extra.module = root;
    if (contents.constants) {
      extra.constants = contents.constants.map((c) => (c instanceof PickledTensor ? c.record : c));
    }
    return { file, format: contents.format, records, extra };
  }
  let root = contents.object;
  if (opts.unwrap !== false) {
    for (let i = 0; i < 4 && root instanceof Map; i++) {
      const m: Map<unknown, unknown> = root;
      const key = ["state_dict", "model"].find((k) => {
        const v = m.get(k);
        return (v instanceof Map || moduleState(v) !== undefined) && containsTensor(v);
      });
      if (key === undefined) break;
      for (const [k, v] of m) {
        const ks = keyString(k) ?? String(k);
        if (k !== key && !(ks in extra)) extra[ks] = v;
      }
      root = m.get(key);
    }
  }
  flattenValue(root, "", { records, extra }, 0, new Set());
  return { file, format: contents.format, records, extra };
}
