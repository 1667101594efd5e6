// Exports a bench case's dedos model to ONNX with dedos' own exporter (src/export), for the onnxruntime
// engine of bench/run.ts: run in a short-lived child so that the onnxruntime process holds neither libtorch
// nor the libtorch copy of the weights (its peak RSS is its own).
//   node dist/bench/export-case.js <case id> <spec JSON> <out.onnx>
import { exportGraph } from "../src/export/graph-export.js";
import { setNumThreads } from "../src/torch/index.js";
import { clipVisionCase } from "./cases-dedos.js";

const [id, specJson, out] = process.argv.slice(2);
if (id !== "clip-vision" || !specJson || !out) {
  console.error("usage: export-case.js clip-vision <spec JSON> <out.onnx>");
  process.exit(2);
}
setNumThreads(2);
const { visual, pixels, forward } = clipVisionCase(JSON.parse(specJson) as Record<string, unknown>);
const r = await exportGraph({
  name: "clip_vision",
  forward: (i) => forward(i.pixels!),
  output: "tokens",
  params: [...visual.namedParameters(), ...visual.namedBuffers()],
  symbol: { input: "pixels", dim: 0, name: "B" },
  traced: [
    { size: 1, inputs: { pixels } },
    { size: 2, inputs: { pixels: pixels.expand(2, -1, -1, -1).contiguous() } },
  ],
  checks: [{ size: 1, inputs: { pixels: pixels.neg() } }],
  weightType: "float32",
  path: out,
  producerVersion: "dedos-bench",
  threads: 2,
});
console.log(
  `exported ${out}: ${(r.bytes / 1e6).toFixed(0)} MB, max |onnxruntime − libtorch| ${r.maxAbsError.toExponential(2)}`,
);
