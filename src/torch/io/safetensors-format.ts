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

/** Parses a safetensors file's header; tensor bytes are not read. Errors name the file and the tensor. */
export function readSafetensorsIndex(file: string): SafetensorsIndex {
  const size = statSync(file).size;
  if (size < 8) throw new Error(`${file}: not a safetensors file (only ${size} bytes)`);
  const n = Number(readBytes(file, 0, 8).readBigUInt64LE(0));
  if (n <= 0 || 8 + n > size)
    throw new Error(`${file}: not a safetensors file (header length ${n}, file size ${size})`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(readBytes(file, 8, n).toString("utf8"));
  } catch (e) {
    throw new Error(`${file}: safetensors header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const records = new Map<string, TensorRecord>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const dtype = DTYPE_FROM_ST[e.dtype];
    if (!dtype) throw new Error(`${file}: tensor "${name}" has unsupported dtype ${e.dtype}`);
    const [begin, end] = e.data_offsets;
    const want = numelOf(e.shape) * STORED_ITEM_SIZE[dtype];
    if (end - begin !== want) {
      throw new Error(
        `${file}: tensor "${name}" spans ${end - begin} bytes but shape ${JSON.stringify(e.shape)} × ${e.dtype} needs ${want}`,
      );
    }
    if (dataStart + end > size) {
      throw new Error(
        `${file}: tensor "${name}" ends at byte ${dataStart + end} but the file has ${size} bytes (truncated file?)`,
      );
    }
    records.set(name, { dtype, shape: e.shape, file, byteOffset: dataStart + begin, byteLength: want });
  }
  return { file, records, metadata };
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
