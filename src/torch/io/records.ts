// A tensor stored in a file: where its bytes are and how to view them. Readers of every checkpoint
// format (safetensors, torch.save zip, TorchScript) produce records; the tensor layer maps them lazily.
import { closeSync, openSync, readSync } from "node:fs";

/** Element types a stored tensor can have (names follow torch: `torch.float32` → "float32"). */
export type StoredDType =
  | "float64"
  | "float32"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "uint16"
  | "bool";

export const STORED_ITEM_SIZE: Record<StoredDType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  uint16: 2,
  bool: 1,
};

/** One tensor inside a file. `byteOffset` is from the start of the file and already includes the storage offset. */
export interface TensorRecord {
  dtype: StoredDType;
  shape: number[];
  /** Element strides; undefined means C-contiguous. */
  strides?: number[];
  file: string;
  byteOffset: number;
  /** Bytes spanned by the tensor's view (for contiguous tensors: numel × item size). */
  byteLength: number;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Reads `length` bytes at `position` of a file into a fresh Buffer (throws a message naming the file). */
export function readBytes(file: string, position: number, length: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, position + got);
      if (n === 0)
        throw new Error(
          `${file}: unexpected end of file at byte ${position + got} (wanted ${length} bytes from ${position})`,
        );
      got += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

export type TypedArrayOf<D extends StoredDType> = D extends "float64"
  ? Float64Array
  : D extends "float32"
    ? Float32Array
    : D extends "int64"
      ? BigInt64Array
      : D extends "int32"
        ? Int32Array
        : D extends "int16"
          ? Int16Array
          : D extends "int8"
            ? Int8Array
            : D extends "uint16" | "float16" | "bfloat16"
              ? Uint16Array
              : Uint8Array;

export type AnyTypedArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint16Array
  | Uint8Array;

/** Reads a contiguous record's bytes into a typed array of its dtype (half types as raw Uint16 bits). */
export function readRecord(rec: TensorRecord): AnyTypedArray {
  const size = STORED_ITEM_SIZE[rec.dtype];
  const n = numelOf(rec.shape);
  if (rec.strides?.some((s, i) => s !== contiguousStrides(rec.shape)[i] && rec.shape[i] !== 1)) {
    throw new Error(
      `${rec.file}: readRecord needs a contiguous tensor (shape ${JSON.stringify(rec.shape)}, strides ${JSON.stringify(rec.strides)})`,
    );
  }
  const buf = readBytes(rec.file, rec.byteOffset, n * size);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  switch (rec.dtype) {
    case "float64":
      return new Float64Array(ab);
    case "float32":
      return new Float32Array(ab);
    case "int64":
      return new BigInt64Array(ab);
    case "int32":
      return new Int32Array(ab);
    case "int16":
      return new Int16Array(ab);
    case "int8":
      return new Int8Array(ab);
    case "float16":
    case "bfloat16":
    case "uint16":
      return new Uint16Array(ab);
    default:
      return new Uint8Array(ab);
  }
}
