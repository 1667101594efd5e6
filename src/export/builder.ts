// The ONNX graph under construction: nodes, initializers (parameters by their module path, folded constants,
// small integer tensors for shapes), value names, and the dynamic size S as a tensor computed once from the
// graph input's shape. Affine arguments a·S + b become Mul/Add nodes on it.
import type { DType } from "../torch/dtype.js";
import type { Tensor } from "../torch/tensor.js";
import { type AttrValue, type NodeSpec, ONNX_DTYPE, type OnnxDType, type TensorSpec } from "./onnx-proto.js";
import { isLin, type Num, type UnifiedGraph } from "./unify.js";

/** How parameter initializers are stored. */
export type WeightType = "float32" | "float16";

/** A parameter initializer whose bytes are read from the model when the file is written. */
export interface ParamInit {
  name: string;
  dtype: OnnxDType;
  dims: number[];
  /** Produces the bytes (float16 conversion happens here). */
  bytes: () => Uint8Array;
}

export function onnxType(d: DType): OnnxDType {
  if (d === "bfloat16" || d === "int16") throw new Error(`export: ${d} tensors have no ONNX mapping here`);
  return d as OnnxDType;
}

export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly constants: TensorSpec[] = [];
  readonly params: ParamInit[] = [];
  private readonly names = new Map<number, string>();
  private readonly cache = new Map<string, string>();
  private counter = 0;
  private symbolName: string | null = null;

  constructor(
    readonly g: UnifiedGraph,
    readonly weightType: WeightType,
  ) {}

  fresh(hint = "t"): string {
    return `${hint}_${this.counter++}`;
  }

  node(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, outputs?: string[]): string {
    const outs = outputs ?? [this.fresh(op.toLowerCase())];
    this.nodes.push({
      op,
      inputs,
      outputs: outs,
      name: `${op}_${this.nodes.length}`,
      ...(attrs ? { attrs } : {}),
    });
    return outs[0]!;
  }

  /** A constant tensor (deduplicated by content). */
  constant(dtype: OnnxDType, dims: readonly number[], raw: Uint8Array, hint = "const"): string {
    const key = `${dtype}|${dims.join(",")}|${raw.length < 256 ? Array.from(raw).join(",") : ""}`;
    if (raw.length < 256) {
      const hit = this.cache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(hint);
    this.constants.push({ name, dtype, dims, raw });
    if (raw.length < 256) this.cache.set(key, name);
    return name;
  }

  int64s(vs: readonly number[], dims: readonly number[] = [vs.length]): string {
    const b = new BigInt64Array(vs.map((v) => BigInt(v)));
    return this.constant("int64", dims, new Uint8Array(b.buffer), "ints");
  }

  scalarOf(dtype: OnnxDType, v: number | boolean): string {
    const n = Number(v);
    const raw =
      dtype === "float32"
        ? new Uint8Array(Float32Array.of(n).buffer)
        : dtype === "float64"
          ? new Uint8Array(Float64Array.of(n).buffer)
          : dtype === "int64"
            ? new Uint8Array(BigInt64Array.of(BigInt(Math.trunc(n))).buffer)
            : dtype === "int32"
              ? new Uint8Array(Int32Array.of(n).buffer)
              : dtype === "bool" || dtype === "uint8"
                ? Uint8Array.of(n ? 1 : 0)
                : null;
    if (!raw) throw new Error(`export: no scalar constant of type ${dtype}`);
    return this.constant(dtype, [], raw, "scalar");
  }

  /** S as an int64 tensor of shape [1], read from the graph input's shape once. */
  symbol(): string {
    if (this.symbolName) return this.symbolName;
    const { input, dim } = this.g.symbol;
    const shape = this.node("Shape", [this.name(this.g.inputs[input]!)]);
    this.symbolName = this.node("Gather", [shape, this.int64s([dim])], { axis: { i: 0 } });
    return this.symbolName;
  }

  /** a·S + b as an int64 tensor of shape [1]. */
  private affine(v: Num): string {
    if (!isLin(v)) return this.int64s([v]);
    const key = `lin|${v.a}|${v.b}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let t = this.symbol();
    if (v.a !== 1) t = this.node("Mul", [t, this.int64s([v.a])]);
    if (v.b !== 0) t = this.node("Add", [t, this.int64s([v.b])]);
    this.cache.set(key, t);
    return t;
  }

  /** An int64 vector of fixed and affine entries. */
  ints(vs: readonly Num[]): string {
    if (vs.every((v) => !isLin(v))) return this.int64s(vs as number[]);
    return this.node(
      "Concat",
      vs.map((v) => this.affine(v)),
      { axis: { i: 0 } },
    );
  }

  /** A 0-d float tensor a·S + b (a scalar operand that follows S), or a constant. */
  floatScalar(v: Num, dtype: OnnxDType): string {
    if (!isLin(v)) return this.scalarOf(dtype, v);
    if (dtype === "int64") return this.node("Squeeze", [this.affine(v), this.int64s([0])]);
    const f = this.node("Cast", [this.affine({ lin: true, a: 1, b: 0 })], { to: { i: onnxCode(dtype) } });
    const s = this.node("Squeeze", [f, this.int64s([0])]);
    const m = v.a === 1 ? s : this.node("Mul", [s, this.scalarOf(dtype, v.a)]);
    return v.b === 0 ? m : this.node("Add", [m, this.scalarOf(dtype, v.b)]);
  }

  /** The ONNX name of a value: declared on first use for inputs, parameters and folded constants. */
  name(id: number): string {
    const known = this.names.get(id);
    if (known) return known;
    const v = this.g.values[id]!;
    let name: string;
    if (v.source === "input") name = v.name!;
    else if (v.source === "param") name = this.param(v.name!, v.tensor!);
    else if (v.folded) name = this.constant(onnxType(v.dtype), v.shape, v.data!, "c");
    else throw new Error(`export: value #${id} is used before an op produced it`);
    this.names.set(id, name);
    return name;
  }

  setName(id: number, name: string): void {
    this.names.set(id, name);
  }

  private param(path: string, t: Tensor): string {
    const dims = t.shape;
    const half = this.weightType === "float16" && t.dtype === "float32";
    const read = (): Uint8Array => {
      if (!half) return new Uint8Array(t.toTypedArray().buffer);
      const h = t.to("float16");
      try {
        return new Uint8Array(h.toTypedArray().buffer);
      } finally {
        h.dispose();
      }
    };
    this.params.push({ name: path, dtype: half ? "float16" : onnxType(t.dtype), dims, bytes: read });
    return half ? this.node("Cast", [path], { to: { i: onnxCode("float32") } }, [`${path}:float`]) : path;
  }
}

export function onnxCode(d: OnnxDType): number {
  return ONNX_DTYPE[d];
}
