// Element types and devices. Codes are at::ScalarType values, which is what the addon takes.

export type DType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};
const NAMES: Record<number, DType> = Object.fromEntries(
  Object.entries(CODES).map(([k, v]) => [v, k as DType]),
);

export function dtypeCode(d: DType): number {
  const c = CODES[d];
  if (c === undefined) throw new TypeError(`unknown dtype '${d}' (one of ${Object.keys(CODES).join(", ")})`);
  return c;
}

export function dtypeName(code: number): DType {
  const n = NAMES[code];
  if (n === undefined) throw new TypeError(`unsupported tensor element type (at::ScalarType ${code})`);
  return n;
}

export const ITEM_SIZE: Record<DType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function isFloating(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16" || d === "bfloat16";
}

/** "cpu", "cuda" or "cuda:N". */
export type Device = string;

/** The typed array that holds a dtype's elements on the JavaScript side (half types as raw 16-bit patterns). */
export type TypedArrayFor<D extends DType> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "int64"
      ? BigInt64Array
      : D extends "int32"
        ? Int32Array
        : D extends "int16"
          ? Int16Array
          : D extends "int8"
            ? Int8Array
            : D extends "float16" | "bfloat16"
              ? Uint16Array
              : Uint8Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint16Array
  | Uint8Array;

export function typedArrayFromBuffer(d: DType, buf: ArrayBuffer): AnyTypedArray {
  switch (d) {
    case "float32":
      return new Float32Array(buf);
    case "float64":
      return new Float64Array(buf);
    case "int64":
      return new BigInt64Array(buf);
    case "int32":
      return new Int32Array(buf);
    case "int16":
      return new Int16Array(buf);
    case "int8":
      return new Int8Array(buf);
    case "float16":
    case "bfloat16":
      return new Uint16Array(buf);
    default:
      return new Uint8Array(buf);
  }
}

/** The dtype a typed array maps to by default. */
export function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Uint16Array)
    throw new TypeError("a Uint16Array is ambiguous: pass dtype 'float16' or 'bfloat16'");
  return "uint8";
}
