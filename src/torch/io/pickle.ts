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

// ---------------------------------------------------------------------------------------------------
// The machine.

export interface UnpickleOptions {
  /** Name used in error messages (usually the file, or "file:entry"). */
  source?: string;
  /** Resolves persistent ids (BINPERSID/PERSID); without it a persistent id is an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** What to do with globals outside the allow-list: inert placeholders (default) or an error. */
  onUnknownGlobal?: "placeholder" | "error";
  /** Treat `__torch__.*` (TorchScript) classes as expected: always inert objects, never an error. */
  torchScriptClasses?: boolean;
}

/** Thrown when the pickle data ends before STOP (the file is truncated, or more data is needed). */
export class PickleEOFError extends Error {}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode. */
  end: number;
}

/** Unpickles one object from `data` starting at `offset`. */
export function unpickleAt(data: Uint8Array, offset: number, opts: UnpickleOptions = {}): UnpickleResult {
  const source = opts.source ?? "pickle";
  const ctx: Ctx = { source };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const n = buf.length;
  let pos = offset;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg} (pickle byte ${pos})`);
  };
  const need = (k: number): void => {
    if (k < 0 || pos + k > n) {
      throw new PickleEOFError(
        `${source}: pickle data ends unexpectedly at byte ${n} (wanted ${k} more bytes at ${pos}; truncated file?)`,
      );
    }
  };
  const take = (k: number): Buffer => {
    need(k);
    const out = buf.subarray(pos, pos + k);
    pos += k;
    return out;
  };
  const readLine = (): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) {
      throw new PickleEOFError(
        `${source}: pickle data ends unexpectedly at byte ${n} (no newline after byte ${pos})`,
      );
    }
    const s = buf.toString("latin1", pos, nl);
    pos = nl + 1;
    return s;
  };
  const u64 = (): number => {
    const v = take(8).readBigUInt64LE(0);
    if (v > BigInt(n)) need(Number.MAX_SAFE_INTEGER);
    return Number(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail("MARK expected");
    stack = prev!;
    return items;
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} not found`);
    return memo.get(i);
  };
  const intFromBytes = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return normInt(v);
  };
  const resolveGlobal = (module: string, name: string): unknown => {
    const mod = PY2_MODULES[module] ?? module;
    const key = `${mod}.${name}`;
    const ctor = ALLOWED[key];
    if (ctor) return new AllowedGlobal(mod, name, ctor);
    if (mod === "torch" && Object.hasOwn(STORAGE_CLASSES, name)) {
      const [dtype, size] = STORAGE_CLASSES[name]!;
      return new TorchStorageType(name, dtype, size);
    }
    const torchScript = mod === "__torch__" || mod.startsWith("__torch__.");
    if (opts.onUnknownGlobal === "error" && !(torchScript && opts.torchScriptClasses)) {
      fail(`refusing pickled global ${key} (not on the allow-list of data constructors)`);
    }
    // Inert placeholder: records the name, is never imported and never called.
    return new PickleGlobal(module, name);
  };
  const call = (fn: unknown, args: unknown, kwargs?: Map<unknown, unknown>): unknown => {
    const list = args === undefined || args === null ? [] : args;
    if (!Array.isArray(list)) fail(`call arguments must be a tuple, got ${describe(args)}`);
    if (fn instanceof AllowedGlobal) return fn.build(list as unknown[], kwargs, ctx);
    if (fn instanceof PickleGlobal) return new PickleObject(fn.module, fn.name, list as unknown[], kwargs);
    if (fn instanceof TorchStorageType) return new PickleObject("torch", fn.name, list as unknown[], kwargs);
    return fail(`cannot call ${describe(fn)}`);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (items.length % 2 !== 0) fail("SETITEMS needs key/value pairs");
    let m: Map<unknown, unknown>;
    if (target instanceof Map) m = target;
    else if (target instanceof PickleObject) {
      target.dictItems ??= new Map();
      m = target.dictItems;
    } else {
      fail(`cannot set items on ${describe(target)}`);
      return;
    }
    for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    if (Array.isArray(target)) {
      if (Object.isFrozen(target)) fail("cannot append to a tuple");
      for (const x of items) target.push(x);
    } else if (target instanceof PickleObject) {
      target.listItems ??= [];
      target.listItems.push(...items);
    } else {
      fail(`cannot append to ${describe(target)}`);
    }
  };
  const tuple = (items: unknown[]): unknown[] => Object.freeze(items) as unknown[];

  while (true) {
    need(1);
    const op = buf[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        take(1);
        break;
      case 0x95: // FRAME (framing is only a read-ahead hint)
        take(8);
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && metastack.length > 0) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(take(4).readInt32LE(0));
        break;
      case 0x4b: // BININT1
        stack.push(take(1)[0]!);
        break;
      case 0x4d: // BININT2
        stack.push(take(2).readUInt16LE(0));
        break;
      case 0x8a: // LONG1
        stack.push(intFromBytes(take(take(1)[0]!)));
        break;
      case 0x8b: {
        // LONG4
        const len = take(4).readInt32LE(0);
        if (len < 0) fail("negative LONG4 length");
        stack.push(intFromBytes(take(len)));
        break;
      }
      case 0x49: {
        // INT (text); "I01"/"I00" are protocol 0's True/False
        const s = readLine();
        if (s === "01") stack.push(true);
        else if (s === "00") stack.push(false);
        else stack.push(parseIntText(s, fail));
        break;
      }
      case 0x4c: // LONG (text, optional trailing L)
        stack.push(parseIntText(readLine().replace(/L$/, ""), fail));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(take(8).readDoubleBE(0));
        break;
      case 0x46: {
        // FLOAT (text)
        const s = readLine();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s.trim())) fail(`bad FLOAT ${JSON.stringify(s)}`);
        stack.push(v);
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(take(take(4).readUInt32LE(0)).toString("utf8"));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(take(take(1)[0]!).toString("utf8"));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(take(u64()).toString("utf8"));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        stack.push(decodeRawUnicodeEscape(readLine()));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str; torch.load decodes these as UTF-8)
        const len = take(4).readInt32LE(0);
        if (len < 0) fail("negative BINSTRING length");
        stack.push(take(len).toString("utf8"));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(take(take(1)[0]!).toString("utf8"));
        break;
      case 0x42: // BINBYTES
        stack.push(Buffer.from(take(take(4).readUInt32LE(0))));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(Buffer.from(take(take(1)[0]!)));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(Buffer.from(take(u64())));
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const m = new Map<unknown, unknown>();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: {
        // LIST (pop the mark before touching `stack`: popMark replaces it)
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`ADDITEMS on ${describe(s)}`);
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      case 0x71: // BINPUT
        memo.set(take(1)[0]!, top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(take(4).readUInt32LE(0), top());
        break;
      case 0x70: // PUT
        memo.set(parseIndex(readLine(), fail), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(memoGet(take(1)[0]!));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(take(4).readUInt32LE(0)));
        break;
      case 0x67: // GET
        stack.push(memoGet(parseIndex(readLine(), fail)));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, kwargs instanceof Map ? kwargs : undefined));
        break;
      }
      case 0x69: {
        // INST (protocol 0/1 instance): "module\nname\n" applied to the items above the mark
        const module = readLine();
        const name = readLine();
        const args = popMark();
        stack.push(call(resolveGlobal(module, name), args));
        break;
      }
      case 0x6f: {
        // OBJ (protocol 1 instance): class and arguments above the mark
        const items = popMark();
        if (items.length === 0) fail("OBJ without a class");
        stack.push(call(items[0], items.slice(1)));
        break;
      }
      case 0x62: {
        // BUILD: store the state; nothing's __setstate__ is ever run.
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (obj !== null && typeof obj === "object") buildState.set(obj, state);
        else fail(`BUILD on ${describe(obj)}`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail("persistent id in a pickle that does not allow them");
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID
        const pid = readLine();
        if (!opts.persistentLoad) fail("persistent id in a pickle that does not allow them");
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      default: {
        pos--;
        const ch = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : "";
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")}${ch}`);
      }
    }
  }
}

/** Unpickles the single object in `data`. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): unknown {
  return unpickleAt(data, 0, opts).value;
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string, fail: (msg: string) => never): number | bigint {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) fail(`bad integer literal ${JSON.stringify(s)}`);
  return normInt(BigInt(t));
}

function parseIndex(s: string, fail: (msg: string) => never): number {
  const t = s.trim();
  if (!/^\d+$/.test(t)) fail(`bad memo index ${JSON.stringify(s)}`);
  return Number(t);
}

function decodeRawUnicodeEscape(s: string): string {
  return s.replace(
    /\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g,
    (_m, a: string | undefined, b: string | undefined) =>
      String.fromCodePoint(Number.parseInt((a ?? b)!, 16)),
  );
}
