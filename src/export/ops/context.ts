// What a converter sees of one recorded op: its tensor arguments as ONNX names, its other arguments (fixed,
// or affine in the dynamic size), the traced shapes and types, and a way to add nodes.
import type { DType } from "../../torch/dtype.js";
import { type GraphBuilder, onnxCode, onnxType } from "../builder.js";
import type { AttrValue, OnnxDType } from "../onnx-proto.js";
import { type GraphOp, type GraphValue, isLin, type Num } from "../unify.js";

export class ConvertContext {
  constructor(
    readonly b: GraphBuilder,
    readonly op: GraphOp,
  ) {}

  private fail(msg: string): never {
    throw new Error(`export: op "${this.op.op}" (#${this.op.index}): ${msg}`);
  }

  private tensorId(i: number): number | null {
    const a = this.op.args[i];
    if (a?.kind !== "t") this.fail(`argument ${i} is not a tensor`);
    return a.id;
  }

  /** Whether argument i is a tensor (an operand may be a tensor or a scalar). */
  isTensor(i: number): boolean {
    return this.op.args[i]?.kind === "t" && (this.op.args[i] as { id: number | null }).id !== null;
  }

  /** ONNX name of tensor argument i. */
  x(i: number): string {
    const id = this.tensorId(i);
    if (id === null) this.fail(`argument ${i} is null`);
    return this.b.name(id);
  }

  /** ONNX name of an optional tensor argument ("" when null). */
  xo(i: number): string {
    const a = this.op.args[i];
    if (a?.kind !== "t" || a.id === null) return "";
    return this.b.name(a.id);
  }

  /** ONNX names of a tensor-list argument. */
  xs(i: number): string[] {
    const a = this.op.args[i];
    if (a?.kind !== "ts") this.fail(`argument ${i} is not a tensor list`);
    return a.ids.map((id) => (id === null ? "" : this.b.name(id)));
  }

  value(i: number): GraphValue {
    const id = this.tensorId(i);
    if (id === null) this.fail(`argument ${i} is null`);
    return this.b.g.values[id]!;
  }

  /** Traced values of a tensor-list argument (null entries kept). */
  values(i: number): (GraphValue | null)[] {
    const a = this.op.args[i];
    if (a?.kind !== "ts") this.fail(`argument ${i} is not a tensor list`);
    return a.ids.map((id) => (id === null ? null : this.b.g.values[id]!));
  }

  rank(i: number): number {
    return this.value(i).shape.length;
  }
  dtype(i: number): DType {
    return this.value(i).dtype;
  }
  /** The shape of tensor argument i, which must not follow the dynamic size. */
  shape(i: number): number[] {
    const v = this.value(i);
    if (v.dims.some(isLin))
      this.fail(`needs the fixed shape of argument ${i}, which follows the dynamic size`);
    return v.shape;
  }
  /** Size of dimension d of argument i, which must be fixed. */
  fixedDim(i: number, d: number): number {
    const n = this.dim(i, d);
    if (isLin(n))
      this.fail(`needs the fixed size of dimension ${d} of argument ${i}, which follows the dynamic size`);
    return n;
  }
  /** Size of dimension d of argument i (fixed or affine). */
  dim(i: number, d: number): Num {
    const v = this.value(i);
    return v.dims[d < 0 ? v.dims.length + d : d]!;
  }

  /** A non-tensor argument that must be the same at every size. */
  v<T = unknown>(i: number): T {
    const a = this.op.args[i];
    if (a?.kind !== "v") this.fail(`argument ${i} is not a plain value`);
    if (JSON.stringify(a.value)?.includes('"lin":true'))
      this.fail(`argument ${i} depends on the dynamic size, and ONNX needs it fixed here`);
    return a.value as T;
  }

  /** A numeric (list) argument that may depend on the dynamic size. */
  num(i: number): Num | Num[] {
    const a = this.op.args[i];
    if (a?.kind !== "v") this.fail(`argument ${i} is not a plain value`);
    return a.value as Num | Num[];
  }

  /** An integer-list argument as an int64 tensor (a single number is a one-element list). */
  ints(i: number): string {
    const n = this.num(i);
    return this.b.ints(Array.isArray(n) ? n : [n]);
  }

  outValue(k = 0): GraphValue {
    return this.b.g.values[this.op.outs[k]!]!;
  }
  outDtype(k = 0): DType {
    return this.outValue(k).dtype;
  }
  outRank(k = 0): number {
    return this.outValue(k).shape.length;
  }

  /** The ONNX name of output k (the graph output's own name when it is one). */
  out(k = 0): string {
    const id = this.op.outs[k]!;
    const graphOut = Object.entries(this.b.g.outputs).find(([, v]) => v === id)?.[0];
    const name = graphOut ?? `v${id}`;
    this.b.setName(id, name);
    return name;
  }

  /** Adds a node; `outputs` defaults to one fresh name. Returns the first output's name. */
  node(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, outputs?: string[]): string {
    return this.b.node(op, inputs, attrs, outputs);
  }

  /** Output k is the tensor `name` itself (an Identity only when output k is a graph output). */
  alias(name: string, k = 0): void {
    const id = this.op.outs[k]!;
    if (Object.values(this.b.g.outputs).includes(id)) this.node("Identity", [name], undefined, [this.out(k)]);
    else this.b.setName(id, name);
  }

  /** Operand i (a tensor, or a scalar made a constant of `dtype`). */
  operand(i: number, dtype: DType): string {
    if (this.isTensor(i)) return this.castTo(this.x(i), this.dtype(i), dtype);
    const n = this.num(i);
    if (Array.isArray(n)) this.fail(`argument ${i} is a list, not a scalar`);
    if (typeof n === "boolean") return this.b.scalarOf(onnxType(dtype), n);
    return this.b.floatScalar(n as Num, onnxType(dtype));
  }

  castTo(name: string, from: DType, to: DType): string {
    return from === to ? name : this.node("Cast", [name], { to: { i: onnxCode(onnxType(to)) } });
  }

  /** A Cast of `name` to `to`, written to output k. */
  castOut(name: string, to: DType, k = 0): void {
    this.node("Cast", [name], { to: { i: onnxCode(onnxType(to)) } }, [this.out(k)]);
  }

  onnxDtype(i: number): OnnxDType {
    return onnxType(this.dtype(i));
  }
}

/** A converter: adds the nodes of one recorded op. */
export type Converter = (c: ConvertContext) => void;

/** Normalises a possibly negative dimension index against a rank. */
export function axis(d: number, rank: number): number {
  return d < 0 ? d + rank : d;
}
