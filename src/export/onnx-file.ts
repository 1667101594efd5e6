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

/** Writes `graph` to `path` (and `path`.data when the weights are external). */
export function writeOnnx(
  path: string,
  graph: OnnxGraph,
  o: { name: string; producerVersion: string; docString?: string; externalAbove?: number },
): WrittenOnnx {
  const total = graph.params.reduce((s, p) => s + p.dims.reduce((a, d) => a * d, 1) * byteSize(p.dtype), 0);
  const external = total > (o.externalAbove ?? EXTERNAL_DATA_THRESHOLD);
  const files = [path];
  const inits: TensorSpec[] = [];
  if (external) {
    const dataPath = `${path}.data`;
    const location = basename(dataPath);
    files.push(dataPath);
    const fd = openSync(dataPath, "w");
    try {
      let offset = 0;
      for (const p of graph.params) {
        const raw = p.bytes();
        writeAll(fd, [raw]);
        inits.push({
          name: p.name,
          dtype: p.dtype,
          dims: p.dims,
          external: { location, offset, length: raw.length },
        });
        offset += raw.length;
      }
    } finally {
      closeSync(fd);
    }
  } else {
    for (const p of graph.params) inits.push({ name: p.name, dtype: p.dtype, dims: p.dims, raw: p.bytes() });
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
