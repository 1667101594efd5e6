// Converters of elementwise math, reductions, matrix products and tensor creation. Binary ops compute in the
// traced result's element type (inputs are cast to it when torch promoted them), as libtorch does.
import type { DType } from "../../torch/dtype.js";
import { onnxType } from "../builder.js";
import type { Num } from "../unify.js";
import { axis, type ConvertContext, type Converter } from "./context.js";

const DIRECT_UNARY: Record<string, string> = {
  neg: "Neg",
  exp: "Exp",
  log: "Log",
  sqrt: "Sqrt",
  abs: "Abs",
  sign: "Sign",
  sin: "Sin",
  cos: "Cos",
  tanh: "Tanh",
  sigmoid: "Sigmoid",
  erf: "Erf",
  floor: "Floor",
  ceil: "Ceil",
  round: "Round",
  reciprocal: "Reciprocal",
  logicalNot: "Not",
  isnan: "IsNaN",
  relu: "Relu",
};

const ARITHMETIC: Record<string, string> = {
  add: "Add",
  sub: "Sub",
  mul: "Mul",
  div: "Div",
  pow: "Pow",
  maximum: "Max",
  minimum: "Min",
};

const COMPARISON: Record<string, string> = {
  eq: "Equal",
  lt: "Less",
  le: "LessOrEqual",
  gt: "Greater",
  ge: "GreaterOrEqual",
  logicalAnd: "And",
  logicalOr: "Or",
};

function isFloat(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16";
}

/** The element type two comparison operands meet in. */
function compareType(c: ConvertContext): DType {
  const a = c.dtype(0);
  if (c.isTensor(1)) {
    const b = c.dtype(1);
    return isFloat(b) && !isFloat(a) ? b : a;
  }
  const n = c.num(1);
  return typeof n === "number" && !Number.isInteger(n) && !isFloat(a) ? "float32" : a;
}

/** Reduction axes as a list (null: every axis). */
function axesOf(c: ConvertContext, i: number): number[] | null {
  const d = c.v<number | number[] | null>(i);
  if (d === null || d === undefined) return null;
  const r = c.rank(0);
  return (Array.isArray(d) ? d : [d]).map((x) => axis(x, r));
}

/** A reduction whose axes are an attribute (opset 17: all but ReduceSum). */
function reduceAttr(
  c: ConvertContext,
  op: string,
  x: string,
  axes: number[] | null,
  keep: boolean,
  out?: string,
) {
  const attrs = { keepdims: { i: keep ? 1 : 0 }, ...(axes ? { axes: { ints: axes } } : {}) };
  return c.node(op, [x], attrs, out ? [out] : undefined);
}

function reduction(op: string, dimsArg: number, keepArg: number): Converter {
  return (c) => {
    reduceAttr(c, op, c.x(0), axesOf(c, dimsArg), c.v<boolean>(keepArg), c.out());
  };
}

function varStd(sqrt: boolean): Converter {
  return (c) => {
    const axes = axesOf(c, 1) ?? [...Array(c.rank(0)).keys()];
    const n = axes.reduce((p, a) => p * c.fixedDim(0, a), 1);
    const m = reduceAttr(c, "ReduceMean", c.x(0), axes, true);
    const d = c.node("Sub", [c.x(0), m]);
    const s = c.node("ReduceSum", [c.node("Mul", [d, d]), c.b.int64s(axes)], {
      keepdims: { i: c.v<boolean>(3) ? 1 : 0 },
    });
    const v = c.node("Div", [s, c.b.scalarOf("float32", n - c.v<number>(2))]);
    if (sqrt) c.node("Sqrt", [v], undefined, [c.out()]);
    else c.alias(v);
  };
}

/** Creation op whose size or value follows the dynamic size: ConstantOfShape / Range. */
function constantOfShape(c: ConvertContext, shape: string, value: number | boolean): void {
  const t = onnxType(c.outDtype());
  const raw =
    t === "float32"
      ? new Uint8Array(Float32Array.of(Number(value)).buffer)
      : t === "int64"
        ? new Uint8Array(BigInt64Array.of(BigInt(Number(value))).buffer)
        : t === "bool"
          ? Uint8Array.of(value ? 1 : 0)
          : null;
  if (!raw) throw new Error(`export: no ${t} ConstantOfShape`);
  c.node("ConstantOfShape", [shape], { value: { t: { name: "value", dtype: t, dims: [1], raw } } }, [
    c.out(),
  ]);
}

export const MATH_OPS: Record<string, Converter> = {
  ...Object.fromEntries(
    Object.entries(DIRECT_UNARY).map(([k, op]) => [
      k,
      (c: ConvertContext) => void c.node(op, [c.x(0)], undefined, [c.out()]),
    ]),
  ),
  ...Object.fromEntries(
    Object.entries(ARITHMETIC).map(([k, op]) => [
      k,
      (c: ConvertContext) => {
        const t = c.outDtype();
        c.node(op, [c.operand(0, t), c.operand(1, t)], undefined, [c.out()]);
      },
    ]),
  ),
  ...Object.fromEntries(
    Object.entries(COMPARISON).map(([k, op]) => [
      k,
      (c: ConvertContext) => {
        const t = compareType(c);
        c.node(op, [c.operand(0, t), c.operand(1, t)], undefined, [c.out()]);
      },
    ]),
  ),
  ne: (c) => {
    const t = compareType(c);
    c.node("Not", [c.node("Equal", [c.operand(0, t), c.operand(1, t)])], undefined, [c.out()]);
  },
  rsub: (c) => void c.node("Sub", [c.operand(1, c.outDtype()), c.x(0)], undefined, [c.out()]),
  rdiv: (c) => void c.node("Div", [c.operand(1, c.outDtype()), c.x(0)], undefined, [c.out()]),
  rpow: (c) => void c.node("Pow", [c.operand(1, c.outDtype()), c.x(0)], undefined, [c.out()]),
  log2: (c) =>
    void c.node("Div", [c.node("Log", [c.x(0)]), c.b.scalarOf("float32", Math.LN2)], undefined, [c.out()]),
  log1p: (c) =>
    void c.node("Log", [c.node("Add", [c.x(0), c.b.scalarOf(onnxType(c.outDtype()), 1)])], undefined, [
      c.out(),
    ]),
  rsqrt: (c) => void c.node("Reciprocal", [c.node("Sqrt", [c.x(0)])], undefined, [c.out()]),
  square: (c) => void c.node("Mul", [c.x(0), c.x(0)], undefined, [c.out()]),
  silu: (c) => void c.node("Mul", [c.x(0), c.node("Sigmoid", [c.x(0)])], undefined, [c.out()]),
  quickGelu: (c) => {
    const s = c.node("Sigmoid", [c.node("Mul", [c.x(0), c.b.scalarOf("float32", 1.702)])]);
    c.node("Mul", [c.x(0), s], undefined, [c.out()]);
  },
  clamp: (c) => {
    const t = onnxType(c.dtype(0));
    const lo = c.v<number | null>(1);
    const hi = c.v<number | null>(2);
    const inputs = [c.x(0), lo === null ? "" : c.b.scalarOf(t, lo), hi === null ? "" : c.b.scalarOf(t, hi)];
    c.node("Clip", inputs, undefined, [c.out()]);
  },
  lerp: (c) => {
    const d = c.node("Sub", [c.x(1), c.x(0)]);
    const w = c.node("Mul", [d, c.b.scalarOf(onnxType(c.dtype(0)), c.v<number>(2))]);
    c.node("Add", [c.x(0), w], undefined, [c.out()]);
  },
  sum: (c) => {
    const axes = axesOf(c, 1);
    const x = c.castTo(c.x(0), c.dtype(0), c.outDtype());
    const inputs = axes ? [x, c.b.int64s(axes)] : [x];
    c.node("ReduceSum", inputs, { keepdims: { i: c.v<boolean>(2) ? 1 : 0 } }, [c.out()]);
  },
  mean: reduction("ReduceMean", 1, 2),
  amax: reduction("ReduceMax", 1, 2),
  amin: reduction("ReduceMin", 1, 2),
  logsumexp: reduction("ReduceLogSumExp", 1, 2),
  prod: reduction("ReduceProd", 1, 2),
  maxAll: (c) => void reduceAttr(c, "ReduceMax", c.x(0), null, false, c.out()),
  minAll: (c) => void reduceAttr(c, "ReduceMin", c.x(0), null, false, c.out()),
  var: varStd(false),
  std: varStd(true),
  norm: (c) => {
    const p = c.v<number>(1);
    const op = p === 2 ? "ReduceL2" : p === 1 ? "ReduceL1" : null;
    if (!op) throw new Error(`export: op "norm" with p = ${p} is not supported (p = 1 or 2)`);
    reduceAttr(c, op, c.x(0), axesOf(c, 2), c.v<boolean>(3), c.out());
  },
  maxDim: (c) => argReduce(c, "ReduceMax", "ArgMax"),
  minDim: (c) => argReduce(c, "ReduceMin", "ArgMin"),
  argmax: (c) => argOnly(c, "ArgMax"),
  argmin: (c) => argOnly(c, "ArgMin"),
  topk: (c) => {
    const ax = axis(c.v<number>(2), c.rank(0));
    const k = c.b.ints([c.num(1) as Num]);
    const attrs = { axis: { i: ax }, largest: { i: c.v<boolean>(3) ? 1 : 0 }, sorted: { i: 1 } };
    c.node("TopK", [c.x(0), k], attrs, [c.out(0), c.out(1)]);
  },
  cumsum: (c) =>
    void c.node("CumSum", [c.x(0), c.b.int64s([axis(c.v<number>(1), c.rank(0))], [])], undefined, [c.out()]),
  matmul: (c) => void c.node("MatMul", [c.x(0), c.x(1)], undefined, [c.out()]),
  mm: (c) => void c.node("MatMul", [c.x(0), c.x(1)], undefined, [c.out()]),
  bmm: (c) => void c.node("MatMul", [c.x(0), c.x(1)], undefined, [c.out()]),
  baddbmm: (c) => {
    const t = onnxType(c.outDtype());
    const ab = c.node("Mul", [c.node("MatMul", [c.x(1), c.x(2)]), c.b.scalarOf(t, c.v<number>(4))]);
    const i = c.node("Mul", [c.x(0), c.b.scalarOf(t, c.v<number>(3))]);
    c.node("Add", [i, ab], undefined, [c.out()]);
  },
  einsum: (c) =>
    void c.node("Einsum", c.xs(1), { equation: { s: c.v<string>(0).replace(/\s/g, "") } }, [c.out()]),
  kron: (c) => {
    // 2-d: out[i·p + k, j·q + l] = a[i, j]·b[k, l]
    const [m, n] = c.shape(0);
    const [p, q] = c.shape(1);
    const a = c.node("Reshape", [c.x(0), c.b.int64s([m!, 1, n!, 1])]);
    const b = c.node("Reshape", [c.x(1), c.b.int64s([1, p!, 1, q!])]);
    c.node("Reshape", [c.node("Mul", [a, b]), c.b.int64s([m! * p!, n! * q!])], undefined, [c.out()]);
  },
  outer: (c) => {
    const a = c.node("Unsqueeze", [c.x(0), c.b.int64s([1])]);
    const b = c.node("Unsqueeze", [c.x(1), c.b.int64s([0])]);
    c.node("Mul", [a, b], undefined, [c.out()]);
  },
  zeros: (c) => constantOfShape(c, c.ints(0), 0),
  ones: (c) => constantOfShape(c, c.ints(0), 1),
  full: (c) => constantOfShape(c, c.ints(0), c.v<number>(1)),
  zerosLike: (c) => constantOfShape(c, c.node("Shape", [c.x(0)]), 0),
  onesLike: (c) => constantOfShape(c, c.node("Shape", [c.x(0)]), 1),
  fullLike: (c) => constantOfShape(c, c.node("Shape", [c.x(0)]), c.v<number>(1)),
  arange: (c) => {
    const t = onnxType(c.outDtype());
    const s = (i: number) => c.b.floatScalar(c.num(i) as Num, t);
    c.node("Range", [s(0), s(1), s(2)], undefined, [c.out()]);
  },
};

function argReduce(c: ConvertContext, reduce: string, arg: string): void {
  const ax = axis(c.v<number>(1), c.rank(0));
  const keep = c.v<boolean>(2) ? 1 : 0;
  reduceAttr(c, reduce, c.x(0), [ax], keep === 1, c.out(0));
  c.node(arg, [c.x(0)], { axis: { i: ax }, keepdims: { i: keep } }, [c.out(1)]);
}

function argOnly(c: ConvertContext, arg: string): void {
  const d = c.v<number | null>(1);
  const keep = c.v<boolean>(2) ? 1 : 0;
  if (d === null) {
    const flat = c.node("Reshape", [c.x(0), c.b.int64s([-1])]);
    c.node(arg, [flat], { axis: { i: 0 }, keepdims: { i: 0 } }, [c.out()]);
    return;
  }
  c.node(arg, [c.x(0)], { axis: { i: axis(d, c.rank(0)) }, keepdims: { i: keep } }, [c.out()]);
}
