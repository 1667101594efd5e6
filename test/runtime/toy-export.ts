// A toy export folder with real ONNX graphs (written with the exporter's protobuf encoder), for tests that
// need onnxruntime itself — in Node and in the browser — before or besides a real model export:
//   text.onnx: tokens int64 (N, 77) → sin(float(tokens)·0.001 @ W) → features (N, 8)
//   view.onnx: image (1, 3, k, k), text (T, P, 8) → 4×4 average pool → per class a linear map of the three
//              channels by the class embedding's first three values, / 40 → logits (1, T, k/4, k/4)
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { concatEncoded, encodeModel, type NodeSpec, type TensorSpec } from "../../src/export/onnx-proto.js";
import type { OnnxManifest } from "../../src/onnx/manifest.js";
import { pseudoRandom } from "../helpers.js";
import { writeFakeExport } from "./fake-ort.js";

const E = 8;

function f32(name: string, dims: number[], values: number[]): TensorSpec {
  return { name, dtype: "float32", dims, raw: new Uint8Array(Float32Array.from(values).buffer) };
}

function i64(name: string, values: number[]): TensorSpec {
  return {
    name,
    dtype: "int64",
    dims: [values.length],
    raw: new Uint8Array(BigInt64Array.from(values, BigInt).buffer),
  };
}

function node(op: string, inputs: string[], output: string, attrs?: NodeSpec["attrs"]): NodeSpec {
  return { op, inputs, outputs: [output], name: output, ...(attrs ? { attrs } : {}) };
}

function textGraph(): Uint8Array {
  return concatEncoded(
    encodeModel({
      name: "toy-text",
      opset: 17,
      producerVersion: "test",
      inputs: [{ name: "tokens", dtype: "int64", dims: ["N", 77] }],
      outputs: [{ name: "features", dtype: "float32", dims: ["N", E] }],
      initializers: [
        f32("scale", [], [0.001]),
        f32(
          "W",
          [77, E],
          pseudoRandom(77 * E, 5).map((v) => v * 2 - 1),
        ),
      ],
      nodes: [
        node("Cast", ["tokens"], "tf", { to: { i: 1 } }),
        node("Mul", ["tf", "scale"], "ts"),
        node("MatMul", ["ts", "W"], "tw"),
        node("Sin", ["tw"], "features"),
      ],
    }),
  );
}

function viewGraph(k: number): Uint8Array {
  return concatEncoded(
    encodeModel({
      name: "toy-view",
      opset: 17,
      producerVersion: "test",
      inputs: [
        { name: "image", dtype: "float32", dims: [1, 3, k, k] },
        { name: "text", dtype: "float32", dims: ["T", "P", E] },
      ],
      outputs: [{ name: "logits", dtype: "float32", dims: [1, "T", k / 4, k / 4] }],
      initializers: [
        i64("flat", [0, -1]),
        i64("s0", [0]),
        i64("s3", [3]),
        i64("ax1", [1]),
        f32("inv40", [], [1 / 40]),
      ],
      nodes: [
        node("AveragePool", ["image"], "pooled", {
          kernel_shape: { ints: [4, 4] },
          strides: { ints: [4, 4] },
        }),
        node("Transpose", ["pooled"], "nhwc", { perm: { ints: [0, 2, 3, 1] } }),
        node("Reshape", ["text", "flat"], "t2"),
        node("Slice", ["t2", "s0", "s3", "ax1"], "t3"),
        node("Transpose", ["t3"], "w", { perm: { ints: [1, 0] } }),
        node("MatMul", ["nhwc", "w"], "mm"),
        node("Mul", ["mm", "inv40"], "scaled"),
        node("Transpose", ["scaled"], "logits", { perm: { ints: [0, 3, 1, 2] } }),
      ],
    }),
  );
}

/** Writes the toy export (manifest + both graphs) to `dir`. */
export function writeToyExport(dir: string, kernel = 384): OnnxManifest {
  mkdirSync(dir, { recursive: true });
  const manifest = writeFakeExport(dir, { kernel });
  writeFileSync(join(dir, "text.onnx"), textGraph());
  writeFileSync(join(dir, "view.onnx"), viewGraph(kernel));
  return manifest;
}
