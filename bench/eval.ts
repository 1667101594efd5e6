// bench/eval: metric accumulation must never be the bottleneck of an evaluation (target ≥ 50 Mpixel/s).
//   node dist/bench/eval.js
// Random predictions and ground truth shaped like the benchmarks (512×683 label maps, ignore pixels included).
import { ConfusionMatrix, computeMetrics } from "../src/eval/semseg-metrics.js";
import { report, type Timing, timeMedian } from "./common.js";

const H = 512;
const W = 683;
const n = H * W;
const out: Timing[] = [];
let seed = 1;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 4294967296;
};
for (const [name, N, ignore, Arr] of [
  ["ade150 (uint8 GT, ignore 255)", 150, 255, Uint8Array],
  ["pc459 (uint16 GT, ignore 459)", 459, 459, Uint16Array],
  ["ade847 (uint16 GT, ignore 65535)", 847, 65535, Uint16Array],
] as const) {
  // Label maps with spatial structure (runs of equal labels), as real maps have.
  const pred = new Uint16Array(n);
  const gt = new Arr(n);
  for (let i = 0; i < n; i += 64) {
    const p = Math.floor(rnd() * N);
    const g = rnd() < 0.05 ? ignore : rnd() < 0.7 ? p : Math.floor(rnd() * N);
    pred.fill(p, i, i + 64);
    gt.fill(g, i, i + 64);
  }
  const conf = new ConfusionMatrix(N, ignore);
  const images = 20;
  const ms = timeMedian(
    () => {
      for (let k = 0; k < images; k++) conf.add(pred, gt);
    },
    7,
    2,
  );
  const mpx = (images * n) / (ms / 1e3) / 1e6;
  out.push({ name: `accumulate ${name}: ${mpx.toFixed(0)} Mpixel/s`, ms: ms / images });
  out.push({ name: `computeMetrics ${name}`, ms: timeMedian(() => computeMetrics(conf), 7, 2) });
}
report(
  "bench/eval — confusion-matrix accumulation per 512×683 image, and the metrics",
  out,
  null,
  "eval.json",
);
