// One exported graph end to end: trace the forward at two sizes of its dynamic dimension, unify the traces,
// convert, write the file, then run it in onnxruntime-node on the traced inputs and on fresh ones (other
// sizes) and compare with libtorch. Above the tolerance the export fails (the caller removes the file).
import { performance } from "node:perf_hooks";
import { dispose, emptyCache, noGrad, type Tensor } from "../torch/tensor.js";
import type { WeightType } from "./builder.js";
import { convertGraph, isSupportedOp } from "./convert.js";
import { type SharedData, writeOnnx } from "./onnx-file.js";
import { trace } from "./trace.js";
import { type UnifiedGraph, unifyTraces } from "./unify.js";
import { type Comparison, OnnxChecker } from "./verify.js";

/** Inputs of the forward at one size of the dynamic dimension. */
export interface GraphCase {
  size: number;
  inputs: Record<string, Tensor>;
  /** Extra libtorch references for the output (e.g. the float32 model's, for float16 weights). */
  reference?: Tensor;
}

export interface GraphExportOptions {
  /** Graph name inside the file. */
  name: string;
  /** The forward: named inputs → one named output. */
  forward: (inputs: Record<string, Tensor>) => Tensor;
  output: string;
  /** Parameters and buffers by module path (initializer names). */
  params: readonly [string, Tensor][];
  /** The dynamic dimension: graph input, dimension, symbolic name. */
  symbol: UnifiedGraph["symbol"];
  /** Two cases at different sizes to trace. */
  traced: [GraphCase, GraphCase];
  /** Fresh inputs to check the written graph on. */
  checks: GraphCase[];
  weightType: WeightType;
  path: string;
  /** Largest accepted |onnxruntime − libtorch| (default 1e-4). */
  tolerance?: number;
  producerVersion: string;
  externalAbove?: number;
  /** Weights go to this data file, shared with other graphs (see SharedData). */
  shared?: SharedData;
  threads?: number;
  log?: (line: string) => void;
}

export interface GraphExportResult {
  files: string[];
  bytes: number;
  weightBytes: number;
  /** Worst error over every check and its size. */
  maxAbsError: number;
  /** Per check: size, error against libtorch and (when given) against the extra reference. */
  checks: { size: number; traced: boolean; maxAbsError: number; maxAbs: number; vsReference?: Comparison }[];
  nodes: number;
  /** The output's dimensions (the dynamic one by its symbolic name). */
  outputShape: (number | string)[];
  seconds: { trace: number; convert: number; write: number; verify: number };
}

function traceCase(o: GraphExportOptions, c: GraphCase) {
  return noGrad(() =>
    trace(() => ({ [o.output]: o.forward(c.inputs) }), {
      inputs: c.inputs,
      params: o.params,
      supported: isSupportedOp,
    }),
  );
}

/** Exports one graph to `o.path` and checks it; throws (naming the worst error) above the tolerance. */
export async function exportGraph(o: GraphExportOptions): Promise<GraphExportResult> {
  const t0 = performance.now();
  const a = traceCase(o, o.traced[0]);
  let b: ReturnType<typeof traceCase>;
  try {
    b = traceCase(o, o.traced[1]);
  } catch (e) {
    dispose(a.results);
    throw e;
  }
  const t1 = performance.now();
  const unified = unifyTraces(a.trace, b.trace, o.traced[0].size, o.traced[1].size, o.symbol);
  const graph = convertGraph(unified, o.weightType);
  const t2 = performance.now();
  o.log?.(`${o.name}: ${a.trace.ops.length} engine ops → ${graph.nodes.length} ONNX nodes`);
  const written = writeOnnx(o.path, graph, {
    name: o.name,
    producerVersion: o.producerVersion,
    externalAbove: o.externalAbove,
    shared: o.shared,
  });
  const t3 = performance.now();
  const checks: GraphExportResult["checks"] = [];
  // libtorch keeps freed blocks for reuse (up to half the memory) and onnxruntime grows its own arena: give
  // libtorch's back before each onnxruntime run so the two never hold their peaks at once.
  emptyCache();
  const checker = await OnnxChecker.open(o.path, o.threads);
  try {
    const traced = [a.results[o.output]!, b.results[o.output]!];
    for (const [i, c] of o.traced.entries()) {
      const r = await checker.compare(c.inputs, o.output, traced[i]!);
      checks.push({ size: c.size, traced: true, ...r, ...(await vsReference(checker, o, c)) });
    }
    for (const c of o.checks) {
      const want = noGrad(() => o.forward(c.inputs));
      emptyCache();
      try {
        const r = await checker.compare(c.inputs, o.output, want);
        checks.push({ size: c.size, traced: false, ...r, ...(await vsReference(checker, o, c)) });
      } finally {
        want.dispose();
      }
    }
  } finally {
    await checker.close();
    dispose([a.results, b.results]);
  }
  const t4 = performance.now();
  const maxAbsError = Math.max(...checks.map((c) => c.maxAbsError));
  for (const c of checks)
    o.log?.(
      `${o.name}: ${o.symbol.name} = ${c.size}${c.traced ? " (traced)" : " (random)"}: max |onnxruntime − libtorch| = ${c.maxAbsError.toExponential(2)} (output scale ${c.maxAbs.toPrecision(3)})` +
        (c.vsReference ? `, vs float32 weights ${c.vsReference.maxAbsError.toExponential(2)}` : ""),
    );
  const tolerance = o.tolerance ?? 1e-4;
  if (!(maxAbsError <= tolerance))
    throw new Error(
      `export: ${o.name}: onnxruntime differs from libtorch by ${maxAbsError.toExponential(3)} > tolerance ${tolerance} (nothing written; --tolerance overrides)`,
    );
  const s = (x: number) => Math.round(x) / 1000;
  return {
    ...written,
    maxAbsError,
    checks,
    nodes: graph.nodes.length,
    outputShape: [...graph.outputs[0]!.dims],
    seconds: { trace: s(t1 - t0), convert: s(t2 - t1), write: s(t3 - t2), verify: s(t4 - t3) },
  };
}

async function vsReference(checker: OnnxChecker, o: GraphExportOptions, c: GraphCase) {
  if (!c.reference) return {};
  return { vsReference: await checker.compare(c.inputs, o.output, c.reference) };
}
