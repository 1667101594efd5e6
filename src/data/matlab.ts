// A reader for MATLAB level-5 MAT-files, enough for numeric matrices (the PASCAL-Context 459 LabelMaps):
// compressed (miCOMPRESSED) and plain miMATRIX elements of real numeric classes, returned row-major.
import { inflateSync } from "node:zlib";

export interface MatArray {
  /** MATLAB class: "double", "single", "int8" … "uint32". */
  className: string;
  /** MATLAB dimensions (rows, cols, …). */
  dims: number[];
  /** Elements in row-major (C) order, as float64 numbers. */
  data: Float64Array;
}

const CLASS_NAMES: Record<number, string> = {
  6: "double",
  7: "single",
  8: "int8",
  9: "uint8",
  10: "int16",
  11: "uint16",
  12: "int32",
  13: "uint32",
};
// Data element types → (bytes per element, reader).
const ELEMENT: Record<number, [number, (b: Buffer, o: number) => number]> = {
  1: [1, (b, o) => b.readInt8(o)],
  2: [1, (b, o) => b.readUInt8(o)],
  3: [2, (b, o) => b.readInt16LE(o)],
  4: [2, (b, o) => b.readUInt16LE(o)],
  5: [4, (b, o) => b.readInt32LE(o)],
  6: [4, (b, o) => b.readUInt32LE(o)],
  7: [4, (b, o) => b.readFloatLE(o)],
  9: [8, (b, o) => b.readDoubleLE(o)],
};
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;

interface Element {
  type: number;
  data: Buffer;
  next: number;
}

/** One data element at `o` (small elements pack type and size into one word and occupy 8 bytes). */
function element(buf: Buffer, o: number, what: string): Element {
  if (o + 8 > buf.length) throw new Error(`${what}: truncated data element at byte ${o}`);
  const w = buf.readUInt32LE(o);
  if (w >>> 16 !== 0) {
    const size = w >>> 16;
    return { type: w & 0xffff, data: buf.subarray(o + 4, o + 4 + size), next: o + 8 };
  }
  const size = buf.readUInt32LE(o + 4);
  if (o + 8 + size > buf.length)
    throw new Error(`${what}: data element of ${size} bytes at byte ${o} runs past the end`);
  const padded = w === MI_COMPRESSED ? size : Math.ceil(size / 8) * 8;
  return { type: w, data: buf.subarray(o + 8, o + 8 + size), next: o + 8 + padded };
}

function numbers(e: Element, what: string): Float64Array {
  const spec = ELEMENT[e.type];
  if (!spec) throw new Error(`${what}: unsupported numeric data type ${e.type}`);
  const [size, read] = spec;
  const n = e.data.length / size;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = read(e.data, i * size);
  return out;
}

function matrix(body: Buffer, what: string): { name: string; array: MatArray } | null {
  const flags = element(body, 0, what);
  const cls = flags.data.readUInt32LE(0) & 0xff;
  const complex = (flags.data.readUInt32LE(0) >> 11) & 1;
  const dimsEl = element(body, flags.next, what);
  const dims = Array.from(numbers(dimsEl, what));
  const nameEl = element(body, dimsEl.next, what);
  const name = nameEl.data.toString("latin1");
  const className = CLASS_NAMES[cls];
  if (!className || complex) return null; // structs, cells, chars, complex: not needed here
  const colMajor = numbers(element(body, nameEl.next, what), `${what}: ${name}`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (colMajor.length !== count)
    throw new Error(`${what}: ${name} holds ${colMajor.length} values for dims ${dims.join("×")}`);
  // MATLAB stores column-major: element (i0, i1, …) at i0 + d0·(i1 + d1·…). Reorder to row-major.
  const data = new Float64Array(count);
  const strides = dims.map((_, k) => dims.slice(0, k).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(dims.length).fill(0);
  for (let r = 0; r < count; r++) {
    let src = 0;
    for (let k = 0; k < dims.length; k++) src += idx[k]! * strides[k]!;
    data[r] = colMajor[src]!;
    for (let k = dims.length - 1; k >= 0; k--) {
      if (++idx[k]! < dims[k]!) break;
      idx[k] = 0;
    }
  }
  return { name, array: { className, dims, data } };
}

/** Reads the numeric matrices of a level-5 MAT-file (little-endian). Errors name `what` (the file). */
export function readMatFile(buf: Buffer, what = "MAT-file"): Map<string, MatArray> {
  if (buf.length < 128 || !buf.subarray(0, 6).toString("latin1").startsWith("MATLAB")) {
    throw new Error(`${what}: not a MATLAB 5.0 MAT-file`);
  }
  if (buf.toString("latin1", 126, 128) !== "IM")
    throw new Error(`${what}: big-endian MAT-files are not supported`);
  const out = new Map<string, MatArray>();
  let o = 128;
  while (o + 8 <= buf.length) {
    const e = element(buf, o, what);
    o = e.next;
    let body: Element = e;
    if (e.type === MI_COMPRESSED) {
      let raw: Buffer;
      try {
        raw = inflateSync(e.data);
      } catch (err) {
        throw new Error(`${what}: corrupt compressed element (${(err as Error).message})`);
      }
      body = element(raw, 0, what);
    }
    if (body.type !== MI_MATRIX) continue;
    const m = matrix(body.data, what);
    if (m) out.set(m.name, m.array);
  }
  return out;
}
