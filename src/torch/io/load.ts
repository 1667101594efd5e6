// Turns file records into tensors (memory-mapped, lazily per tensor) and reads any supported checkpoint
// format into a state dict: safetensors, torch.save zip/legacy `.pth`/`.bin`, TorchScript `.pt`.
import { closeSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { writeAtomicWithSync } from "../../util/fs.js";
import { type DType, dtypeCode } from "../dtype.js";
import { native as N } from "../native.js";
import { Tensor } from "../tensor.js";
import { readTorchCheckpoint } from "./pth.js";
import type { TensorRecord } from "./records.js";
import { buildSafetensorsHeader, readSafetensorsIndex } from "./safetensors-format.js";

/** A mapped file: the addon's handle and the file's size when it was mapped. */
interface Mapping {
  handle: unknown;
  size: number;
}

const mappings = new Map<string, Mapping>();

function mapping(file: string): Mapping {
  // Keyed by identity and modification, so a file replaced on disk is mapped afresh.
  const st = statSync(file);
  const key = `${file}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  let m = mappings.get(key);
  if (!m) {
    for (const k of mappings.keys()) if (k.startsWith(`${file}\0`)) mappings.delete(k); // tensors keep their own
    m = { handle: N.mapFile(file), size: st.size };
    mappings.set(key, m);
  }
  return m;
}

/** A tensor viewing the record's bytes in its file (copy-on-write; the file is never modified). */
export function tensorFromRecord(rec: TensorRecord): Tensor {
  return fromMapping(rec, mapping(rec.file).handle);
}

function fromMapping(rec: TensorRecord, handle: unknown): Tensor {
  const dtype: DType = rec.dtype === "uint16" ? "int16" : rec.dtype;
  if (rec.dtype === "uint16") {
    // libtorch 1.13 has no uint16: widen to int32 so label maps keep their values (65535 stays 65535).
    const raw = new Tensor(
      N.fromMapped(handle, rec.byteOffset, dtypeCode(dtype), rec.shape, rec.strides ?? null),
    );
    const wide = raw.to("int32");
    raw.dispose();
    const fixed = wide.add(wide.lt(0).to("int32").mul(65536));
    wide.dispose();
    return fixed;
  }
  return new Tensor(N.fromMapped(handle, rec.byteOffset, dtypeCode(dtype), rec.shape, rec.strides ?? null));
}

/** Forgets cached file mappings (tensors already created keep theirs alive). */
export function releaseMappings(): void {
  mappings.clear();
}

/**
 * The tensors of an opened checkpoint. The file is mapped when it is opened, and each tensor is made from
 * that mapping on first use (`get`, or when the map is iterated), then kept. Making a tensor checks that
 * the file still holds its bytes (see native/src/io.cpp: a mapped file that shrank would otherwise kill
 * the process with SIGBUS when the tensor is read), so a file truncated or rewritten after it was opened
 * is a JS error naming the file and the tensor, raised right before the tensor would be read.
 */
class CheckpointTensors extends Map<string, Tensor> {
  private readonly pending = new Map<string, TensorRecord>();

  constructor(
    private readonly file: string,
    records: Map<string, TensorRecord>,
    private readonly handle: unknown,
  ) {
    super();
    for (const [k, r] of records) {
      super.set(k, undefined as unknown as Tensor); // keeps the keys, their order and `size`
      this.pending.set(k, r);
    }
  }

  override get(key: string): Tensor | undefined {
    const rec = this.pending.get(key);
    if (rec === undefined) return super.get(key);
    let t: Tensor;
    try {
      t = fromMapping(rec, this.handle).keep();
    } catch (e) {
      const msg = (e as Error).message;
      const shrunk = /^fromMapped: '.*?' (is now .*)$/s.exec(msg);
      throw new Error(`${this.file}: cannot read tensor "${key}": ${shrunk ? `the file ${shrunk[1]}` : msg}`);
    }
    this.pending.delete(key);
    super.set(key, t);
    return t;
  }
  override set(key: string, value: Tensor): this {
    this.pending?.delete(key);
    return super.set(key, value);
  }
  override delete(key: string): boolean {
    this.pending.delete(key);
    return super.delete(key);
  }
  override clear(): void {
    this.pending.clear();
    super.clear();
  }
  private all(): void {
    for (const k of [...this.pending.keys()]) this.get(k);
  }
  override values() {
    this.all();
    return super.values();
  }
  override entries() {
    this.all();
    return super.entries();
  }
  override [Symbol.iterator]() {
    this.all();
    return super[Symbol.iterator]();
  }
  override forEach(
    fn: (value: Tensor, key: string, map: Map<string, Tensor>) => void,
    thisArg?: unknown,
  ): void {
    this.all();
    super.forEach(fn, thisArg);
  }
  /** The tensors made so far (what there is to free). */
  made(): Tensor[] {
    const out: Tensor[] = [];
    for (const [k, t] of super.entries()) if (!this.pending.has(k)) out.push(t);
    return out;
  }
}

export type CheckpointFormat = "safetensors" | "zip" | "legacy" | "torchscript";

export interface LoadedCheckpoint {
  file: string;
  format: CheckpointFormat;
  /** Tensors by key (lazily mapped). */
  tensors: Map<string, Tensor>;
  /** Records by key (dtype, shape, position) without mapping anything. */
  records: Map<string, TensorRecord>;
  /** Non-tensor content: safetensors metadata, or a `.pth`'s other top-level entries (iteration, …). */
  extra: Record<string, unknown>;
}

function sniff(file: string): "safetensors" | "torch" {
  // safetensors begins with a little-endian header length and then the JSON header's "{"; anything else is
  // left to the PyTorch reader (zip archives, legacy pickles), which reports what it finds.
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(9);
    const n = readSync(fd, b, 0, 9, 0);
    // A ZIP starts "PK\x03\x04" + version, flags and method (byte 8 is 0 or 8), a legacy pickle with
    // PROTO 2 and LONG1 of the magic number (byte 8 is 0x20): only safetensors has "{" there. The header
    // length itself is checked by the safetensors reader, which names it when it is wrong.
    if (n === 9 && b[8] === 0x7b && b.readUInt32LE(0) !== 0x04034b50) return "safetensors";
    return "torch";
  } finally {
    closeSync(fd);
  }
}

/** Reads only the records (names, dtypes, shapes) of a checkpoint file of any supported format. */
export function readCheckpointRecords(file: string): {
  format: CheckpointFormat;
  records: Map<string, TensorRecord>;
  extra: Record<string, unknown>;
} {
  if (sniff(file) === "safetensors") {
    const idx = readSafetensorsIndex(file);
    return { format: "safetensors", records: idx.records, extra: idx.metadata };
  }
  const r = readTorchCheckpoint(file);
  return { format: r.format, records: r.records, extra: r.extra };
}

/**
 * Loads a checkpoint of any supported format. The file is mapped now and every tensor's bytes are checked
 * to lie within it; tensors are made from the mapping on first use and cost no copy until read.
 */
export function loadCheckpoint(file: string): LoadedCheckpoint {
  const { format, records, extra } = readCheckpointRecords(file);
  const m = mapping(file);
  for (const [k, r] of records) {
    if (r.file !== file || r.byteOffset < 0 || r.byteOffset + r.byteLength > m.size) {
      throw new Error(
        `${file}: tensor "${k}" (bytes ${r.byteOffset}–${r.byteOffset + r.byteLength}) lies outside the file (${m.size} bytes; truncated or changed while opening?)`,
      );
    }
  }
  const tensors = new CheckpointTensors(file, records, m.handle);
  return { file, format, tensors, records, extra };
}

/** Runs `fn` on a checkpoint's tensors; those made are freed afterwards, whether `fn` returns or throws. */
export function withCheckpoint<T>(file: string, fn: (ckpt: LoadedCheckpoint) => T): T {
  const ckpt = loadCheckpoint(file);
  try {
    return fn(ckpt);
  } finally {
    for (const t of (ckpt.tensors as CheckpointTensors).made()) t.dispose();
  }
}

/**
 * Writes tensors to a safetensors file atomically (a temporary file, then rename), so a crash never leaves a
 * half-written file under the final name.
 */
export function saveSafetensors(
  file: string,
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const entries = [...tensors].map(([name, t]) => {
    const dtype = t.dtype;
    return { name, dtype: dtype as Exclude<DType, never>, shape: t.shape, t };
  });
  const { header } = buildSafetensorsHeader(entries, metadata);
  writeAtomicWithSync(file, (tmp) => {
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, header);
      for (const e of entries) writeSync(fd, Buffer.from(N.toBuffer(e.t.handle)));
    } finally {
      closeSync(fd);
    }
  });
}
