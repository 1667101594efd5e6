// A restricted unpickler for PyTorch checkpoints (pickle protocols 0–5, the opcodes torch.save,
// torch.jit.save and Python's pickler emit for containers, scalars and torch objects).
//
// SAFETY: this unpickler never executes anything from the pickle. A Python unpickler imports every GLOBAL
// it meets and calls whatever REDUCE/NEWOBJ/BUILD tell it to; here a GLOBAL resolves only through the
// allow-list below of *data constructors implemented in TypeScript* (OrderedDict, the tensor/parameter
// rebuild functions, storage types, set/frozenset/slice, torch.device, torch.Size, _codecs.encode, …).
// Any other global (os.system, numpy functions, user classes, TorchScript `__torch__.*` classes) becomes
// an inert `PickleGlobal` that records its module and name; "calling" it (REDUCE, NEWOBJ) only builds a
// `PickleObject` that records the arguments, and BUILD only stores the state on it. Nothing is ever
// imported, looked up or called by name. `onUnknownGlobal: "error"` turns such globals into errors instead
// (TorchScript `__torch__.*` classes stay allowed with `torchScriptClasses: true`).
//
// LIMITS: nor does a pickle get to decide how much memory it takes. A string/bytes length beyond the input
// is an error before anything is allocated; memo indices beyond what the input could number are refused;
// MARKs nest at most MAX_PICKLE_NESTING deep; integer literals obey Python's 4300-digit limit and binary
// ones are parsed in linear time; and every value made is counted against an allocation budget
// (`maxAllocation`, by default proportional to the input and below the heap limit), so a few megabytes
// of EMPTY_DICT opcodes are refused rather than exhausting the heap.
import { getHeapStatistics } from "node:v8";
import {
  contiguousStrides,
  numelOf,
  STORED_ITEM_SIZE,
  type StoredDType,
  type TensorRecord,
} from "./records.js";

// ---------------------------------------------------------------------------------------------------
// Values produced by the unpickler.
//
//   None → null; bool → boolean; int → number (bigint when not a safe integer); float → number;
//   str → string; bytes/bytearray → Buffer; list and tuple → Array (tuples are frozen arrays);
//   dict and OrderedDict → Map (keys keep their types and the insertion order); set/frozenset → Set;
//   tensors → PickledTensor; everything else → PickleGlobal / PickleObject placeholders.

/** A reference to a global that is not on the allow-list. Never imported, never called. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An inert object standing for an instance of a non-allow-listed class, or for the result of "calling" a
 * non-allow-listed global: it records the class/function, the arguments and any state set by BUILD,
 * items appended (APPEND/APPENDS) and entries set (SETITEM/SETITEMS). For TorchScript archives,
 * `__torch__.*` module objects are PickleObjects whose `state` is a Map of their attributes.
 */
export class PickleObject {
  /** State passed to BUILD (`__setstate__`), if any. */
  state: unknown = undefined;
  listItems?: unknown[];
  dictItems?: Map<unknown, unknown>;
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: readonly unknown[] = [],
    readonly kwargs?: Map<unknown, unknown>,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** builtins.slice */
export class PickleSlice {
  constructor(
    readonly start: unknown,
    readonly stop: unknown,
    readonly step: unknown,
  ) {}
}

/** A storage class such as `torch.FloatStorage`, seen as the second element of a persistent id. */
export class TorchStorageType {
  constructor(
    readonly name: string,
    /** Undefined for storage types with no StoredDType (complex, quantized). */
    readonly dtype: StoredDType | undefined,
    readonly itemSize: number,
  ) {}
}

/** A storage resolved by a format reader: `numel` elements of `dtype` at `byteOffset` in `file`. */
export class TorchStorage {
  constructor(
    readonly file: string,
    readonly key: string,
    readonly type: TorchStorageType,
    readonly byteOffset: number,
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor (or nn.Parameter) found in the pickle; its bytes are described by `record`. */
export class PickledTensor {
  constructor(
    readonly record: TensorRecord,
    readonly storage: TorchStorage,
    /** In elements. */
    readonly storageOffset: number,
    readonly requiresGrad: boolean,
    readonly isParameter: boolean,
  ) {}
}

/** Attributes set by BUILD on values that are not PickleObjects (e.g. an OrderedDict's `_metadata`). */
const buildState = new WeakMap<object, unknown>();

/** The state BUILD attached to a Map/array/Set/tensor (e.g. `state_dict()._metadata`), if any. */
export function pickleAttributes(value: object): unknown {
  return buildState.get(value);
}

// ---------------------------------------------------------------------------------------------------
// The allow-list.

type Ctor = (args: readonly unknown[], kwargs: Map<unknown, unknown> | undefined, ctx: Ctx) => unknown;

/** An allow-listed global: a TypeScript implementation of a pure data constructor. */
class AllowedGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly build: Ctor,
  ) {}
}

interface Ctx {
  source: string;
}

const STORAGE_CLASSES: Record<string, [StoredDType | undefined, number]> = {
  DoubleStorage: ["float64", 8],
  FloatStorage: ["float32", 4],
  HalfStorage: ["float16", 2],
  BFloat16Storage: ["bfloat16", 2],
  LongStorage: ["int64", 8],
  IntStorage: ["int32", 4],
  ShortStorage: ["int16", 2],
  CharStorage: ["int8", 1],
  ByteStorage: ["uint8", 1],
  BoolStorage: ["bool", 1],
  UInt16Storage: ["uint16", 2],
  UntypedStorage: ["uint8", 1],
  // Known to torch but with no StoredDType: readable as storages, rejected when a tensor uses them.
  ComplexFloatStorage: [undefined, 8],
  ComplexDoubleStorage: [undefined, 16],
  QInt8Storage: [undefined, 1],
  QUInt8Storage: [undefined, 1],
  QInt32Storage: [undefined, 4],
  QUInt4x2Storage: [undefined, 1],
  QUInt2x4Storage: [undefined, 1],
};

/** Converts an int from the pickle to a JS number (throws if it is not a safe integer). */
export function toSafeNumber(v: unknown, what: string, source: string): number {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(v);
  }
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new Error(`${source}: expected an integer for ${what}, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PickleGlobal || v instanceof PickleObject)
    return `${v.constructor.name} ${v.qualifiedName}`;
  if (v instanceof AllowedGlobal) return `global ${v.module}.${v.name}`;
  if (Array.isArray(v)) return `a sequence of length ${v.length}`;
  if (v instanceof Map) return "a dict";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === "object") return (v as object).constructor?.name ?? "an object";
  return `${typeof v} ${String(v)}`;
}

function intList(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v))
    throw new Error(`${source}: expected a tuple of ints for ${what}, got ${describe(v)}`);
  return v.map((x, i) => toSafeNumber(x, `${what}[${i}]`, source));
}

function rebuildTensor(args: readonly unknown[], ctx: Ctx, fn: string, requiresGrad: boolean): PickledTensor {
  const [storage, offsetArg, sizeArg, strideArg] = args;
  if (!(storage instanceof TorchStorage)) {
    throw new Error(`${ctx.source}: ${fn} expects a storage as its first argument, got ${describe(storage)}`);
  }
  const offset = toSafeNumber(offsetArg, "storage_offset", ctx.source);
  const shape = intList(sizeArg, "size", ctx.source);
  const strides = intList(strideArg, "stride", ctx.source);
  const dtype = storage.type.dtype;
  if (!dtype) {
    throw new Error(
      `${ctx.source}: storage "${storage.key}" is a torch.${storage.type.name}, whose element type is not supported`,
    );
  }
  if (strides.length !== shape.length) {
    throw new Error(`${ctx.source}: tensor has ${shape.length} sizes but ${strides.length} strides`);
  }
  if (shape.some((d) => d < 0) || strides.some((s) => s < 0) || offset < 0) {
    throw new Error(`${ctx.source}: tensor has a negative size, stride or offset`);
  }
  const item = STORED_ITEM_SIZE[dtype];
  const numel = numelOf(shape);
  let spanElems = 0;
  if (numel > 0) {
    spanElems = 1;
    for (let i = 0; i < shape.length; i++) spanElems += (shape[i]! - 1) * strides[i]!;
  }
  if (numel > 0 && offset + spanElems > storage.numel) {
    throw new Error(
      `${ctx.source}: tensor (offset ${offset}, shape ${JSON.stringify(shape)}, strides ${JSON.stringify(strides)}) runs past the end of storage "${storage.key}" (${storage.numel} elements)`,
    );
  }
  const contiguous = contiguousStrides(shape);
  const isContiguous = numel === 0 || shape.every((d, i) => d === 1 || strides[i] === contiguous[i]);
  const record: TensorRecord = {
    dtype,
    shape,
    file: storage.file,
    byteOffset: storage.byteOffset + offset * item,
    byteLength: spanElems * item,
  };
  if (!isContiguous) record.strides = strides;
  return new PickledTensor(record, storage, offset, requiresGrad, false);
}

function asParameter(t: unknown, ctx: Ctx, requiresGrad: unknown): PickledTensor {
  if (!(t instanceof PickledTensor)) {
    throw new Error(`${ctx.source}: _rebuild_parameter expects a tensor, got ${describe(t)}`);
  }
  return new PickledTensor(t.record, t.storage, t.storageOffset, requiresGrad === true, true);
}

function newMapFrom(items: unknown, ctx: Ctx): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (items === undefined) return m;
  if (items instanceof Map) {
    for (const [k, v] of items) m.set(k, v);
    return m;
  }
  if (!Array.isArray(items))
    throw new Error(`${ctx.source}: OrderedDict() expects pairs, got ${describe(items)}`);
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new Error(`${ctx.source}: OrderedDict() expects pairs, got ${describe(pair)}`);
    }
    m.set(pair[0], pair[1]);
  }
  return m;
}

function toSet(items: unknown, ctx: Ctx): Set<unknown> {
  if (items === undefined) return new Set();
  if (Array.isArray(items) || items instanceof Set) return new Set(items);
  throw new Error(`${ctx.source}: set() expects a sequence, got ${describe(items)}`);
}

const identity: Ctor = (args) => args[0];

const ALLOWED: Record<string, Ctor> = {
  "collections.OrderedDict": (args, _kw, ctx) => newMapFrom(args[0], ctx),
  "builtins.set": (args, _kw, ctx) => toSet(args[0], ctx),
  "builtins.frozenset": (args, _kw, ctx) => toSet(args[0], ctx),
  "builtins.slice": (args) =>
    args.length === 1
      ? new PickleSlice(null, args[0], null)
      : new PickleSlice(args[0], args[1], args[2] ?? null),
  "builtins.bytearray": (args, _kw, ctx) => encodeBytes(args, ctx),
  "builtins.bytes": (args, _kw, ctx) => encodeBytes(args, ctx),
  "_codecs.encode": (args, _kw, ctx) => encodeBytes(args, ctx),
  "copyreg._reconstructor": (args) => {
    // copyreg._reconstructor(cls, object, state): an instance of cls, here an inert record of it.
    const cls = args[0];
    if (cls instanceof AllowedGlobal) return new PickleObject(cls.module, cls.name, []);
    if (cls instanceof PickleGlobal) return new PickleObject(cls.module, cls.name, []);
    return new PickleObject("copyreg", "_reconstructor", args);
  },
  "torch.device": (args) => {
    const [type, index] = args;
    return index === undefined || index === null ? String(type) : `${String(type)}:${String(index)}`;
  },
  "torch.Size": (args, _kw, ctx) => intList(args[0] ?? [], "torch.Size", ctx.source),
  "torch._utils._rebuild_tensor": (args, _kw, ctx) => rebuildTensor(args, ctx, "_rebuild_tensor", false),
  "torch._utils._rebuild_tensor_v2": (args, _kw, ctx) =>
    rebuildTensor(args, ctx, "_rebuild_tensor_v2", args[4] === true),
  "torch._utils._rebuild_parameter": (args, _kw, ctx) => asParameter(args[0], ctx, args[1]),
  "torch._utils._rebuild_parameter_with_state": (args, _kw, ctx) => asParameter(args[0], ctx, args[1]),
  // Tensor subclasses: _rebuild_from_type_v2(func, new_type, args, state) calls func(*args), then sets the
  // subclass; we only follow func when it is itself allow-listed.
  "torch._tensor._rebuild_from_type_v2": (args, _kw, ctx) => {
    const [func, newType, fargs] = args;
    if (func instanceof AllowedGlobal && Array.isArray(fargs)) return func.build(fargs, undefined, ctx);
    return new PickleObject("torch._tensor", "_rebuild_from_type_v2", [func, newType, fargs]);
  },
  // TorchScript's typed-container helpers are identities on the data.
  "torch.jit._pickle.build_intlist": identity,
  "torch.jit._pickle.build_doublelist": identity,
  "torch.jit._pickle.build_boollist": identity,
  "torch.jit._pickle.build_tensorlist": identity,
  "torch.jit._pickle.build_intlist_v2": identity,
  "torch.jit._pickle.restore_type_tag": identity,
};

function encodeBytes(args: readonly unknown[], ctx: Ctx): Buffer {
  const [value, encoding] = args;
  if (value === undefined) return Buffer.alloc(0);
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return Buffer.from(value.map((x) => toSafeNumber(x, "byte", ctx.source)));
  if (typeof value === "string") {
    const enc = String(encoding ?? "utf-8")
      .toLowerCase()
      .replace(/_/g, "-");
    if (enc === "latin1" || enc === "latin-1" || enc === "iso-8859-1") return Buffer.from(value, "latin1");
    if (enc === "utf-8" || enc === "utf8") return Buffer.from(value, "utf8");
    if (enc === "ascii") return Buffer.from(value, "ascii");
    throw new Error(`${ctx.source}: _codecs.encode with unsupported encoding ${JSON.stringify(encoding)}`);
  }
  throw new Error(`${ctx.source}: cannot make bytes from ${describe(value)}`);
}

/** Python 2 module names that Python 3's unpickler maps (fix_imports), for the allow-list only. */
const PY2_MODULES: Record<string, string> = { __builtin__: "builtins", copy_reg: "copyreg" };

// The machine: its state (input and position, stack, metastack, memo) and the reads and stack moves the
// opcode handlers are made of.

export interface UnpickleOptions {
  /** Name used in error messages (usually the file, or "file:entry"). */
  source?: string;
  /** Resolves persistent ids (BINPERSID/PERSID); without it a persistent id is an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** What to do with globals outside the allow-list: inert placeholders (default) or an error. */
  onUnknownGlobal?: "placeholder" | "error";
  /** Treat `__torch__.*` (TorchScript) classes as expected: always inert objects, never an error. */
  torchScriptClasses?: boolean;
  /**
   * Bytes that exist from the start of `data` on, when `data` is only a prefix of them (a legacy
   * checkpoint read in growing chunks). A length that runs past the data but not past this is reported
   * as a PickleEOFError (read more and retry); one that runs past this too is corrupt, a plain error.
   */
  available?: number;
  /**
   * Roughly how many bytes of JavaScript heap the unpickled values may take (an estimate kept per
   * object, string and container made). Default: 256 MiB + 16 bytes per input byte, and at most half the
   * heap limit, so a pickle that only builds empty dicts is refused before it exhausts the heap.
   */
  maxAllocation?: number;
}

/** MARKs open at once. Python's pickler recurses per nesting level (limit 1000 by default). */
export const MAX_PICKLE_NESTING = 10_000;

/** Python refuses to convert integer literals longer than this (int_max_str_digits); so do we. */
const MAX_INT_DIGITS = 4300;

// Heap bytes per value made (V8, 64-bit, measured): what the allocation budget counts. Only values that
// can outweigh the opcode bytes that make them are counted (a stack slot or a number cannot: ≤ 8× the
// input); a state-dict pickle counts about 5 bytes per input byte, an EMPTY_DICT opcode 192.
const COST_SLOT = 8;
const COST_ARRAY = 40;
const COST_MAP = 192;
const COST_OBJECT = 96;
const COST_STRING = 24;
const COST_BUFFER = 104;

function defaultAllocationBudget(inputBytes: number): number {
  return Math.min(256 * 2 ** 20 + 16 * inputBytes, getHeapStatistics().heap_size_limit / 2);
}

/** Thrown when the pickle data ends before STOP (the file is truncated, or more data is needed). */
export class PickleEOFError extends Error {}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode. */
  end: number;
}

/**
 * The memo: pickles number their memo entries 0, 1, 2, … in order, so those live in an array; any other
 * key (a pickler may use arbitrary ones) goes to a Map. `size` counts distinct keys, as MEMOIZE needs.
 */
class Memo {
  private readonly dense: unknown[] = [];
  private readonly sparse = new Map<number, unknown>();

  get size(): number {
    return this.dense.length + this.sparse.size;
  }

  has(k: number): boolean {
    return k < this.dense.length || this.sparse.has(k);
  }

  get(k: number): unknown {
    return k < this.dense.length ? this.dense[k] : this.sparse.get(k);
  }

  set(k: number, v: unknown): void {
    if (k < this.dense.length) this.dense[k] = v;
    else if (k > this.dense.length) this.sparse.set(k, v);
    else {
      this.sparse.delete(k);
      this.dense.push(v);
      while (this.sparse.size > 0 && this.sparse.has(this.dense.length)) {
        this.dense.push(this.sparse.get(this.dense.length));
        this.sparse.delete(this.dense.length - 1);
      }
    }
  }
}

class Machine {
  readonly buf: Buffer;
  readonly ctx: Ctx;
  /** Offset of the next byte to read. */
  pos: number;
  /** The current stack; MARK saves it on the metastack and starts an empty one. */
  stack: unknown[] = [];
  readonly metastack: unknown[][] = [];
  readonly memo = new Memo();
  /** Set by STOP, with the unpickled value. */
  stopped = false;
  value: unknown = undefined;
  /** Estimated heap bytes made so far, and the most allowed. */
  allocated = 0;
  readonly budget: number;
  /** Bytes that exist beyond `buf` (see UnpickleOptions.available). */
  readonly available: number;

  constructor(
    data: Uint8Array,
    offset: number,
    readonly opts: UnpickleOptions,
  ) {
    this.buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.ctx = { source: opts.source ?? "pickle" };
    this.pos = offset;
    this.available = Math.max(opts.available ?? 0, this.buf.length);
    this.budget = opts.maxAllocation ?? defaultAllocationBudget(this.available - offset);
  }

  /** Counts `bytes` of heap against the budget. */
  charge(bytes: number): void {
    this.allocated += bytes;
    if (this.allocated > this.budget) {
      throw this.error(
        `unpickling would take more than ${mib(this.budget)} of memory (a pickle of ${this.available} bytes; corrupt or hostile file?)`,
      );
    }
  }

  /** An error naming the source and the current position. */
  error(msg: string): Error {
    return new Error(`${this.ctx.source}: ${msg} (pickle byte ${this.pos})`);
  }

  need(k: number): void {
    const n = this.buf.length;
    if (k < 0 || this.pos + k > n) this.pastEnd(k);
  }

  /** `k` bytes wanted at `pos` are not in the buffer: more data may follow (EOF), or they cannot exist. */
  pastEnd(k: number | bigint): never {
    const n = this.buf.length;
    if (n < this.available && BigInt(this.pos) + BigInt(k) > BigInt(this.available)) {
      throw this.error(
        `a length of ${k} bytes runs past the end of the data (${this.available - this.pos} bytes left; corrupt file?)`,
      );
    }
    throw new PickleEOFError(
      `${this.ctx.source}: pickle data ends unexpectedly at byte ${n} (wanted ${k} more bytes at ${this.pos}; truncated file?)`,
    );
  }

  skip(k: number): void {
    this.need(k);
    this.pos += k;
  }

  take(k: number): Buffer {
    this.need(k);
    const out = this.buf.subarray(this.pos, this.pos + k);
    this.pos += k;
    return out;
  }

  /** A copy of the next `k` bytes (BINBYTES and friends). */
  bytes(k: number): Buffer {
    this.need(k);
    this.charge(COST_BUFFER + k);
    return Buffer.from(this.take(k));
  }

  /** `k` bytes as UTF-8 text. */
  utf8(k: number): string {
    this.need(k);
    this.charge(COST_STRING + k);
    const s = this.buf.toString("utf8", this.pos, this.pos + k);
    this.pos += k;
    return s;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A 64-bit length; one beyond the data is reported as the data ending early. */
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(this.buf.length - this.pos)) this.pastEnd(v);
    return Number(v);
  }

  f64be(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Text up to the next newline (latin-1), which is consumed. */
  line(): string {
    const nl = this.buf.indexOf(0x0a, this.pos);
    if (nl < 0) {
      throw new PickleEOFError(
        `${this.ctx.source}: pickle data ends unexpectedly at byte ${this.buf.length} (no newline after byte ${this.pos})`,
      );
    }
    this.charge(COST_STRING + nl - this.pos);
    const s = this.buf.toString("latin1", this.pos, nl);
    this.pos = nl + 1;
    return s;
  }

  /** Pushes on the current stack (looked up at the call, so `m.push(m.popMark())` is safe). */
  push(v: unknown): void {
    this.stack.push(v);
  }

  pop(): unknown {
    if (this.stack.length === 0) throw this.error("stack underflow");
    return this.stack.pop();
  }

  top(): unknown {
    if (this.stack.length === 0) throw this.error("stack underflow");
    return this.stack[this.stack.length - 1];
  }

  mark(): void {
    if (this.metastack.length >= MAX_PICKLE_NESTING)
      throw this.error(`pickle nests deeper than ${MAX_PICKLE_NESTING} levels (MARK)`);
    this.charge(COST_ARRAY);
    this.metastack.push(this.stack);
    this.stack = [];
  }

  /** The items pushed since the last MARK; the stack before that MARK becomes current again. */
  popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) throw this.error("MARK expected");
    this.stack = prev;
    return items;
  }

  memoGet(i: number): unknown {
    if (!this.memo.has(i)) throw this.error(`memo key ${i} not found`);
    return this.memo.get(i);
  }

  /**
   * PUT/BINPUT/LONG_BINPUT/MEMOIZE. Picklers number memo entries 0, 1, 2, … one per object, and every
   * object takes at least a byte: an index beyond the pickle's length is corrupt or hostile.
   */
  memoPut(i: number): void {
    if (i > this.available && i > 255) {
      throw this.error(`memo index ${i} is larger than a pickle of ${this.available} bytes can use`);
    }
    this.charge(COST_SLOT * 2);
    this.memo.set(i, this.top());
  }
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MiB`;
}

// ---------------------------------------------------------------------------------------------------
// What the opcodes do with values: globals, calls, containers.

function resolveGlobal(m: Machine, module: string, name: string): unknown {
  const mod = PY2_MODULES[module] ?? module;
  const key = `${mod}.${name}`;
  const ctor = ALLOWED[key];
  if (ctor) return new AllowedGlobal(mod, name, ctor);
  if (mod === "torch" && Object.hasOwn(STORAGE_CLASSES, name)) {
    const [dtype, size] = STORAGE_CLASSES[name]!;
    return new TorchStorageType(name, dtype, size);
  }
  m.charge(COST_OBJECT);
  const torchScript = mod === "__torch__" || mod.startsWith("__torch__.");
  if (m.opts.onUnknownGlobal === "error" && !(torchScript && m.opts.torchScriptClasses)) {
    throw m.error(`refusing pickled global ${key} (not on the allow-list of data constructors)`);
  }
  // Inert placeholder: records the name, is never imported and never called.
  return new PickleGlobal(module, name);
}

/** REDUCE/NEWOBJ/INST/OBJ: allow-listed constructors run (TypeScript); anything else becomes a record. */
function call(m: Machine, fn: unknown, args: unknown, kwargs?: Map<unknown, unknown>): unknown {
  const list = args === undefined || args === null ? [] : args;
  if (!Array.isArray(list)) throw m.error(`call arguments must be a tuple, got ${describe(args)}`);
  m.charge(COST_OBJECT);
  if (fn instanceof AllowedGlobal) return fn.build(list, kwargs, m.ctx);
  if (fn instanceof PickleGlobal) return new PickleObject(fn.module, fn.name, list, kwargs);
  if (fn instanceof TorchStorageType) return new PickleObject("torch", fn.name, list, kwargs);
  throw m.error(`cannot call ${describe(fn)}`);
}

function setItems(m: Machine, target: unknown, items: unknown[]): void {
  if (items.length % 2 !== 0) throw m.error("SETITEMS needs key/value pairs");
  let d: Map<unknown, unknown>;
  if (target instanceof Map) d = target;
  else if (target instanceof PickleObject) {
    target.dictItems ??= new Map();
    d = target.dictItems;
  } else throw m.error(`cannot set items on ${describe(target)}`);
  m.charge(COST_SLOT * 2 * items.length);
  for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
}

function appendItems(m: Machine, target: unknown, items: unknown[]): void {
  if (Array.isArray(target)) {
    if (Object.isFrozen(target)) throw m.error("cannot append to a tuple");
    for (const x of items) target.push(x);
  } else if (target instanceof PickleObject) {
    target.listItems ??= [];
    for (const x of items) target.listItems.push(x);
  } else throw m.error(`cannot append to ${describe(target)}`);
}

/** BUILD: stores the state; nothing's __setstate__ is ever run. */
function build(m: Machine): void {
  const state = m.pop();
  const obj = m.top();
  if (obj instanceof PickleObject) obj.state = state;
  else if (obj !== null && typeof obj === "object") buildState.set(obj, state);
  else throw m.error(`BUILD on ${describe(obj)}`);
}

function persistent(m: Machine, pid: unknown): void {
  if (!m.opts.persistentLoad) throw m.error("persistent id in a pickle that does not allow them");
  m.push(m.opts.persistentLoad(pid));
}

function newArray(m: Machine, items: unknown[]): unknown[] {
  m.charge(COST_ARRAY);
  return items;
}

const tuple = (m: Machine, items: unknown[]): unknown[] => Object.freeze(newArray(m, items)) as unknown[];

function newMap(m: Machine): Map<unknown, unknown> {
  m.charge(COST_MAP);
  return new Map();
}

function newSet(m: Machine, items: unknown[]): Set<unknown> {
  m.charge(COST_MAP + COST_SLOT * 4 * items.length);
  return new Set(items);
}

function textFloat(m: Machine, s: string): number {
  const v = Number(s);
  if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s.trim())) throw m.error(`bad FLOAT ${JSON.stringify(s)}`);
  return v;
}

function textInt(m: Machine, s: string): number | bigint {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw m.error(`bad integer literal ${JSON.stringify(s.slice(0, 40))}`);
  if (t.length > MAX_INT_DIGITS + 1)
    throw m.error(`integer literal of ${t.length} digits (Python's own limit is ${MAX_INT_DIGITS})`);
  return normInt(BigInt(t));
}

function textIndex(m: Machine, s: string): number {
  const t = s.trim();
  if (!/^\d+$/.test(t)) throw m.error(`bad memo index ${JSON.stringify(s)}`);
  return Number(t);
}

/** Two's-complement little-endian integer (LONG1/LONG4), in linear time (one hex parse). */
function intFromBytes(m: Machine, b: Buffer): number | bigint {
  if (b.length === 0) return 0;
  m.charge(COST_STRING + b.length);
  let v = BigInt(`0x${Buffer.from(b).reverse().toString("hex")}`);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return normInt(v);
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function decodeRawUnicodeEscape(s: string): string {
  return s.replace(
    /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
    (_m, a: string | undefined, b: string | undefined) =>
      String.fromCodePoint(Number.parseInt((a ?? b)!, 16)),
  );
}

// ---------------------------------------------------------------------------------------------------
// The opcode table. An opcode missing from it is refused.

type Handler = (m: Machine) => void;

const OPCODES: readonly (readonly [opcode: number, name: string, handler: Handler])[] = [
  // Framing and control.
  [0x80, "PROTO", (m) => m.skip(1)],
  [0x95, "FRAME", (m) => m.skip(8)], // framing is only a read-ahead hint
  [
    0x2e,
    "STOP",
    (m) => {
      m.value = m.pop();
      m.stopped = true;
    },
  ],
  [0x28, "MARK", (m) => m.mark()],
  [0x30, "POP", (m) => (m.stack.length === 0 && m.metastack.length > 0 ? m.popMark() : m.pop())],
  [0x31, "POP_MARK", (m) => m.popMark()],
  [0x32, "DUP", (m) => m.push(m.top())],

  // Scalars.
  [0x4e, "NONE", (m) => m.push(null)],
  [0x88, "NEWTRUE", (m) => m.push(true)],
  [0x89, "NEWFALSE", (m) => m.push(false)],
  [0x4a, "BININT", (m) => m.push(m.i32())],
  [0x4b, "BININT1", (m) => m.push(m.u8())],
  [0x4d, "BININT2", (m) => m.push(m.u16())],
  [0x8a, "LONG1", (m) => m.push(intFromBytes(m, m.take(m.u8())))],
  [
    0x8b,
    "LONG4",
    (m) => {
      const len = m.i32();
      if (len < 0) throw m.error("negative LONG4 length");
      m.push(intFromBytes(m, m.take(len)));
    },
  ],
  [
    0x49,
    "INT", // text; "I01"/"I00" are protocol 0's True/False
    (m) => {
      const s = m.line();
      m.push(s === "01" ? true : s === "00" ? false : textInt(m, s));
    },
  ],
  [0x4c, "LONG", (m) => m.push(textInt(m, m.line().replace(/L$/, "")))], // text, optional trailing L
  [0x47, "BINFLOAT", (m) => m.push(m.f64be())],
  [0x46, "FLOAT", (m) => m.push(textFloat(m, m.line()))],

  // Strings and bytes (Python 2 str, BINSTRING/SHORT_BINSTRING, is decoded as UTF-8 like torch.load does).
  [0x58, "BINUNICODE", (m) => m.push(m.utf8(m.u32()))],
  [0x8c, "SHORT_BINUNICODE", (m) => m.push(m.utf8(m.u8()))],
  [0x8d, "BINUNICODE8", (m) => m.push(m.utf8(m.u64()))],
  [0x56, "UNICODE", (m) => m.push(decodeRawUnicodeEscape(m.line()))], // raw-unicode-escape text
  [
    0x54,
    "BINSTRING",
    (m) => {
      const len = m.i32();
      if (len < 0) throw m.error("negative BINSTRING length");
      m.push(m.utf8(len));
    },
  ],
  [0x55, "SHORT_BINSTRING", (m) => m.push(m.utf8(m.u8()))],
  [0x42, "BINBYTES", (m) => m.push(m.bytes(m.u32()))],
  [0x43, "SHORT_BINBYTES", (m) => m.push(m.bytes(m.u8()))],
  [0x8e, "BINBYTES8", (m) => m.push(m.bytes(m.u64()))],
  [0x96, "BYTEARRAY8", (m) => m.push(m.bytes(m.u64()))],

  // Dicts.
  [0x7d, "EMPTY_DICT", (m) => m.push(newMap(m))],
  [
    0x64,
    "DICT",
    (m) => {
      const d = newMap(m);
      setItems(m, d, m.popMark());
      m.push(d);
    },
  ],
  [
    0x73,
    "SETITEM",
    (m) => {
      const v = m.pop();
      const k = m.pop();
      setItems(m, m.top(), [k, v]);
    },
  ],
  [
    0x75,
    "SETITEMS",
    (m) => {
      const items = m.popMark();
      setItems(m, m.top(), items);
    },
  ],

  // Lists and tuples.
  [0x5d, "EMPTY_LIST", (m) => m.push(newArray(m, []))],
  [0x6c, "LIST", (m) => m.push(newArray(m, m.popMark()))],
  [
    0x61,
    "APPEND",
    (m) => {
      const v = m.pop();
      appendItems(m, m.top(), [v]);
    },
  ],
  [
    0x65,
    "APPENDS",
    (m) => {
      const items = m.popMark();
      appendItems(m, m.top(), items);
    },
  ],
  [0x29, "EMPTY_TUPLE", (m) => m.push(tuple(m, []))],
  [0x74, "TUPLE", (m) => m.push(tuple(m, m.popMark()))],
  [0x85, "TUPLE1", (m) => m.push(tuple(m, [m.pop()]))],
  [
    0x86,
    "TUPLE2",
    (m) => {
      const b = m.pop();
      const a = m.pop();
      m.push(tuple(m, [a, b]));
    },
  ],
  [
    0x87,
    "TUPLE3",
    (m) => {
      const c = m.pop();
      const b = m.pop();
      const a = m.pop();
      m.push(tuple(m, [a, b, c]));
    },
  ],

  // Sets.
  [0x8f, "EMPTY_SET", (m) => m.push(newSet(m, []))],
  [
    0x90,
    "ADDITEMS",
    (m) => {
      const items = m.popMark();
      const s = m.top();
      if (!(s instanceof Set)) throw m.error(`ADDITEMS on ${describe(s)}`);
      m.charge(COST_SLOT * 4 * items.length);
      for (const x of items) s.add(x);
    },
  ],
  [0x91, "FROZENSET", (m) => m.push(newSet(m, m.popMark()))],

  // The memo.
  [0x71, "BINPUT", (m) => m.memoPut(m.u8())],
  [0x72, "LONG_BINPUT", (m) => m.memoPut(m.u32())],
  [0x70, "PUT", (m) => m.memoPut(textIndex(m, m.line()))],
  [0x94, "MEMOIZE", (m) => m.memoPut(m.memo.size)],
  [0x68, "BINGET", (m) => m.push(m.memoGet(m.u8()))],
  [0x6a, "LONG_BINGET", (m) => m.push(m.memoGet(m.u32()))],
  [0x67, "GET", (m) => m.push(m.memoGet(textIndex(m, m.line())))],

  // Globals and objects: only allow-listed data constructors run, everything else stays an inert record.
  [
    0x63,
    "GLOBAL", // "module\nname\n"
    (m) => {
      const module = m.line();
      const name = m.line();
      m.push(resolveGlobal(m, module, name));
    },
  ],
  [
    0x93,
    "STACK_GLOBAL",
    (m) => {
      const name = m.pop();
      const module = m.pop();
      if (typeof module !== "string" || typeof name !== "string")
        throw m.error("STACK_GLOBAL needs two strings");
      m.push(resolveGlobal(m, module, name));
    },
  ],
  [
    0x52,
    "REDUCE",
    (m) => {
      const args = m.pop();
      const fn = m.pop();
      m.push(call(m, fn, args));
    },
  ],
  [
    0x81,
    "NEWOBJ", // cls.__new__(cls, *args)
    (m) => {
      const args = m.pop();
      const cls = m.pop();
      m.push(call(m, cls, args));
    },
  ],
  [
    0x92,
    "NEWOBJ_EX",
    (m) => {
      const kwargs = m.pop();
      const args = m.pop();
      const cls = m.pop();
      m.push(call(m, cls, args, kwargs instanceof Map ? kwargs : undefined));
    },
  ],
  [
    0x69,
    "INST", // protocol 0/1 instance: "module\nname\n" applied to the items above the mark
    (m) => {
      const module = m.line();
      const name = m.line();
      const args = m.popMark();
      m.push(call(m, resolveGlobal(m, module, name), args));
    },
  ],
  [
    0x6f,
    "OBJ", // protocol 1 instance: class and arguments above the mark
    (m) => {
      const items = m.popMark();
      if (items.length === 0) throw m.error("OBJ without a class");
      m.push(call(m, items[0], items.slice(1)));
    },
  ],
  [0x62, "BUILD", build],
  [0x51, "BINPERSID", (m) => persistent(m, m.pop())],
  [0x50, "PERSID", (m) => persistent(m, m.line())],
];

/** OPCODES indexed by opcode byte. */
const HANDLERS: (Handler | undefined)[] = Array.from({ length: 256 }, () => undefined);
for (const [opcode, , handler] of OPCODES) HANDLERS[opcode] = handler;

// ---------------------------------------------------------------------------------------------------
// The driver.

/** Unpickles one object from `data` starting at `offset`. */
export function unpickleAt(data: Uint8Array, offset: number, opts: UnpickleOptions = {}): UnpickleResult {
  const m = new Machine(data, offset, opts);
  while (!m.stopped) {
    const op = m.u8();
    const handler = HANDLERS[op];
    if (handler === undefined) {
      m.pos--;
      const ch = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : "";
      throw m.error(`unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")}${ch}`);
    }
    handler(m);
  }
  return { value: m.value, end: m.pos };
}

/** Unpickles the single object in `data`. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): unknown {
  return unpickleAt(data, 0, opts).value;
}
