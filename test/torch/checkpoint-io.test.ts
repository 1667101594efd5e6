// Reads the checkpoints written by scripts/make-test-checkpoints.py and compares keys, dtypes, shapes,
// strides and values with test/data/checkpoints/expected.json; also checks the ZIP reader and the
// restricted unpickler directly.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import {
  PickledTensor,
  PickleEOFError,
  PickleGlobal,
  PickleObject,
  PickleSlice,
  pickleAttributes,
  unpickle,
  unpickleAt,
} from "../../src/torch/io/pickle.js";
import { loadTorchPickle, readTorchCheckpoint } from "../../src/torch/io/pth.js";
import {
  type AnyTypedArray,
  numelOf,
  readBytes,
  readRecord,
  STORED_ITEM_SIZE,
  type StoredDType,
  type TensorRecord,
} from "../../src/torch/io/records.js";
import { readEntry, readZipArchive, storedEntryRange } from "../../src/torch/io/zip.js";

function dataDir(): string {
  // dist/test/torch/<this>.js → <repo>/test/data/checkpoints
  const fromFile = fileURLToPath(new URL("../../../test/data/checkpoints", import.meta.url));
  return existsSync(fromFile) ? fromFile : join(process.cwd(), "test/data/checkpoints");
}
const DIR = dataDir();
const path = (name: string): string => join(DIR, name);

interface ExpectedTensor {
  dtype: StoredDType;
  shape: number[];
  strides: number[];
  storageOffset: number;
  contiguous: boolean;
  values: (number | string)[];
}
interface ExpectedFile {
  format?: string;
  keys?: Record<string, ExpectedTensor>;
  order?: string[];
  notKeys?: string[];
  constants?: ExpectedTensor[];
  extra?: Record<string, unknown>;
  placeholder?: { key: string; module: string; name: string };
  marker?: string;
  error?: boolean;
  entry?: string;
}
const expected = JSON.parse(readFileSync(path("expected.json"), "utf8")) as Record<string, ExpectedFile>;

// --- value decoding (done here, independently of the library) ---

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function bf16ToNumber(b: number): number {
  const f = new Float32Array(new Uint32Array([b << 16]).buffer);
  return f[0]!;
}

function decodeElement(buf: Buffer, at: number, dtype: StoredDType): number | string {
  switch (dtype) {
    case "float64":
      return buf.readDoubleLE(at);
    case "float32":
      return buf.readFloatLE(at);
    case "float16":
      return halfToNumber(buf.readUInt16LE(at));
    case "bfloat16":
      return bf16ToNumber(buf.readUInt16LE(at));
    case "int64":
      return buf.readBigInt64LE(at).toString();
    case "int32":
      return buf.readInt32LE(at);
    case "int16":
      return buf.readInt16LE(at);
    case "int8":
      return buf.readInt8(at);
    case "uint16":
      return buf.readUInt16LE(at);
    default:
      return buf.readUInt8(at);
  }
}

/** Values of a contiguous record through readRecord. */
function contiguousValues(rec: TensorRecord): (number | string)[] {
  const arr: AnyTypedArray = readRecord(rec);
  const out: (number | string)[] = [];
  for (const v of arr) {
    if (typeof v === "bigint") out.push(v.toString());
    else if (rec.dtype === "float16") out.push(halfToNumber(v));
    else if (rec.dtype === "bfloat16") out.push(bf16ToNumber(v));
    else out.push(v);
  }
  return out;
}

/** Values of a strided record, following the strides by hand. */
function stridedValues(rec: TensorRecord): (number | string)[] {
  const item = STORED_ITEM_SIZE[rec.dtype];
  const buf = readBytes(rec.file, rec.byteOffset, rec.byteLength);
  const strides = rec.strides!;
  const n = numelOf(rec.shape);
  const idx = new Array<number>(rec.shape.length).fill(0);
  const out: (number | string)[] = [];
  for (let k = 0; k < n; k++) {
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += idx[d]! * strides[d]!;
    out.push(decodeElement(buf, off * item, rec.dtype));
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < rec.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

function checkTensor(name: string, rec: TensorRecord | undefined, want: ExpectedTensor, file: string): void {
  assert.ok(rec, `${name} missing`);
  assert.equal(rec.file, file);
  assert.equal(rec.dtype, want.dtype, `${name} dtype`);
  assert.deepEqual(rec.shape, want.shape, `${name} shape`);
  const n = numelOf(want.shape);
  const item = STORED_ITEM_SIZE[want.dtype];
  if (want.contiguous) {
    assert.equal(rec.strides, undefined, `${name}: contiguous tensors carry no strides`);
    assert.equal(rec.byteLength, n * item, `${name} byteLength`);
    assert.deepEqual(contiguousValues(rec), want.values, `${name} values`);
  } else {
    assert.deepEqual(rec.strides, want.strides, `${name} strides`);
    const span = 1 + want.shape.reduce((acc, d, i) => acc + (d - 1) * want.strides[i]!, 0);
    assert.equal(rec.byteLength, span * item, `${name} byteLength`);
    assert.deepEqual(stridedValues(rec), want.values, `${name} values`);
  }
}

function checkFile(name: string): ReturnType<typeof readTorchCheckpoint> {
  const want = expected[name]!;
  const ck = readTorchCheckpoint(path(name));
  assert.equal(ck.format, want.format);
  assert.equal(ck.file, path(name));
  assert.deepEqual([...ck.records.keys()].sort(), Object.keys(want.keys!).sort());
  for (const [k, t] of Object.entries(want.keys!))
    checkTensor(`${name}:${k}`, ck.records.get(k), t, path(name));
  return ck;
}

describe("checkpoint readers against expected.json", () => {
  for (const name of ["sd.pt", "legacy.pt", "zip64.pt"]) {
    test(`${name}: every key, dtype, shape and value`, () => {
      const ck = checkFile(name);
      assert.deepEqual(
        [...ck.records.keys()],
        Object.keys(expected[name]!.keys!),
        "state_dict order is kept",
      );
      assert.deepEqual(ck.extra, {});
    });

    test(`${name}: views share storage at the right offsets`, () => {
      const r = readTorchCheckpoint(path(name)).records;
      const base = r.get("base")!;
      assert.equal(r.get("base_t")!.byteOffset, base.byteOffset);
      assert.equal(r.get("base_row1")!.byteOffset, base.byteOffset + 4 * 4);
      assert.equal(r.get("base_col2")!.byteOffset, base.byteOffset + 2 * 4);
      assert.deepEqual(r.get("base_col2")!.strides, [4]);
      assert.equal(r.get("tied")!.byteOffset, r.get("conv.bias")!.byteOffset);
      assert.equal(expected[name]!.keys!.base_col2!.storageOffset, 2);
    });
  }

  test("detectron2.pth: the model wrapper is unwrapped, other entries go to extra", () => {
    const ck = checkFile("detectron2.pth");
    assert.deepEqual(ck.extra, expected["detectron2.pth"]!.extra);
  });

  test("nested.pt: state_dict wrapper unwrapped, nested dicts get dotted names", () => {
    const ck = checkFile("nested.pt");
    assert.equal(ck.extra.epoch, 3);
    const meta = ck.extra.meta;
    assert.ok(meta instanceof Map);
    assert.deepEqual(Object.fromEntries(meta), { name: "x", lr: 0.125 });
    const raw = readTorchCheckpoint(path("nested.pt"), { unwrap: false });
    assert.ok(raw.records.has("state_dict.backbone.bn.running_mean"));
    assert.equal(raw.extra.epoch, 3);
  });

  test("legacy.pt: same tensors as the zip file, different layout", () => {
    const zip = readTorchCheckpoint(path("sd.pt")).records;
    const legacy = readTorchCheckpoint(path("legacy.pt")).records;
    for (const [k, r] of zip) {
      const l = legacy.get(k)!;
      assert.deepEqual(
        [l.dtype, l.shape, l.strides, l.byteLength],
        [r.dtype, r.shape, r.strides, r.byteLength],
        k,
      );
    }
  });

  test("script.pt (TorchScript): state_dict names, order, dtypes and values; plain attributes excluded", () => {
    const want = expected["script.pt"]!;
    const ck = checkFile("script.pt");
    assert.deepEqual([...ck.records.keys()], want.order);
    for (const k of want.notKeys!) assert.ok(!ck.records.has(k), `${k} is not in state_dict()`);
    assert.equal(ck.records.get("proj")!.dtype, "float16");
    assert.equal(ck.records.get("head.weight")!.dtype, "float16");
    const root = ck.extra.module;
    assert.ok(root instanceof PickleObject);
    assert.equal(root.qualifiedName, "__torch__.Net");
    const consts = ck.extra.constants as TensorRecord[];
    assert.equal(consts.length, want.constants!.length);
    for (const [i, c] of consts.entries())
      checkTensor(`constant ${i}`, c, want.constants![i]!, path("script.pt"));
    assert.ok(consts[0]!.byteOffset !== ck.records.get("proj")!.byteOffset);
  });

  test("script.pt: the raw module tree keeps non-tensor attributes", () => {
    const c = loadTorchPickle(path("script.pt"));
    assert.equal(c.format, "torchscript");
    const root = c.object as PickleObject;
    const state = root.state as Map<string, unknown>;
    assert.equal(state.get("n_layers"), 2);
    assert.equal(state.get("training"), true);
    const blocks = state.get("blocks") as PickleObject;
    assert.equal(blocks.qualifiedName, "__torch__.torch.nn.modules.container.ModuleList");
    const b0 = (blocks.state as Map<string, unknown>).get("0") as PickleObject;
    assert.ok((b0.state as Map<string, unknown>).get("scratch") instanceof PickledTensor);
    assert.deepEqual(c.scriptClasses!.get("__torch__.Block"), {
      isModule: true,
      parameters: [],
      buffers: ["pos"],
    });
  });
});

describe("untrusted and broken files", () => {
  test("malicious.pt: os.system is a placeholder and never runs", () => {
    const want = expected["malicious.pt"]!;
    rmSync(want.marker!, { force: true });
    const ck = checkFile("malicious.pt");
    const evil = ck.extra[want.placeholder!.key];
    assert.ok(evil instanceof PickleObject);
    assert.equal(evil.module, want.placeholder!.module);
    assert.equal(evil.name, want.placeholder!.name);
    assert.deepEqual(evil.args, ["touch /tmp/dedos-pickle-pwned"]);
    assert.equal(existsSync(want.marker!), false, "the pickled command must not have run");
  });

  test("malicious.pt: onUnknownGlobal=error refuses it, naming the file and the global", () => {
    assert.throws(
      () => readTorchCheckpoint(path("malicious.pt"), { onUnknownGlobal: "error" }),
      (e: Error) => e.message.includes(path("malicious.pt")) && e.message.includes("posix.system"),
    );
    assert.equal(existsSync(expected["malicious.pt"]!.marker!), false);
  });

  for (const name of ["truncated.pt", "truncated-legacy.pt"]) {
    test(`${name}: error names the file`, () => {
      assert.throws(
        () => readTorchCheckpoint(path(name)),
        (e: Error) => e.message.includes(path(name)) && /truncat/i.test(e.message),
      );
    });
  }

  test("deflated-tensor.pt: a compressed tensor entry is a clear error", () => {
    const entry = expected["deflated-tensor.pt"]!.entry!;
    assert.throws(
      () => readTorchCheckpoint(path("deflated-tensor.pt")),
      (e: Error) =>
        e.message.includes(path("deflated-tensor.pt")) &&
        e.message.includes(entry) &&
        /compress/.test(e.message),
    );
  });

  test("a file that is no checkpoint at all", () => {
    assert.throws(
      () => readTorchCheckpoint(path("expected.json")),
      (e: Error) =>
        e.message.includes(path("expected.json")) && e.message.includes("not a PyTorch checkpoint"),
    );
  });
});

describe("zip reader", () => {
  test("ZIP64 records, an archive comment and a deflated entry", () => {
    const z64 = readZipArchive(path("zip64.pt"));
    assert.equal(z64.comment, "dedos zip64 test");
    const plain = readZipArchive(path("sd.pt"));
    assert.equal(z64.entries.size, plain.entries.size);
    const pkl = z64.entries.get("zip64/data.pkl")!;
    assert.equal(pkl.method, 8);
    assert.ok(pkl.compressedSize < pkl.uncompressedSize);
    assert.deepEqual(readEntry(z64, pkl), readEntry(plain, "sd/data.pkl"));
    assert.throws(() => storedEntryRange(z64, pkl), /zip64\.pt.*compressed/);
    for (const [name, e] of plain.entries) {
      if (!name.startsWith("sd/data/")) continue;
      const other = z64.entries.get(name.replace("sd/", "zip64/"))!;
      assert.equal(other.method, 0);
      assert.deepEqual(
        readBytes(z64.file, other.dataOffset, other.uncompressedSize),
        readBytes(plain.file, e.dataOffset, e.uncompressedSize),
      );
    }
  });

  test("PyTorch's padded local headers: data offsets are 64-byte aligned", () => {
    const z = readZipArchive(path("sd.pt"));
    for (const [name, e] of z.entries)
      if (name.startsWith("sd/data/")) assert.equal(e.dataOffset % 64, 0, name);
    assert.throws(() => readEntry(z, "sd/nope"), /sd\.pt: no entry "sd\/nope"/);
  });

  test("crc32", () => {
    // The reader checks entries with Node's zlib.crc32: it must be the ZIP checksum (CRC-32/ISO-HDLC).
    assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });

  test("readEntry refuses an entry whose bytes do not match its CRC-32", () => {
    const dir = mkdtempSync(join(tmpdir(), "dedos-crc-"));
    try {
      const file = join(dir, "sd.pt");
      const bytes = readFileSync(path("sd.pt"));
      const e = readZipArchive(path("sd.pt")).entries.get("sd/version")!;
      bytes[e.dataOffset]! ^= 0x01;
      writeFileSync(file, bytes);
      const z = readZipArchive(file);
      assert.throws(() => readEntry(z, "sd/version"), /sd\.pt: entry "sd\/version" fails its CRC-32 check/);
      assert.equal(readEntry(z, "sd/data.pkl").length, 1344);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Pickles of the same object written by CPython at protocols 0, 2 and 5:
// {"a": [1, 2**70, -2**70, 3.5, True, None, -1, 255, 65535, 2**31-1, -2**31], "b": (1,), "t2": (1, 2),
//  "t3": (1, 2, 3), "t4": (1, 2, 3, 4), "s": {1, 2}, "f": frozenset({3}), "by": b"xy", "ba": bytearray(b"z"),
//  "u": "h\u00e9\u4e2d\U0001F600", "sl": slice(1, 5, 2), "od": OrderedDict([("k", 1)]), 7: "int key"}
const SAMPLE: Record<number, string> = {
  0: "286470300a56610a70310a286c70320a49310a614c313138303539313632303731373431313330333432344c0a614c2d313138303539313632303731373431313330333432344c0a6146332e350a614930310a614e61492d310a61493235350a614936353533350a6149323134373438333634370a61492d323134373438333634380a617356620a70330a2849310a7470340a735674320a70350a2849310a49320a7470360a735674330a70370a2849310a49320a49330a7470380a735674340a70390a2849310a49320a49330a49340a747031300a7356730a7031310a635f5f6275696c74696e5f5f0a7365740a7031320a28286c7031330a49310a6149320a61747031340a527031350a7356660a7031360a635f5f6275696c74696e5f5f0a66726f7a656e7365740a7031370a28286c7031380a49330a61747031390a527032300a735662790a7032310a635f636f646563730a656e636f64650a7032320a285678790a7032330a566c6174696e310a7032340a747032350a527032360a735662610a7032370a635f5f6275696c74696e5f5f0a6279746561727261790a7032380a286732320a28567a0a7032390a6732340a747033300a527033310a747033320a527033330a7356750a7033340a5668e95c75346532645c5530303031663630300a7033350a7356736c0a7033360a635f5f6275696c74696e5f5f0a736c6963650a7033370a2849310a49350a49320a747033380a527033390a73566f640a7034300a63636f6c6c656374696f6e730a4f726465726564446963740a7034310a2874527034320a566b0a7034330a49310a737349370a56696e74206b65790a7034340a732e",
  2: "80027d71002858010000006171015d7102284b018a090000000000000000408a090000000000000000c047400c000000000000884e4affffffff4bff4dffff4affffff7f4a000000806558010000006271034b018571045802000000743271054b014b028671065802000000743371074b014b024b03877108580200000074347109284b014b024b034b0474710a580100000073710b635f5f6275696c74696e5f5f0a7365740a710c5d710d284b014b026585710e52710f5801000000667110635f5f6275696c74696e5f5f0a66726f7a656e7365740a71115d71124b0361857113527114580200000062797115635f636f646563730a656e636f64650a711658020000007879711758060000006c6174696e31711886711952711a58020000006261711b635f5f6275696c74696e5f5f0a6279746561727261790a711c681658010000007a711d681886711e52711f8571205271215801000000757122580a00000068c3a9e4b8adf09f988071235802000000736c7124635f5f6275696c74696e5f5f0a736c6963650a71254b014b054b0287712652712758020000006f64712863636f6c6c656374696f6e730a4f726465726564446963740a71292952712a58010000006b712b4b01734b075807000000696e74206b6579712c752e",
  5: "80059511010000000000007d94288c0161945d94284b018a090000000000000000408a090000000000000000c047400c000000000000884e4affffffff4bff4dffff4affffff7f4a00000080658c0162944b0185948c027432944b014b0286948c027433944b014b024b0387948c02743494284b014b024b034b0474948c0173948f94284b014b02908c016694284b0391948c0262799443027879948c026261949601000000000000007a948c0175948c0a68c3a9e4b8adf09f9880948c02736c948c086275696c74696e73948c05736c6963659493944b014b054b02879452948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b01734b078c07696e74206b657994752e",
};

describe("restricted unpickler", () => {
  for (const proto of [0, 2, 5]) {
    test(`protocol ${proto}: scalars and containers`, () => {
      const data = Buffer.from(SAMPLE[proto]!, "hex");
      const v = unpickle(data, { source: "sample" });
      assert.ok(v instanceof Map);
      assert.deepEqual(v.get("a"), [
        1,
        2n ** 70n,
        -(2n ** 70n),
        3.5,
        true,
        null,
        -1,
        255,
        65535,
        2 ** 31 - 1,
        -(2 ** 31),
      ]);
      assert.deepEqual(v.get("b"), [1]);
      assert.ok(Object.isFrozen(v.get("b")), "tuples are frozen arrays");
      assert.deepEqual(v.get("t2"), [1, 2]);
      assert.deepEqual(v.get("t3"), [1, 2, 3]);
      assert.deepEqual(v.get("t4"), [1, 2, 3, 4]);
      assert.deepEqual(v.get("s"), new Set([1, 2]));
      assert.deepEqual(v.get("f"), new Set([3]));
      assert.deepEqual(v.get("by"), Buffer.from("xy"));
      assert.deepEqual(v.get("ba"), Buffer.from("z"));
      assert.equal(v.get("u"), "h\u00e9\u4e2d\u{1F600}");
      const sl = v.get("sl");
      assert.ok(sl instanceof PickleSlice);
      assert.deepEqual([sl.start, sl.stop, sl.step], [1, 5, 2]);
      assert.deepEqual(v.get("od"), new Map([["k", 1]]));
      assert.equal(v.get(7), "int key");
    });
  }

  test("a recursive list (memo)", () => {
    const v = unpickle(Buffer.from("80025d71006800612e", "hex")) as unknown[];
    assert.equal(v[0], v);
  });

  test("protocol 4 STACK_GLOBAL of os.system: placeholder or error, never a call", () => {
    // pickle.dumps({"x": Evil()}, 4) where Evil.__reduce__ returns (os.system, ("echo hi",))
    const data = Buffer.from(
      "80049529000000000000007d948c0178948c05706f736978948c0673797374656d9493948c076563686f2068699485945294732e",
      "hex",
    );
    const v = unpickle(data) as Map<string, unknown>;
    const x = v.get("x");
    assert.ok(x instanceof PickleObject);
    assert.deepEqual([x.module, x.name, x.args], ["posix", "system", ["echo hi"]]);
    assert.throws(
      () => unpickle(data, { source: "evil.pkl", onUnknownGlobal: "error" }),
      /evil\.pkl: refusing pickled global posix\.system/,
    );
  });

  test("copy_reg._reconstructor, INST and OBJ build inert objects with their state", () => {
    // pickle.dumps(C(), 0) for a class mymod.C with self.a = 1
    const p0 = Buffer.from(
      "ccopy_reg\n_reconstructor\np0\n(cmymod\nC\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nVa\np6\nI1\nsb.",
      "latin1",
    );
    const inst = Buffer.from("(imymod\nC\n(dVa\nI1\nsb.", "latin1");
    const obj = Buffer.from("(cmymod\nC\nK\x07o(dVa\nI1\nsb.", "latin1");
    for (const data of [p0, inst, obj]) {
      const v = unpickle(data);
      assert.ok(v instanceof PickleObject);
      assert.equal(v.qualifiedName, "mymod.C");
      assert.deepEqual(v.state, new Map([["a", 1]]));
    }
    assert.deepEqual((unpickle(obj) as PickleObject).args, [7]);
  });

  test("GLOBAL without a call stays a PickleGlobal", () => {
    const data = Buffer.from("\x80\x02cos\nsystem\n.", "latin1");
    const g = unpickle(data);
    assert.ok(g instanceof PickleGlobal);
    assert.equal(g.qualifiedName, "os.system");
  });

  test("BUILD state on an OrderedDict is kept aside (state_dict()._metadata)", () => {
    const c = loadTorchPickle(path("sd.pt"));
    const attrs = pickleAttributes(c.object as object) as Map<string, unknown>;
    assert.ok(attrs instanceof Map);
    const meta = attrs.get("_metadata") as Map<string, unknown>;
    assert.deepEqual([...meta.keys()], ["", "conv"]);
  });

  test("truncated data throws PickleEOFError; unknown opcodes and bad persistent ids throw", () => {
    const full = Buffer.from(SAMPLE[2]!, "hex");
    assert.throws(
      () => unpickle(full.subarray(0, 40), { source: "cut.pkl" }),
      (e: Error) => e instanceof PickleEOFError && e.message.startsWith("cut.pkl: "),
    );
    assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0xff])), /unsupported pickle opcode 0xff/);
    assert.throws(
      () => unpickle(Buffer.from("\x80\x02X\x01\x00\x00\x00aQ.", "latin1"), { source: "p" }),
      /p: persistent id/,
    );
    const r = unpickleAt(
      Buffer.concat([Buffer.from("K\x05.", "latin1"), Buffer.from("K\x06.", "latin1")]),
      3,
    );
    assert.deepEqual(r, { value: 6, end: 6 });
  });
});
