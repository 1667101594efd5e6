// The safetensors container: 8-byte little-endian header length, a JSON header, then raw little-endian bytes.
// This file only parses and writes the container; turning records into tensors is the tensor layer's job.
import { statSync } from "node:fs";
import { numelOf, readBytes, STORED_ITEM_SIZE, type StoredDType, type TensorRecord } from "./records.js";

const DTYPE_FROM_ST: Record<string, StoredDType> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  U16: "uint16",
  BOOL: "bool",
};
export const DTYPE_TO_ST: Record<StoredDType, string> = Object.fromEntries(
  Object.entries(DTYPE_FROM_ST).map(([k, v]) => [v, k]),
) as Record<StoredDType, string>;

export interface SafetensorsIndex {
  file: string;
  records: Map<string, TensorRecord>;
  metadata: Record<string, string>;
}

/** The safetensors format's own limit on the JSON header (the reference implementation refuses more). */
export const MAX_SAFETENSORS_HEADER = 100_000_000;

/**
 * Parses a safetensors file's header; tensor bytes are not read. Everything the header says is checked
 * before it is used, and every error names the file and (for an entry) the tensor: the header length
 * against the file, each entry's fields and types, its dtype, its byte count against shape × item size,
 * and its offsets, which are relative to the data block after the header, must lie inside it and may not
 * overlap another tensor's.
 */
export function readSafetensorsIndex(file: string): SafetensorsIndex {
  const size = statSync(file).size;
  if (size < 8) throw new Error(`${file}: not a safetensors file (only ${size} bytes)`);
  const n64 = readBytes(file, 0, 8).readBigUInt64LE(0);
  if (n64 === 0n) throw new Error(`${file}: not a safetensors file (header length 0)`);
  if (n64 > BigInt(size - 8))
    throw new Error(`${file}: safetensors header length ${n64} exceeds the file size ${size}`);
  const n = Number(n64);
  if (n > MAX_SAFETENSORS_HEADER) {
    throw new Error(
      `${file}: safetensors header length ${n} exceeds the format's limit of ${MAX_SAFETENSORS_HEADER} bytes`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(readBytes(file, 8, n).toString("utf8"));
  } catch (e) {
    throw new Error(`${file}: safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header))
    throw new Error(`${file}: safetensors header is not a JSON object (${describeJson(header)})`);
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const records = new Map<string, TensorRecord>();
  let metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = readMetadata(file, v);
      continue;
    }
    const { dtype, shape, begin, end } = readEntry(file, name, v);
    const bytes = numelOf(shape) * STORED_ITEM_SIZE[dtype];
    if (end - begin !== bytes) {
      throw new Error(
        `${file}: tensor "${name}" spans ${end - begin} bytes but shape ${JSON.stringify(shape)} × ${DTYPE_TO_ST[dtype]} needs ${bytes}`,
      );
    }
    if (end > dataSize) {
      throw new Error(
        `${file}: tensor "${name}" ends at byte ${dataStart + end} but the file has ${size} bytes (truncated file?)`,
      );
    }
    spans.push({ name, begin, end });
    records.set(name, { dtype, shape, file, byteOffset: dataStart + begin, byteLength: bytes });
  }
  // Overlaps: after sorting by start, each tensor must begin at or after the end of the one before.
  // (Empty tensors occupy nothing and overlap nothing.)
  const filled = spans.filter((x) => x.end > x.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < filled.length; i++) {
    const a = filled[i - 1]!;
    const b = filled[i]!;
    if (b.begin < a.end) {
      throw new Error(
        `${file}: tensor "${b.name}" (data bytes ${b.begin}–${b.end}) overlaps tensor "${a.name}" (${a.begin}–${a.end})`,
      );
    }
  }
  return { file, records, metadata };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function describeJson(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function readMetadata(file: string, v: unknown): Record<string, string> {
  if (!isPlainObject(v) || Object.values(v).some((x) => typeof x !== "string")) {
    throw new Error(
      `${file}: "__metadata__" must map strings to strings, got ${isPlainObject(v) ? "non-string values" : describeJson(v)}`,
    );
  }
  return v as Record<string, string>;
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** One header entry, checked field by field: `{dtype: string, shape: int[], data_offsets: [int, int]}`. */
function readEntry(
  file: string,
  name: string,
  v: unknown,
): { dtype: StoredDType; shape: number[]; begin: number; end: number } {
  const bad = (what: string): Error => new Error(`${file}: tensor "${name}" ${what}`);
  if (!isPlainObject(v)) throw bad(`is ${describeJson(v)}, not an entry {dtype, shape, data_offsets}`);
  for (const field of ["dtype", "shape", "data_offsets"]) if (!(field in v)) throw bad(`has no "${field}"`);
  const { dtype: st, shape, data_offsets: offsets } = v;
  if (typeof st !== "string") throw bad(`has a dtype that is ${describeJson(st)}, not a string`);
  const dtype = Object.hasOwn(DTYPE_FROM_ST, st) ? DTYPE_FROM_ST[st] : undefined;
  if (!dtype) throw bad(`has unsupported dtype ${st}`);
  if (!Array.isArray(shape) || !shape.every(isIndex))
    throw bad(`has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  if (!Number.isSafeInteger(numelOf(shape) * STORED_ITEM_SIZE[dtype]))
    throw bad(`has shape ${JSON.stringify(shape)}, too large for any file`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
    throw bad(
      `has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with 0 ≤ begin ≤ end integers (relative to the data after the header)`,
    );
  }
  return { dtype, shape, begin: offsets[0], end: offsets[1] };
}

/** Builds a safetensors header for tensors laid out in the given order; returns the header bytes and data offsets. */
export function buildSafetensorsHeader(
  entries: { name: string; dtype: StoredDType; shape: number[] }[],
  metadata?: Record<string, string>,
): { header: Buffer; offsets: number[]; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  const offsets: number[] = [];
  let off = 0;
  for (const e of entries) {
    const bytes = numelOf(e.shape) * STORED_ITEM_SIZE[e.dtype];
    obj[e.name] = { dtype: DTYPE_TO_ST[e.dtype], shape: e.shape, data_offsets: [off, off + bytes] };
    offsets.push(off);
    off += bytes;
  }
  let json = JSON.stringify(obj);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += " ".repeat(pad);
  const body = Buffer.from(json, "utf8");
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, offsets, dataBytes: off };
}
