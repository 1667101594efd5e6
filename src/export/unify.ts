// Two traces of one function at two sizes S₁ ≠ S₂ of a dynamic dimension (the class count T of the view
// graph, the prompt count N of the text graph) become one graph: the op sequences must be identical, and
// every argument that differs must be an affine function a·S + b of that size (solved from the two points).
// Values computed from constants alone whose bytes agree in both traces are folded into initializers.
import { Dep, type Trace, type TracedArg, type TracedValue } from "./trace.js";

/** An integer or float argument a·S + b of the dynamic size S. */
export interface Lin {
  lin: true;
  a: number;
  b: number;
}
export type Num = number | Lin;

export function isLin(x: unknown): x is Lin {
  return typeof x === "object" && x !== null && (x as Lin).lin === true;
}

/** A value of the unified graph (its trace-A facts), with the dimensions that follow S marked. */
export interface GraphValue extends TracedValue {
  /** Per dimension: the size as a·S + b (a plain number where it is fixed). */
  dims: Num[];
  /** A constant the graph stores as an initializer (its producing op is dropped). */
  folded: boolean;
}

export interface GraphOp {
  op: string;
  args: TracedArg[];
  outs: number[];
  site?: string;
  index: number;
}

export interface UnifiedGraph {
  ops: GraphOp[];
  values: GraphValue[];
  inputs: Record<string, number>;
  outputs: Record<string, number>;
  /** The dynamic size: graph input `input`, dimension `dim`, symbolic name `name`. */
  symbol: { input: string; dim: number; name: string };
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Merges a value seen as `x` at S = s1 and `y` at S = s2 (numbers that differ become a·S + b). */
export function unifyValue(x: unknown, y: unknown, s1: number, s2: number, where: () => string): unknown {
  if (x === y) return x;
  if (ArrayBuffer.isView(x) && ArrayBuffer.isView(y)) {
    const bx = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const by = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    if (sameBytes(bx, by)) return x;
  }
  if (typeof x === "number" && typeof y === "number") {
    const a = (y - x) / (s2 - s1);
    const b = x - a * s1;
    if (Number.isInteger(x) && Number.isInteger(y) && !(Number.isInteger(a) && Number.isInteger(b)))
      throw new Error(`export: ${where()} is ${x} at size ${s1} and ${y} at ${s2}: not an integer a·S + b`);
    return { lin: true, a, b } satisfies Lin;
  }
  if (Array.isArray(x) && Array.isArray(y) && x.length === y.length)
    return x.map((v, i) => unifyValue(v, y[i], s1, s2, where));
  throw new Error(
    `export: ${where()} differs between the traces at sizes ${s1} and ${s2} (${JSON.stringify(x)} vs ${JSON.stringify(y)})`,
  );
}

function sameIds(a: TracedArg, b: TracedArg): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "t") return a.id === (b as typeof a).id;
  if (a.kind === "ts") return JSON.stringify(a.ids) === JSON.stringify((b as typeof a).ids);
  return true;
}

/**
 * One graph from traces `A` (size s1) and `B` (size s2) of the same function. Throws when the op sequences
 * differ (the function branches on the size) or an argument is not affine in it.
 */
export function unifyTraces(
  A: Trace,
  B: Trace,
  s1: number,
  s2: number,
  symbol: UnifiedGraph["symbol"],
): UnifiedGraph {
  if (A.ops.length !== B.ops.length || A.values.length !== B.values.length)
    throw new Error(
      `export: the forward runs ${A.ops.length} ops at size ${s1} but ${B.ops.length} at ${s2}: it branches on the ${symbol.name} count, so one graph cannot cover both`,
    );
  const ops: GraphOp[] = A.ops.map((a, i) => {
    const b = B.ops[i]!;
    const where = (k: number) => () => `argument ${k} of op #${i} "${a.op}"`;
    if (a.op !== b.op || a.args.length !== b.args.length || a.outs.join() !== b.outs.join())
      throw new Error(
        `export: op #${i} is "${a.op}" at size ${s1} but "${b.op}" at ${s2}: the forward branches on the ${symbol.name} count`,
      );
    const args = a.args.map((x, k): TracedArg => {
      const y = b.args[k]!;
      if (!sameIds(x, y)) throw new Error(`export: ${where(k)()} reads different tensors in the two traces`);
      if (x.kind !== "v") return x;
      return { kind: "v", value: unifyValue(x.value, (y as typeof x).value, s1, s2, where(k)) };
    });
    return { op: a.op, args, outs: a.outs, index: i, ...(a.site ? { site: a.site } : {}) };
  });
  const values: GraphValue[] = A.values.map((v, i) => {
    const w = B.values[i]!;
    const dims = unifyValue(v.shape, w.shape, s1, s2, () => `the shape of value #${i}`) as Num[];
    const folded = v.dep === Dep.Const && v.source !== "input" && sameBytes(v.data, w.data);
    return { ...v, dims, folded };
  });
  return { ops, values, inputs: A.inputs, outputs: A.outputs, symbol };
}

/** The ops whose results reach an output (constants folded), in order. */
export function liveOps(g: UnifiedGraph): GraphOp[] {
  const need = new Set(Object.values(g.outputs));
  const live: GraphOp[] = [];
  for (let i = g.ops.length - 1; i >= 0; i--) {
    const op = g.ops[i]!;
    if (!op.outs.some((o) => need.has(o) && !g.values[o]!.folded)) continue;
    live.push(op);
    for (const a of op.args) {
      if (a.kind === "t" && a.id !== null) need.add(a.id);
      if (a.kind === "ts") for (const id of a.ids) if (id !== null) need.add(id);
    }
  }
  return live.reverse();
}
