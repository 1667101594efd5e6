// The onnxruntime-node engine of bench/run.ts (CPU execution provider): matmul as a single-node graph, clip-vision as
// dedos' own export of the dedos engine's model (bench/export-case.ts, in a child), served over the protocol of
// bench/harness.ts (bench/sample.ts) like the other engines.
//   node dist/bench/worker-ort.js
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { Segmenter } from "../src/api/segmenter.js";
import { concatEncoded, encodeModel } from "../src/export/onnx-proto.js";
import { type CaseFactory, serve } from "./sample.js";

/** ModelProto (opset 17) of one node `op(inputs) → Y` on float32 tensors, by the exporter's encoder. */
export function singleNodeModel(op: string, inputs: [string, number[]][], output: number[]): Uint8Array {
  return concatEncoded(
    encodeModel({
      name: `bench_${op}`,
      opset: 17,
      producerVersion: "dedos-bench",
      inputs: inputs.map(([name, dims]) => ({ name, dtype: "float32", dims })),
      outputs: [{ name: "Y", dtype: "float32", dims: output }],
      initializers: [],
      nodes: [{ op, inputs: inputs.map(([n]) => n), outputs: ["Y"], name: op.toLowerCase() }],
    }),
  );
}

function randomTensor(shape: number[]): ort.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  return new ort.Tensor("float32", data, shape);
}

let threads = 1;

const ORT_CASES: Record<string, CaseFactory> = {
  matmul: (spec) => {
    const n = Number(spec.n);
    const model = singleNodeModel(
      "MatMul",
      [
        ["A", [n, n]],
        ["B", [n, n]],
      ],
      [n, n],
    );
    const feeds = { A: randomTensor([n, n]), B: randomTensor([n, n]) };
    // The output bound to one preallocated tensor, as a user running the same shape repeatedly would.
    const fetches = { Y: new ort.Tensor("float32", new Float32Array(n * n), [n, n]) };
    const session = ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
    return async () => {
      await (await session).run(feeds, fetches);
    };
  },
  // The dedos model exported by dedos' own exporter (same seeded weights as the dedos engine's case).
  "clip-vision": (spec) => {
    const dir = mkdtempSync(join(tmpdir(), "dedos-bench-ort-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "clip-vision.onnx");
    const here = dirname(fileURLToPath(import.meta.url));
    const r = spawnSync(
      process.execPath,
      [join(here, "export-case.js"), "clip-vision", JSON.stringify(spec), file],
      {
        encoding: "utf8",
      },
    );
    if (r.status !== 0) throw new Error(`export of clip-vision failed: ${r.stderr || r.stdout}`);
    const session = ort.InferenceSession.create(file, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
    const n = Number(spec.resolution);
    const feeds = { pixels: randomTensor([1, 3, n, n]) };
    return async () => {
      await (await session).run(feeds);
    };
  },
  // The Segmenter's onnx backend on `dedos export` of the dedos engine's seeded model (checks included: minutes).
  "segment-image": (spec) => {
    const dir = mkdtempSync(join(tmpdir(), "dedos-bench-ort-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "export");
    const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
    const args = [
      "export",
      "--weights",
      "random",
      "--config",
      String(spec.config),
      "--seed",
      String(spec.seed),
    ];
    const r = spawnSync(process.execPath, [cli, ...args, "--skip-topk", "--out", out], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`dedos export failed: ${r.stderr || r.stdout}`);
    const seg = Segmenter.create({
      backend: "onnx",
      model: out,
      sessionOptions: { intraOpNumThreads: threads },
    });
    const classes = spec.classes as string[];
    return async () => {
      await (await seg).segment(String(spec.image), classes);
    };
  },
};

await serve(
  ORT_CASES,
  (t) => {
    threads = t;
  },
  () => ({ onnxruntime: ort.env.versions }),
);
