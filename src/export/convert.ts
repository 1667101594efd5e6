// Recorded engine ops → ONNX nodes (opset 17, so that onnxruntime-web's wasm backend runs the graphs too).
// The converter table is the list of supported ops: an op without an entry fails the export with its name.
import { GraphBuilder, onnxType, type ParamInit, type WeightType } from "./builder.js";
import type { NodeSpec, TensorSpec, ValueSpec } from "./onnx-proto.js";
import { ConvertContext, type Converter } from "./ops/context.js";
import { MATH_OPS } from "./ops/math.js";
import { NN_OPS } from "./ops/nn.js";
import { SHAPE_OPS } from "./ops/shape.js";
import { isLin, liveOps, type UnifiedGraph } from "./unify.js";

export const OPSET = 17;

export const CONVERTERS: Record<string, Converter> = { ...SHAPE_OPS, ...MATH_OPS, ...NN_OPS };

/** Whether an engine op can be exported. */
export function isSupportedOp(op: string): boolean {
  return Object.hasOwn(CONVERTERS, op);
}

/** A graph ready to be encoded: nodes, small constants inline, parameters read when the file is written. */
export interface OnnxGraph {
  nodes: NodeSpec[];
  constants: TensorSpec[];
  params: ParamInit[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
}

function valueSpec(g: UnifiedGraph, name: string, id: number): ValueSpec {
  const v = g.values[id]!;
  return { name, dtype: onnxType(v.dtype), dims: v.dims.map((d) => (isLin(d) ? g.symbol.name : d)) };
}

/** Converts the live ops of a unified graph. */
export function convertGraph(g: UnifiedGraph, weightType: WeightType): OnnxGraph {
  const b = new GraphBuilder(g, weightType);
  for (const op of liveOps(g)) {
    const conv = CONVERTERS[op.op];
    if (!conv)
      throw new Error(`export: unsupported op "${op.op}"${op.site ? ` (called from ${op.site})` : ""}`);
    conv(new ConvertContext(b, op));
  }
  for (const [name, id] of Object.entries(g.outputs)) {
    const produced = b.name(id);
    if (produced !== name) b.node("Identity", [produced], undefined, [name]);
  }
  return {
    nodes: b.nodes,
    constants: b.constants,
    params: b.params,
    inputs: Object.entries(g.inputs).map(([n, id]) => valueSpec(g, n, id)),
    outputs: Object.entries(g.outputs).map(([n, id]) => valueSpec(g, n, id)),
  };
}
