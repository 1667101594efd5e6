// The onnxruntime-node engine of bench/run.ts (CPU execution provider): matmul as a hand-encoded single-node
// graph, clip-vision as dedos' own export of the dedos engine's model (bench/export-case.ts, in a child),
// served over the protocol of bench/harness.ts (bench/sample.ts) like the other engines.
//   node dist/bench/worker-ort.js
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { type CaseFactory, serve } from "./sample.js";

// --- a minimal protobuf writer for onnx.proto's ModelProto (field numbers from onnx/onnx.proto) ---
type Field = [number, number | string | Uint8Array];

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** One message: numbers as varints (wire type 0), strings and sub-messages length-delimited (wire type 2). */
function message(fields: Field[]): Uint8Array {
  const bytes: number[] = [];
  for (const [no, v] of fields) {
    if (typeof v === "number") bytes.push(...varint(no * 8), ...varint(v));
    else {
      const b = typeof v === "string" ? new TextEncoder().encode(v) : v;
      bytes.push(...varint(no * 8 + 2), ...varint(b.length), ...b);
    }
  }
  return Uint8Array.from(bytes);
}

/** ValueInfoProto of a float32 tensor: name, TypeProto{tensor_type{elem_type FLOAT, shape{dim…}}}. */
function floatValue(name: string, shape: number[]): Uint8Array {
  const dims: Field[] = shape.map((d) => [1, message([[1, d]])]);
  const tensorType = message([
    [1, 1],
    [2, message(dims)],
  ]);
  return message([
    [1, name],
    [2, message([[1, tensorType]])],
  ]);
}

/** ModelProto (IR 8, opset 17) of one node `op(inputs) → Y`. */
export function singleNodeModel(op: string, inputs: [string, number[]][], output: number[]): Uint8Array {
  const node = message([...inputs.map(([n]) => [1, n] as Field), [2, "Y"], [3, op.toLowerCase()], [4, op]]);
  const graph = message([
    [1, node],
    [2, `bench_${op}`],
    ...inputs.map(([n, s]) => [11, floatValue(n, s)] as Field),
    [12, floatValue("Y", output)],
  ]);
  return message([
    [1, 8],
    [2, "dedos-bench"],
    [7, graph],
    [
      8,
      message([
        [1, ""],
        [2, 17],
      ]),
    ],
  ]);
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
};

await serve(
  ORT_CASES,
  (t) => {
    threads = t;
  },
  () => ({ onnxruntime: ort.env.versions }),
);
