// Records a TypeScript forward as a list of engine ops. Every op goes through the mutable `native` object
// (src/torch/native.ts); for the duration of `trace` its slots are wrapped by recording functions that
// still run the real op, so shapes and values are concrete and the traced outputs are libtorch's own.
//
// Tensors that existed before the trace and are read by an op are graph inputs (marked by the caller),
// model parameters / buffers (named by their module path) or other constants (their bytes are read once).
// Values derived only from constants carry their bytes too, so the graph builder can fold them.
import { type DType, dtypeName } from "../torch/dtype.js";
import { loadAddon, native } from "../torch/native.js";
import { NATIVE_OPS } from "../torch/native-api.js";
import type { Tensor } from "../torch/tensor.js";
import { CREATION_OPS, DATA_READS, IN_PLACE, OP_SPECS, type OpSpec, PASS_THROUGH } from "./op-specs.js";

/** What a value depends on: nothing (a constant), the weights, or a graph input. */
export enum Dep {
  Const = 0,
  Param = 1,
  Input = 2,
}

export interface TracedValue {
  id: number;
  source: "input" | "param" | "const" | "op";
  /** Input name or parameter path. */
  name?: string;
  shape: number[];
  dtype: DType;
  dep: Dep;
  /** Constants: the elements, row-major. */
  data?: Uint8Array;
  /** Parameters: the tensor (owned by the model). */
  tensor?: Tensor;
}

export type TracedArg =
  | { kind: "t"; id: number | null }
  | { kind: "ts"; ids: (number | null)[] }
  | { kind: "v"; value: unknown };

export interface TracedOp {
  op: string;
  args: TracedArg[];
  outs: number[];
  /** Where the model called it (recorded for ops that have no converter). */
  site?: string;
}

export interface Trace {
  ops: TracedOp[];
  values: TracedValue[];
  inputs: Record<string, number>;
  outputs: Record<string, number>;
}

export interface TraceOptions {
  /** Named graph inputs (tensors the function reads). */
  inputs: Record<string, Tensor>;
  /** Parameters and buffers by module path (e.g. `model.namedParameters()` + `namedBuffers()`). */
  params: readonly [string, Tensor][];
  /** Whether an op has an ONNX converter (ops without one may only compute constants). */
  supported: (op: string) => boolean;
}

type AnyFn = (...args: unknown[]) => unknown;

/** The first stack frame outside the engine and the exporter: the model line that called the op. */
export function callSite(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const lines = (new Error().stack ?? "").split("\n").slice(1);
  Error.stackTraceLimit = limit;
  const own = /[/\\]src[/\\](torch|export)[/\\]/;
  const frame = lines.find((l) => !own.test(l) && !l.includes("node:")) ?? lines[0] ?? "";
  return frame.trim().replace(/^at /, "");
}

/** Recording state of one trace. */
class Recorder {
  readonly ops: TracedOp[] = [];
  readonly values: TracedValue[] = [];
  private readonly byHandle = new Map<number, number>();
  private readonly inputHandles = new Map<number, string>();
  private readonly paramHandles = new Map<number, [string, Tensor]>();

  constructor(
    private readonly real: Map<string, AnyFn>,
    readonly o: TraceOptions,
  ) {
    for (const [name, t] of Object.entries(o.inputs)) this.inputHandles.set(t.handle, name);
    for (const [name, t] of o.params)
      if (!this.paramHandles.has(t.handle)) this.paramHandles.set(t.handle, [name, t]);
  }

  private call(op: string, ...args: unknown[]): unknown {
    return this.real.get(op)!(...args);
  }

  private newValue(h: number, v: Omit<TracedValue, "id" | "shape" | "dtype">): number {
    const id = this.values.length;
    const shape = this.call("shape", h) as number[];
    const dtype = dtypeName(this.call("dtype", h) as number);
    const value: TracedValue = { ...v, id, shape, dtype };
    if (v.dep === Dep.Const && v.source !== "param")
      value.data = new Uint8Array(this.call("toBuffer", h) as ArrayBuffer);
    this.values.push(value);
    this.byHandle.set(h, id);
    return id;
  }

  /** The value id of a handle, classifying tensors that existed before the trace. */
  valueOf(h: number): number {
    const known = this.byHandle.get(h);
    if (known !== undefined) return known;
    const input = this.inputHandles.get(h);
    if (input !== undefined) return this.newValue(h, { source: "input", name: input, dep: Dep.Input });
    const param = this.paramHandles.get(h);
    if (param) return this.newValue(h, { source: "param", name: param[0], tensor: param[1], dep: Dep.Param });
    return this.newValue(h, { source: "const", dep: Dep.Const });
  }

  /** Reads a constant's bytes again (after an in-place op changed them). */
  refresh(id: number, h: number): void {
    this.values[id]!.data = new Uint8Array(this.call("toBuffer", h) as ArrayBuffer);
  }

  forget(h: number): void {
    this.byHandle.delete(h);
  }

  dep(id: number): Dep {
    return this.values[id]!.dep;
  }

  /** The tensor arguments resolved to value ids; the rest kept as values. */
  resolveArgs(spec: OpSpec, args: unknown[]): TracedArg[] {
    return spec.args.map((kind, i) => {
      const a = args[i];
      if (kind === "v") return { kind: "v", value: a };
      if (kind === "ts") {
        return {
          kind: "ts",
          ids: (a as (number | null)[]).map((h) => (h === null ? null : this.valueOf(h))),
        };
      }
      if (kind.startsWith("o") && !args[Number(kind.slice(1))]) return { kind: "v", value: a };
      return { kind: "t", id: a === null || a === undefined ? null : this.valueOf(a as number) };
    });
  }

  /** Records an op whose real result is `result`. */
  record(op: string, spec: OpSpec, args: TracedArg[], result: unknown, site?: string): void {
    const ins = args.flatMap((a) => (a.kind === "t" ? [a.id] : a.kind === "ts" ? a.ids : []));
    const dep = CREATION_OPS.has(op)
      ? Dep.Const
      : (Math.max(Dep.Const, ...ins.map((id) => (id === null ? Dep.Const : this.dep(id)))) as Dep);
    const handles = spec.result === "t" || spec.result === "t?" ? [result as number] : (result as number[]);
    const outs = handles.map((h) => this.newValue(h, { source: "op", dep }));
    this.ops.push({ op, args, outs, ...(site ? { site } : {}) });
  }
}

function wrapOp(r: Recorder, op: string, real: AnyFn): AnyFn {
  if (PASS_THROUGH.has(op)) return real;
  if (op === "free" || op === "takeBuffer") {
    return (...args) => {
      if (op === "takeBuffer") checkRead(r, op, args);
      r.forget(args[0] as number);
      return real(...args);
    };
  }
  if (DATA_READS.has(op)) {
    return (...args) => {
      checkRead(r, op, args);
      return real(...args);
    };
  }
  const inPlace = IN_PLACE[op];
  if (inPlace) return (...args) => inPlaceOp(r, op, inPlace, real, args);
  const spec = OP_SPECS[op];
  if (!spec) {
    return () => {
      throw new Error(`export: unsupported op "${op}" (called from ${callSite()})`);
    };
  }
  return (...args) => {
    const resolved = r.resolveArgs(spec, args);
    let site: string | undefined;
    if (!r.o.supported(op)) {
      site = callSite();
      const ids = resolved.flatMap((a) => (a.kind === "t" ? [a.id] : a.kind === "ts" ? a.ids : []));
      if (ids.some((id) => id !== null && r.dep(id) !== Dep.Const))
        throw new Error(`export: unsupported op "${op}" (called from ${site})`);
    }
    const result = real(...args);
    if (result === null && spec.result === "t?") return result; // the caller takes another path
    r.record(op, spec, resolved, result, site);
    return result;
  };
}

function checkRead(r: Recorder, op: string, args: unknown[]): void {
  const n = op === "allclose" || op === "equal" ? 2 : 1;
  for (const h of args.slice(0, n)) {
    if (r.dep(r.valueOf(h as number)) === Dep.Input)
      throw new Error(
        `export: the model reads input-dependent tensor data back to JavaScript ("${op}", called from ${callSite()}); a graph cannot follow that`,
      );
  }
}

function inPlaceOp(r: Recorder, op: string, spec: OpSpec, real: AnyFn, args: unknown[]): unknown {
  const resolved = r.resolveArgs(spec, args);
  const ids = resolved.flatMap((a) => (a.kind === "t" ? [a.id] : a.kind === "ts" ? a.ids : []));
  const target = r.values[ids[0]!]!;
  if (target.source !== "op" || ids.some((id) => id !== null && r.dep(id) !== Dep.Const))
    throw new Error(`export: unsupported in-place op "${op}" on a traced tensor (called from ${callSite()})`);
  const result = real(...args);
  r.refresh(target.id, args[0] as number);
  return result;
}

/**
 * Runs `fn` once with every engine op recorded. `fn` returns the named outputs (tensors the caller then
 * owns). The native slots are restored however `fn` ends.
 */
export function trace(
  fn: () => Record<string, Tensor>,
  o: TraceOptions,
): { trace: Trace; results: Record<string, Tensor> } {
  loadAddon();
  const slots = native as unknown as Record<string, AnyFn>;
  const real = new Map<string, AnyFn>(NATIVE_OPS.map((op) => [op, slots[op]!]));
  const r = new Recorder(real, o);
  for (const op of NATIVE_OPS) slots[op] = wrapOp(r, op, real.get(op)!);
  let results: Record<string, Tensor>;
  try {
    results = fn();
  } finally {
    for (const op of NATIVE_OPS) slots[op] = real.get(op)!;
  }
  const inputs: Record<string, number> = {};
  for (const [name, t] of Object.entries(o.inputs)) inputs[name] = r.valueOf(t.handle);
  const outputs: Record<string, number> = {};
  for (const [name, t] of Object.entries(results)) outputs[name] = r.valueOf(t.handle);
  return { trace: { ops: r.ops, values: r.values, inputs, outputs }, results };
}
