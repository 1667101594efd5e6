// Writes a converted graph as an .onnx file. Parameters are read from the model one at a time. Models whose
// weights pass `externalAbove` bytes (protobuf caps a message at 2 GB) keep them in `<file>.data` beside the
// graph, ONNX's external-data convention (location relative to the .onnx file, offset, length).
import { closeSync, openSync, writeSync } from "node:fs";
import { basename } from "node:path";
import type { OnnxGraph } from "./convert.js";
import { OPSET } from "./convert.js";
import { encodeModel, type TensorSpec } from "./onnx-proto.js";

/** Weights above this many bytes go to an external data file (protobuf's limit is 2 GiB). */
export const EXTERNAL_DATA_THRESHOLD = 1.8e9;

export interface WrittenOnnx {
  /** The files written (the graph, then the data file when there is one). */
  files: string[];
  /** Bytes of the graph file and of the weights. */
  bytes: number;
  weightBytes: number;
}

function writeAll(fd: number, parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) {
    let off = 0;
    while (off < p.length) off += writeSync(fd, p, off, p.length - off);
    n += p.length;
  }
  return n;
}

/**
 * A data file several graphs share (view.onnx and view-topk.onnx hold the same weights): each parameter is
 * written once, at the first graph that needs it; later graphs point at the same bytes.
 */
export interface SharedData {
  path: string;
  written: Map<string, { offset: number; length: number }>;
  size: number;
}

export function sharedData(path: string): SharedData {
  return { path, written: new Map(), size: 0 };
}

/** The params' bytes appended to `data` (those not there yet); their external references. */
function writeExternal(graph: OnnxGraph, data: SharedData): TensorSpec[] {
  const location = basename(data.path);
  const fd = openSync(data.path, data.size === 0 ? "w" : "a");
  try {
    return graph.params.map((p) => {
      let at = data.written.get(p.name);
      if (!at) {
        const raw = p.bytes();
        writeAll(fd, [raw]);
        at = { offset: data.size, length: raw.length };
        data.written.set(p.name, at);
        data.size += raw.length;
      }
      return { name: p.name, dtype: p.dtype, dims: p.dims, external: { location, ...at } };
    });
  } finally {
    closeSync(fd);
  }
}

/** Writes `graph` to `path` (and its weights to `path`.data, or to `shared`, when they are external). */
export function writeOnnx(
  path: string,
  graph: OnnxGraph,
  o: {
    name: string;
    producerVersion: string;
    docString?: string;
    externalAbove?: number;
    shared?: SharedData;
  },
): WrittenOnnx {
  const total = graph.params.reduce((s, p) => s + p.dims.reduce((a, d) => a * d, 1) * byteSize(p.dtype), 0);
  const external = o.shared !== undefined || total > (o.externalAbove ?? EXTERNAL_DATA_THRESHOLD);
  const files = [path];
  let inits: TensorSpec[];
  if (external) {
    const data = o.shared ?? sharedData(`${path}.data`);
    files.push(data.path);
    inits = writeExternal(graph, data);
  } else {
    inits = graph.params.map((p) => ({ name: p.name, dtype: p.dtype, dims: p.dims, raw: p.bytes() }));
  }
  const model = encodeModel({
    name: o.name,
    nodes: graph.nodes,
    initializers: [...inits, ...graph.constants],
    inputs: graph.inputs,
    outputs: graph.outputs,
    opset: OPSET,
    producerVersion: o.producerVersion,
    docString: o.docString,
  });
  const fd = openSync(path, "w");
  let bytes: number;
  try {
    bytes = writeAll(fd, model.parts);
  } finally {
    closeSync(fd);
  }
  return { files, bytes, weightBytes: total };
}

function byteSize(d: string): number {
  return d === "float64" || d === "int64"
    ? 8
    : d === "float32" || d === "int32"
      ? 4
      : d === "float16"
        ? 2
        : 1;
}
