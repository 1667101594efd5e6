// Hostile and broken weight files, made here: a .pth whose data.pkl inflates to 3 GiB, archives whose
// entries lie about their sizes, pickles that ask for absurd allocations, malformed safetensors headers and
// a mapped file truncated in place. Each must be a clear error naming the file (and the key where there is
// one) at bounded memory, and never kill the process.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crc32, deflateRawSync } from "node:zlib";
import { loadCheckpoint, readCheckpointRecords } from "../../src/torch/io/load.js";
import { PickleEOFError, unpickle } from "../../src/torch/io/pickle.js";
import { readTorchCheckpoint } from "../../src/torch/io/pth.js";
import { readSafetensorsIndex } from "../../src/torch/io/safetensors-format.js";
import { readEntry, readZipArchive } from "../../src/torch/io/zip.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";
import { runChild, writeSafetensorsRaw, writeZip, zeroBomb } from "./checkpoint-files.js";

const dir = tempDir("dedos-reliability-ckpt-");
const SD_PT = join(PACKAGE_ROOT, "test/data/checkpoints/sd.pt");
const LOAD = `const { loadCheckpoint } = await import(dist("torch/io/load.js"));`;

/** Asserts that `fn` throws an error whose message matches `re` (anchors apply to the message itself). */
function throwsMessage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.match(e.message, re);
    return true;
  });
}

/** sd.pt's entries, each as stored bytes, with `edit` applied. */
function sdEntries(edit: (name: string, data: Buffer) => Partial<import("./checkpoint-files.js").ZipSpec>) {
  const z = readZipArchive(SD_PT);
  return [...z.entries.values()].map((e) => {
    const data = readEntry(z, e);
    return { name: e.name, data, ...edit(e.name, data) };
  });
}

describe("zip: inflating is capped by the declared size", () => {
  it("a 3 MB .pth whose data.pkl inflates to 3 GiB is refused from its directory, at bounded memory", () => {
    const file = join(dir, "bomb.pth");
    writeZip(file, [
      { name: "archive/data.pkl", data: zeroBomb(48), method: 8, uncompressedSize: 3 * 2 ** 30, crc: 0 },
      { name: "archive/data/0", data: Buffer.alloc(16) },
    ]);
    const r = runChild(`${LOAD} loadCheckpoint(argv[0]);`, [file]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.message,
      `${file}: entry "archive/data.pkl" declares 3221225472 bytes uncompressed, more than the 1 GiB allowed for a pickle (a decompression bomb or a corrupt archive?)`,
    );
    assert.ok(r.peakMb < 600, `peak RSS ${r.peakMb.toFixed(0)} MB`);
  });

  it("a data.pkl that declares 1 MiB and inflates to 3 GiB stops at the declared size", () => {
    const file = join(dir, "liar.pth");
    writeZip(file, [
      { name: "archive/data.pkl", data: zeroBomb(48), method: 8, uncompressedSize: 2 ** 20, crc: 0 },
    ]);
    const r = runChild(`${LOAD} loadCheckpoint(argv[0]);`, [file]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.message,
      `${file}: entry "archive/data.pkl" inflates to more than the 1048576 bytes its directory declares (a decompression bomb or a corrupt archive?)`,
    );
    assert.ok(r.peakMb < 600, `peak RSS ${r.peakMb.toFixed(0)} MB`);
  });

  it("an entry that inflates to exactly its declared size reads, and its CRC is checked", () => {
    const file = join(dir, "exact.zip");
    const body = Buffer.alloc(100_000, 7);
    writeZip(file, [
      { name: "a", data: deflateRawSync(body), method: 8, uncompressedSize: body.length, crc: crc32(body) },
      { name: "b", data: deflateRawSync(body), method: 8, uncompressedSize: body.length, crc: 1 },
    ]);
    const z = readZipArchive(file);
    assert.deepEqual(readEntry(z, "a"), body);
    assert.throws(() => readEntry(z, "b"), new RegExp(`${file}: entry "b" fails its CRC-32 check`));
    assert.throws(
      () => readEntry(z, "a", { maxBytes: 1000, what: "a test entry" }),
      /entry "a" declares 100000 bytes uncompressed, more than the 1000 bytes allowed for a test entry/,
    );
  });

  it("a tensor storage entry must be exactly numel × itemsize bytes: the error names the storage key", () => {
    for (const extra of [4, -4]) {
      const file = join(dir, `storage${extra}.pt`);
      let victim = "";
      writeZip(
        file,
        sdEntries((name, data) => {
          if (victim || !name.startsWith("sd/data/")) return {};
          victim = name;
          return { data: extra > 0 ? Buffer.concat([data, Buffer.alloc(extra)]) : data.subarray(0, extra) };
        }),
      );
      const key = victim.slice("sd/data/".length);
      assert.throws(
        () => readTorchCheckpoint(file),
        (e: Error) =>
          e.message.startsWith(`${file}: entry "${victim}" has `) &&
          e.message.includes(`but storage "${key}" (torch.`) &&
          / needs \d+$/.test(e.message),
      );
    }
  });

  it("a stored entry that declares more bytes than it occupies is refused before anything maps it", () => {
    const file = join(dir, "stored-lie.pt");
    writeZip(
      file,
      sdEntries((name, data) => (name === "sd/data/0" ? { uncompressedSize: data.length + 4096 } : {})),
    );
    throwsMessage(
      () => readTorchCheckpoint(file),
      new RegExp(
        `^${file}: stored entry "sd/data/0" declares \\d+ bytes but occupies \\d+ \\(corrupt ZIP\\)$`,
      ),
    );
  });
});

describe("unpickler: what a pickle can make is capped", () => {
  const p = (...parts: (string | number[])[]) =>
    Buffer.concat(parts.map((x) => (typeof x === "string" ? Buffer.from(x, "latin1") : Buffer.from(x))));

  it("a string or bytes length beyond the input is an error, not an allocation", () => {
    const cases: [Buffer, string][] = [
      [p([0x80, 0x02, 0x58, 0xf0, 0xff, 0xff, 0xff], "abc."), "4294967280"], // BINUNICODE
      [p([0x80, 0x02, 0x42, 0xf0, 0xff, 0xff, 0xff], "abc."), "4294967280"], // BINBYTES
      [p([0x80, 0x04, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40], "abc."), "4611686018427387904"], // BINBYTES8 2^62
      [p([0x80, 0x04, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x80], "abc."), "9223372036854775808"], // BINUNICODE8 2^63
    ];
    for (const [data, len] of cases) {
      assert.throws(
        () => unpickle(data, { source: "x.pkl" }),
        (e: Error) =>
          e instanceof PickleEOFError && e.message.startsWith("x.pkl: ") && e.message.includes(len),
      );
    }
  });

  it("memo indices beyond what the pickle could use, and deep MARK nesting, are refused", () => {
    throwsMessage(
      () => unpickle(p([0x80, 0x02, 0x4b, 0x01, 0x72, 0xff, 0xff, 0xff, 0xf0], "."), { source: "m.pkl" }),
      /^m\.pkl: memo index 4043309055 is larger than a pickle of 10 bytes can use \(pickle byte 9\)$/,
    );
    assert.throws(
      () => unpickle(p("p99999999999999999999\n.")),
      /memo index 100000000000000000000 is larger/,
    );
    throwsMessage(
      () => unpickle(p("(".repeat(20_000), "."), { source: "deep.pkl" }),
      /^deep\.pkl: pickle nests deeper than 10000 levels \(MARK\)/,
    );
    // Python's own pickles stay fine: memo indices in order, a few hundred levels of nesting.
    let v = unpickle(p("(".repeat(500), "K\x07", "t".repeat(500), "."));
    let depth = 0;
    for (; Array.isArray(v); depth++) v = v[0];
    assert.deepEqual([depth, v], [500, 7]);
  });

  it("a pickle that only builds empty dicts is refused once it would outgrow its allocation budget", () => {
    const spam = p("}".repeat(200_000), ".");
    throwsMessage(
      () => unpickle(spam, { source: "spam.pkl", maxAllocation: 2 ** 20 }),
      /^spam\.pkl: unpickling would take more than 1 MiB of memory \(a pickle of 200001 bytes; corrupt or hostile file\?\)/,
    );
    assert.ok(unpickle(spam, { source: "spam.pkl" }) instanceof Map, "within the default budget it loads");
  });

  it("the default budget bounds a .pth whose 4 MB data.pkl would make 4 million dicts", () => {
    const file = join(dir, "dicts.pth");
    const pkl = Buffer.alloc(4 * 2 ** 20, "}");
    pkl[pkl.length - 1] = 0x2e;
    writeZip(file, [
      {
        name: "archive/data.pkl",
        data: deflateRawSync(pkl),
        method: 8,
        uncompressedSize: pkl.length,
        crc: crc32(pkl),
      },
    ]);
    const r = runChild(`${LOAD} loadCheckpoint(argv[0]);`, [file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.message,
      new RegExp(`^${file} \\(archive/data\\.pkl\\): unpickling would take more than 320 MiB of memory`),
    );
    assert.ok(r.peakMb < 600, `peak RSS ${r.peakMb.toFixed(0)} MB`);
  });

  it("huge integers: LONG4 is read in linear time, text literals over Python's 4300 digits are refused", () => {
    const n = 400_000;
    const long4 = Buffer.concat([p([0x80, 0x02, 0x8b]), Buffer.alloc(4), Buffer.alloc(n, 0x11), p(".")]);
    long4.writeInt32LE(n, 3);
    const t0 = performance.now();
    const v = unpickle(long4);
    assert.equal(typeof v, "bigint");
    assert.equal((v as bigint) % 256n, 0x11n);
    assert.ok(performance.now() - t0 < 2000, `${(performance.now() - t0).toFixed(0)} ms`);
    assert.throws(() => unpickle(p("L", "9".repeat(5000), "L\n.")), /integer literal of 5000 digits/);
    assert.equal(unpickle(p("L", "9".repeat(40), "L\n.")), 10n ** 40n - 1n);
  });

  it("legacy checkpoint: a length past the end of the file is an error at once, not a reason to read more", () => {
    const file = join(dir, "legacy-liar.pt");
    // magic number, protocol version, sys info, then an object pickle with a 3 GB string length.
    const magic = p([
      0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ]);
    const version = p([0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
    const sys = p([0x80, 0x02, 0x7d, 0x2e]);
    const obj = p([0x80, 0x02, 0x58, 0x00, 0x00, 0x00, 0xc0]);
    writeFileSync(file, Buffer.concat([magic, version, sys, obj, Buffer.alloc(3 * 2 ** 20)]));
    throwsMessage(
      () => readTorchCheckpoint(file),
      new RegExp(
        `^${file}: a length of 3221225472 bytes runs past the end of the data \\(\\d+ bytes left; corrupt file\\?\\)`,
      ),
    );
  });
});

describe("safetensors: the header is checked before it is used", () => {
  const data = Buffer.alloc(64);
  const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
    dtype: "F32",
    shape,
    data_offsets: [begin, end],
  });

  it("a header length of 2^63 (or past the end) is named as such, not as 'not a PyTorch checkpoint'", () => {
    for (const [name, len] of [
      ["huge.safetensors", 2n ** 63n],
      ["long.safetensors", 100_000n],
    ] as const) {
      const file = join(dir, name);
      writeSafetensorsRaw(file, { w: f32(0, 8) }, data, len);
      const size = readFileSync(file).length;
      const want = `${file}: safetensors header length ${len} exceeds the file size ${size}`;
      assert.throws(() => loadCheckpoint(file), { message: want });
      assert.throws(() => readCheckpointRecords(file), { message: want });
    }
  });

  it("malformed entries are refused naming the file and the key", () => {
    const cases: [string, unknown, RegExp][] = [
      ["negative", { w: f32(-8, 0, [2]) }, /tensor "w" has data_offsets \[-8,0\], not \[begin, end\]/],
      ["fraction", { w: f32(0.5, 8.5, [2]) }, /tensor "w" has data_offsets \[0\.5,8\.5\], not/],
      [
        "strings",
        { w: { dtype: "F32", shape: [2], data_offsets: ["0", "8"] } },
        /tensor "w" has data_offsets/,
      ],
      ["reversed", { w: f32(8, 0, [2]) }, /tensor "w" has data_offsets \[8,0\]/],
      [
        "overlap",
        { a: f32(0, 16), b: f32(8, 24) },
        /tensor "b" \(data bytes 8–24\) overlaps tensor "a" \(0–16\)/,
      ],
      ["outside", { w: f32(32, 96) }, /tensor "w" ends at byte \d+ but the file has \d+ bytes/],
      ["count", { w: f32(0, 8, [3]) }, /tensor "w" spans 8 bytes but shape \[3\] × F32 needs 12/],
      ["dtype", { w: { ...f32(0, 8), dtype: "F8_E4M3" } }, /tensor "w" has unsupported dtype F8_E4M3/],
      [
        "proto",
        { w: { ...f32(0, 8), dtype: "constructor" } },
        /tensor "w" has unsupported dtype constructor/,
      ],
      [
        "dtypenum",
        { w: { ...f32(0, 8), dtype: 4 } },
        /tensor "w" has a dtype that is number 4, not a string/,
      ],
      ["nofield", { w: { dtype: "F32", shape: [2] } }, /tensor "w" has no "data_offsets"/],
      ["number", { w: 5 }, /tensor "w" is number 5, not an entry \{dtype, shape, data_offsets\}/],
      ["null", { w: null }, /tensor "w" is null, not an entry/],
      ["shape", { w: { ...f32(0, 8), shape: "2" } }, /tensor "w" has shape "2", not a list of non-negative/],
      ["negshape", { w: { ...f32(0, 8), shape: [-2] } }, /tensor "w" has shape \[-2\], not a list/],
      ["bigshape", { w: { ...f32(0, 8), shape: [2 ** 40, 2 ** 20] } }, /tensor "w" has shape .* too large/],
      ["meta", { __metadata__: { a: 1 }, w: f32(0, 8) }, /"__metadata__" must map strings to strings/],
    ];
    for (const [name, header, want] of cases) {
      const file = join(dir, `${name}.safetensors`);
      writeSafetensorsRaw(file, header, data);
      assert.throws(
        () => loadCheckpoint(file),
        (e: Error) => e.message.startsWith(`${file}: `) && want.test(e.message),
        `${name}: ${(() => {
          try {
            loadCheckpoint(file);
            return "loaded";
          } catch (e) {
            return (e as Error).message;
          }
        })()}`,
      );
    }
  });

  it("a header that is JSON but not an object is refused by the reader", () => {
    const file = join(dir, "array.safetensors");
    writeSafetensorsRaw(file, [1, 2], data);
    throwsMessage(
      () => readSafetensorsIndex(file),
      new RegExp(`^${file}: safetensors header is not a JSON object \\(an array\\)$`),
    );
  });

  it("offsets are relative to the data block: a well-formed file reads its own bytes", () => {
    const file = join(dir, "good.safetensors");
    const bytes = Buffer.alloc(16);
    bytes.writeFloatLE(1.5, 8);
    bytes.writeFloatLE(-2, 12);
    writeSafetensorsRaw(file, { a: f32(0, 8), b: f32(8, 16), e: f32(16, 16, [0]) }, bytes);
    const ck = loadCheckpoint(file);
    assert.deepEqual(ck.tensors.get("b")!.toArray(), [1.5, -2]);
    assert.deepEqual(ck.tensors.get("a")!.toArray(), [0, 0]);
    for (const t of ck.tensors.values()) t.dispose();
  });
});

describe("a mapped checkpoint truncated in place", () => {
  it("reading its tensors afterwards is a JS error naming the file; the process survives", () => {
    const file = join(dir, "shrinks.safetensors");
    const body = `
      const { truncateSync } = await import("node:fs");
      const { loadCheckpoint, saveSafetensors } = await import(dist("torch/io/load.js"));
      const { ones, tidy } = await import(dist("torch/tensor.js"));
      saveSafetensors(argv[0], new Map([["a", ones([256, 256])], ["b", ones([1024, 1024])]]));
      const ck = loadCheckpoint(argv[0]);     // mapped now
      truncateSync(argv[0], 4096);            // cut while open
      try {
        tidy(() => ck.tensors.get("b").sum().item());
        return "read";
      } catch (e) {
        console.log("ERROR " + e.message);
      }
      // The process goes on, and every tensor whose bytes were cut off keeps failing cleanly.
      for (const k of ["a", "b"]) try { ck.tensors.get(k); } catch (e) { console.log("AGAIN " + k); }
      return "survived";`;
    const r = runChild(body, [file]);
    assert.notEqual(r.status, 135, "killed by SIGBUS");
    assert.equal(r.signal, null);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.message, "ok survived");
    assert.match(
      r.stdout,
      new RegExp(
        `^ERROR ${file}: cannot read tensor "b": the file is now 4096 bytes, \\d+ when it was opened: tensor bytes \\[\\d+, \\d+\\) are gone \\(was the file truncated or rewritten while in use\\?\\)$`,
        "m",
      ),
    );
    assert.match(r.stdout, /^AGAIN a$/m);
    assert.match(r.stdout, /^AGAIN b$/m);
  });

  it("a file truncated before it is opened is refused by its reader, naming the tensor", () => {
    const file = join(dir, "cut.safetensors");
    writeSafetensorsRaw(file, { a: f32(0, 32) }, Buffer.alloc(16));
    throwsMessage(
      () => loadCheckpoint(file),
      new RegExp(
        `^${file}: tensor "a" ends at byte \\d+ but the file has \\d+ bytes \\(truncated file\\?\\)$`,
      ),
    );
  });
});

function f32(begin: number, end: number) {
  return { dtype: "F32", shape: [(end - begin) / 4], data_offsets: [begin, end] };
}
