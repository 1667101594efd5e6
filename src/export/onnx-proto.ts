// A dependency-free protobuf encoder for the part of onnx.proto that an exported graph needs: ModelProto,
// GraphProto, NodeProto, AttributeProto, TensorProto (raw_data or external data), ValueInfoProto. Field
// numbers are onnx.proto's. Messages are built as trees of byte chunks so that weight data (hundreds of MB)
// is never copied into one buffer: `chunks()` yields the serialised model piece by piece for a file writer.

/** ONNX TensorProto.DataType codes used here. */
export const ONNX_DTYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
} as const;
export type OnnxDType = keyof typeof ONNX_DTYPE;

/** A serialised message: its chunks in order and their total length. */
export interface Encoded {
  parts: Uint8Array[];
  length: number;
}

const encoder = new TextEncoder();

function varint(v: number | bigint): Uint8Array {
  // int64 fields: negative values are ten-byte two's complement varints.
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}

/** Builds one message field by field. */
class Writer {
  readonly parts: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  private tag(field: number, wire: number): void {
    this.push(varint((field << 3) | wire));
  }
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.push(varint(v));
    return this;
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.push(varint(b.length));
    if (b.length) this.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, encoder.encode(s));
  }
  message(field: number, m: Encoded): this {
    this.tag(field, 2);
    this.push(varint(m.length));
    for (const p of m.parts) this.push(p);
    return this;
  }
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const body = vs.map(varint);
    const n = body.reduce((s, b) => s + b.length, 0);
    this.tag(field, 2);
    this.push(varint(n));
    for (const b of body) this.push(b);
    return this;
  }
  done(): Encoded {
    return { parts: this.parts, length: this.length };
  }
}

/** A node attribute value: ints, floats, strings and lists of ints or floats (typed explicitly). */
export type AttrValue =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { t: TensorSpec };

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attrs?: Record<string, AttrValue>;
}

/** An initializer: its bytes inline, or a location in an external data file. */
export interface TensorSpec {
  name: string;
  dtype: OnnxDType;
  dims: readonly number[];
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

/** A graph input or output; a string dimension is symbolic (e.g. "classes"). */
export interface ValueSpec {
  name: string;
  dtype: OnnxDType;
  dims: readonly (number | string)[];
}

export function encodeTensor(t: TensorSpec): Encoded {
  const w = new Writer();
  if (t.dims.length) w.packedInts(1, t.dims);
  w.int(2, ONNX_DTYPE[t.dtype]).string(8, t.name);
  if (t.external) {
    const entry = (k: string, v: string) => new Writer().string(1, k).string(2, v).done();
    w.message(13, entry("location", t.external.location));
    w.message(13, entry("offset", String(t.external.offset)));
    w.message(13, entry("length", String(t.external.length)));
    w.int(14, 1); // data_location EXTERNAL
  } else {
    w.bytes(9, t.raw ?? new Uint8Array(0));
  }
  return w.done();
}

function encodeAttr(name: string, v: AttrValue): Encoded {
  const w = new Writer().string(1, name);
  if ("i" in v) w.int(3, v.i).int(20, 2);
  else if ("f" in v) w.float(2, v.f).int(20, 1);
  else if ("s" in v) w.string(4, v.s).int(20, 3);
  else if ("t" in v) w.message(5, encodeTensor(v.t)).int(20, 4);
  else if ("ints" in v) w.packedInts(8, v.ints).int(20, 7);
  else {
    // repeated float, packed (wire type 2, little-endian float32s)
    const b = new Uint8Array(4 * v.floats.length);
    const dv = new DataView(b.buffer);
    for (const [i, f] of v.floats.entries()) dv.setFloat32(4 * i, f, true);
    w.bytes(7, b).int(20, 6);
  }
  return w.done();
}

function encodeNode(n: NodeSpec): Encoded {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, encodeAttr(k, v));
  return w.done();
}

function encodeValueInfo(v: ValueSpec): Encoded {
  const shape = new Writer();
  for (const d of v.dims) {
    const dim = new Writer();
    if (typeof d === "number") dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim.done());
  }
  const tensorType = new Writer().int(1, ONNX_DTYPE[v.dtype]).message(2, shape.done()).done();
  const type = new Writer().message(1, tensorType).done();
  return new Writer().string(1, v.name).message(2, type).done();
}

export interface ModelSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  opset: number;
  producerVersion: string;
  docString?: string;
}

/** The serialised ModelProto (IR version 8, default domain at `opset`). */
export function encodeModel(m: ModelSpec): Encoded {
  const g = new Writer();
  for (const n of m.nodes) g.message(1, encodeNode(n));
  g.string(2, m.name);
  for (const t of m.initializers) g.message(5, encodeTensor(t));
  if (m.docString) g.string(10, m.docString);
  for (const v of m.inputs) g.message(11, encodeValueInfo(v));
  for (const v of m.outputs) g.message(12, encodeValueInfo(v));
  const opset = new Writer().string(1, "").int(2, m.opset).done();
  return new Writer()
    .int(1, 8)
    .string(2, "dedos")
    .string(3, m.producerVersion)
    .message(7, g.done())
    .message(8, opset)
    .done();
}

/** The whole message in one buffer (small models, tests). */
export function concatEncoded(e: Encoded): Uint8Array {
  const out = new Uint8Array(e.length);
  let o = 0;
  for (const p of e.parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
