// A tensor stored in a file: where its bytes are and how to view them. Readers of every checkpoint
// format (safetensors, torch.save zip, TorchScript) produce records; the tensor layer maps them lazily.
import { closeSync, openSync, readSync } from "node:fs";
import { type AnyTypedArray, type DType, ITEM_SIZE, typedArrayFromBuffer } from "../dtype.js";

export type { AnyTypedArray };

/** Element types a stored tensor can have: the engine's dtypes plus uint16 (16-bit label maps). */
export type StoredDType = DType | "uint16";

export const STORED_ITEM_SIZE: Record<StoredDType, number> = { ...ITEM_SIZE, uint16: 2 };

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
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  return rec.dtype === "uint16" ? new Uint16Array(ab) : typedArrayFromBuffer(rec.dtype, ab);
}
