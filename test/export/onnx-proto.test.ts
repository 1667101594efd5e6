// The protobuf writer alone: a hand-built graph (negative int64 attributes, float and int lists, an inline
// and an external initializer) that onnxruntime-node loads and runs.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { concatEncoded, encodeModel } from "../../src/export/onnx-proto.js";
import { OnnxChecker } from "../../src/export/verify.js";
import { tensor } from "../../src/torch/index.js";
import { tempDir } from "../temp-dir.js";

describe("ONNX protobuf writer", () => {
  it("writes a model onnxruntime runs: y = Slice(x, −2…) · w + b (w external)", async () => {
    const dir = tempDir("dedos-proto-");
    const w = Float32Array.of(2, 3);
    writeFileSync(join(dir, "w.bin"), new Uint8Array(w.buffer));
    const int64s = (vs: number[]) => new Uint8Array(BigInt64Array.from(vs.map(BigInt)).buffer);
    const model = encodeModel({
      name: "t",
      opset: 17,
      producerVersion: "test",
      inputs: [{ name: "x", dtype: "float32", dims: ["n", 4] }],
      outputs: [{ name: "y", dtype: "float32", dims: ["n", 2] }],
      initializers: [
        { name: "w", dtype: "float32", dims: [2], external: { location: "w.bin", offset: 0, length: 8 } },
        { name: "b", dtype: "float32", dims: [1], raw: new Uint8Array(Float32Array.of(0.5).buffer) },
        { name: "starts", dtype: "int64", dims: [1], raw: int64s([-2]) },
        { name: "ends", dtype: "int64", dims: [1], raw: int64s([Number.MAX_SAFE_INTEGER]) },
        { name: "axes", dtype: "int64", dims: [1], raw: int64s([-1]) },
      ],
      nodes: [
        { op: "Slice", inputs: ["x", "starts", "ends", "axes"], outputs: ["s"] },
        { op: "Mul", inputs: ["s", "w"], outputs: ["m"] },
        { op: "Add", inputs: ["m", "b"], outputs: ["a"] },
        { op: "LeakyRelu", inputs: ["a"], outputs: ["y"], attrs: { alpha: { f: 0.25 } } },
      ],
    });
    writeFileSync(join(dir, "m.onnx"), concatEncoded(model));
    const checker = await OnnxChecker.open(join(dir, "m.onnx"));
    try {
      const x = tensor(Float32Array.of(1, 2, 3, 4, 5, 6, -7, -8), [2, 4]);
      const out = (await checker.run({ x })).y!;
      assert.deepEqual(out.dims, [2, 2]);
      assert.deepEqual(Array.from(out.data), [6.5, 12.5, -3.375, -5.875]);
    } finally {
      await checker.close();
    }
  });
});
