// Converters of the shape and indexing ops: views become Reshape / Transpose / Slice / Expand, indexing
// becomes Gather / GatherND / GatherElements. Reshape-like ops use the traced output shape (fixed sizes and
// affine ones), so -1 and torch's squeeze rules never reach ONNX.
import { isLin, type Num } from "../unify.js";
import { axis, type ConvertContext, type Converter } from "./context.js";

const INT64_MAX = Number.MAX_SAFE_INTEGER;

/** a + b for fixed or affine sizes. */
export function addNum(a: Num, b: Num): Num {
  if (!isLin(a) && !isLin(b)) return a + b;
  const la = isLin(a) ? a : { lin: true as const, a: 0, b: a };
  const lb = isLin(b) ? b : { lin: true as const, a: 0, b: b };
  return { lin: true, a: la.a + lb.a, b: la.b + lb.b };
}

/** Output 0 = input 0 reshaped to the traced output shape. */
function reshapeToOut(c: ConvertContext): void {
  const dims = c.outValue().dims;
  c.node("Reshape", [c.x(0), c.b.ints(dims)], { allowzero: { i: 1 } }, [c.out()]);
}

function sliceAxis(c: ConvertContext, x: string, ax: number, start: Num, end: Num, step = 1): string {
  return c.node("Slice", [x, c.b.ints([start]), c.b.ints([end]), c.b.int64s([ax]), c.b.int64s([step])]);
}

const alias: Converter = (c) => c.alias(c.x(0));

export const SHAPE_OPS: Record<string, Converter> = {
  view: reshapeToOut,
  reshape: reshapeToOut,
  flatten: reshapeToOut,
  squeeze: (c) => (c.outRank() === c.rank(0) ? c.alias(c.x(0)) : reshapeToOut(c)),
  unsqueeze: (c) => {
    const r = c.rank(0) + 1;
    c.node("Unsqueeze", [c.x(0), c.b.int64s([axis(c.v<number>(1), r)])], undefined, [c.out()]);
  },
  contiguous: alias,
  contiguousChannelsLast: alias, // a memory layout: the same values
  clone: alias,
  detach: alias,
  permute: (c) => {
    const dims = c.v<number | number[]>(1);
    const r = c.rank(0);
    const perm = (Array.isArray(dims) ? dims : [dims]).map((d) => axis(d, r));
    c.node("Transpose", [c.x(0)], { perm: { ints: perm } }, [c.out()]);
  },
  transpose: (c) => {
    const r = c.rank(0);
    const perm = [...Array(r).keys()];
    const [a, b] = [axis(c.v<number>(1), r), axis(c.v<number>(2), r)];
    [perm[a], perm[b]] = [perm[b]!, perm[a]!];
    c.node("Transpose", [c.x(0)], { perm: { ints: perm } }, [c.out()]);
  },
  expand: (c) => {
    const shape = c.num(1) as Num[];
    const dims = shape.map((d) => (d === -1 ? 1 : d)); // Expand broadcasts: 1 keeps the input's size
    c.node("Expand", [c.x(0), c.b.ints(dims)], undefined, [c.out()]);
  },
  repeat: (c) => {
    const reps = c.num(1) as Num[];
    let x = c.x(0);
    const extra = reps.length - c.rank(0);
    if (extra > 0) x = c.node("Unsqueeze", [x, c.b.int64s([...Array(extra).keys()])]);
    c.node("Tile", [x, c.b.ints(reps)], undefined, [c.out()]);
  },
  flip: (c) => {
    const dims = c.v<number | number[]>(1);
    const r = c.rank(0);
    const axes = (Array.isArray(dims) ? dims : [dims]).map((d) => axis(d, r));
    const n = axes.length;
    c.node(
      "Slice",
      [
        c.x(0),
        c.b.int64s(Array(n).fill(-1)),
        c.b.int64s(Array(n).fill(-INT64_MAX)),
        c.b.int64s(axes),
        c.b.int64s(Array(n).fill(-1)),
      ],
      undefined,
      [c.out()],
    );
  },
  roll: (c) => {
    const shifts = c.v<number | number[]>(1);
    const dimsArg = c.v<number | number[]>(2);
    const ss = Array.isArray(shifts) ? shifts : [shifts];
    const ds = Array.isArray(dimsArg) ? dimsArg : [dimsArg];
    const r = c.rank(0);
    let x = c.x(0);
    ss.forEach((s, i) => {
      const d = axis(ds[i]!, r);
      const n = c.fixedDim(0, d);
      const k = ((s % n) + n) % n;
      if (k === 0) return;
      // roll by k: the last k elements first
      const tail = sliceAxis(c, x, d, n - k, n);
      const head = sliceAxis(c, x, d, 0, n - k);
      x = c.node("Concat", [tail, head], { axis: { i: d } });
    });
    c.alias(x);
  },
  slice: (c) => {
    const end = c.num(3) as Num | null;
    const r = c.rank(0);
    const x = sliceAxis(
      c,
      c.x(0),
      axis(c.v<number>(1), r),
      c.num(2) as Num,
      end ?? INT64_MAX,
      c.v<number>(4),
    );
    c.alias(x);
  },
  narrow: (c) => {
    const start = c.num(2) as Num;
    const x = sliceAxis(c, c.x(0), axis(c.v<number>(1), c.rank(0)), start, addNum(start, c.num(3) as Num));
    c.alias(x);
  },
  select: (c) => {
    const idx = c.b.ints([c.num(2) as Num]);
    const scalar = c.node("Squeeze", [idx, c.b.int64s([0])]);
    c.node("Gather", [c.x(0), scalar], { axis: { i: axis(c.v<number>(1), c.rank(0)) } }, [c.out()]);
  },
  indexSelect: (c) => {
    const ax = axis(c.v<number>(1), c.rank(0));
    c.node("Gather", [c.x(0), c.x(2)], { axis: { i: ax } }, [c.out()]);
  },
  index: (c) => indexConverter(c),
  gather: (c) => {
    const ax = axis(c.v<number>(1), c.rank(0));
    c.node("GatherElements", [c.x(0), c.x(2)], { axis: { i: ax } }, [c.out()]);
  },
  scatter: (c) => {
    if (!c.isTensor(3)) throw new Error(`export: op "scatter" with a scalar source is not supported`);
    const ax = axis(c.v<number>(1), c.rank(0));
    c.node("ScatterElements", [c.x(0), c.x(2), c.x(3)], { axis: { i: ax } }, [c.out()]);
  },
  cat: (c) => {
    const vals = c.values(0);
    const r = vals.find((v) => v !== null)!.shape.length;
    c.node("Concat", c.xs(0), { axis: { i: axis(c.v<number>(1), r) } }, [c.out()]);
  },
  stack: (c) => {
    const r = c.outRank();
    const ax = axis(c.v<number>(1), r);
    const parts = c.xs(0).map((x) => c.node("Unsqueeze", [x, c.b.int64s([ax])]));
    c.node("Concat", parts, { axis: { i: ax } }, [c.out()]);
  },
  split: splitConverter,
  chunk: splitConverter,
  to: (c) => {
    const from = c.dtype(0);
    const to = c.outDtype();
    if (from === to) c.alias(c.x(0));
    else c.castOut(c.x(0), to);
  },
  tril: (c) => trilu(c, 0),
  triu: (c) => trilu(c, 1),
  where: (c) => {
    const t = c.outDtype();
    c.node("Where", [c.x(0), c.operand(1, t), c.operand(2, t)], undefined, [c.out()]);
  },
  maskedFill: (c) => {
    const t = c.outDtype();
    c.node("Where", [c.x(1), c.operand(2, t), c.x(0)], undefined, [c.out()]);
  },
};

function trilu(c: ConvertContext, upper: number): void {
  const k = c.b.int64s([c.v<number>(1)], []);
  c.node("Trilu", [c.x(0), k], { upper: { i: upper } }, [c.out()]);
}

/** split / chunk: the pieces' sizes along the axis are the traced outputs' (fixed or affine). */
function splitConverter(c: ConvertContext): void {
  const r = c.rank(0);
  const ax = axis(c.v<number>(c.op.op === "split" ? 2 : 2), r);
  const sizes = c.op.outs.map((_, k) => c.outValue(k).dims[ax]!);
  const outs = c.op.outs.map((_, k) => c.out(k));
  c.node("Split", [c.x(0), c.b.ints(sizes)], { axis: { i: ax } }, outs);
}

/** Advanced indexing: one index tensor on one dimension (Gather), or index tensors on the leading ones (GatherND). */
function indexConverter(c: ConvertContext): void {
  const idx = c.values(1);
  const names = c.xs(1);
  const used = idx.map((v, i) => (v ? i : -1)).filter((i) => i >= 0);
  for (const v of idx) {
    if (v && v.dtype === "bool") throw new Error(`export: op "index" with a boolean mask is not supported`);
  }
  const long = (i: number) =>
    idx[i]!.dtype === "int64" ? names[i]! : c.castTo(names[i]!, idx[i]!.dtype, "int64");
  if (used.length === 1) {
    c.node("Gather", [c.x(0), long(used[0]!)], { axis: { i: used[0]! } }, [c.out()]);
    return;
  }
  if (used.some((d, k) => d !== k))
    throw new Error(`export: op "index" with index tensors on non-leading dimensions is not supported`);
  const stacked = used.map((i) => c.node("Unsqueeze", [long(i), c.b.int64s([-1])]));
  const nd = c.node("Concat", stacked, { axis: { i: -1 } });
  c.node("GatherND", [c.x(0), nd], undefined, [c.out()]);
}
