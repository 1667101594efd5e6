// bench/engine: the engine's kernels and call overhead against PyTorch (python3-torch) in the same run, one
// process after the other (quick look; bench/run.ts is the fair comparison: alternated rounds, both BLAS
// choices, page faults, peak RSS).
//   node dist/bench/engine.js [threads]
import { Generator, noGrad, randn, setNumThreads, tidy } from "../src/torch/index.js";
import { vitBlock } from "./cases-dedos.js";
import { kernelTimings, report, runPythonReference, type Timing, timeMedian } from "./common.js";

const threads = Number(process.argv[2] ?? 2);
setNumThreads(threads);
const g = new Generator(0);
const out: Timing[] = [];

out.push(...kernelTimings({ matmul: [20, 3], conv: [10, 2] }));
// One ViT-B block (pre-LN, 12 heads, MLP 3072, QuickGELU) on 577 tokens, batch 1, written as CLIP's block is.
{
  const block = vitBlock(g);
  const x = randn([577, 1, 768], { generator: g });
  out.push({
    name: "ViT-B block fwd (577 tok)",
    ms: noGrad(() => timeMedian(() => block.forward(x).dispose(), 10, 2)),
  });
  const xg = randn([577, 1, 768], { generator: g, requiresGrad: true });
  out.push({
    name: "ViT-B block fwd+bwd",
    ms: timeMedian(
      () =>
        tidy(() => {
          for (const p of block.parameters) p.grad = null;
          xg.grad = null;
          block.forward(xg).sum().backward();
        }),
      10,
      2,
    ),
  });
}
// The cost of one tiny op call through the binding (add of two 1-element tensors), in ms (×1000 = µs).
{
  const a = randn([1]);
  const b = randn([1]);
  const n = 20000;
  out.push({
    name: "tiny op call (add, 1 elem)",
    ms:
      timeMedian(
        () => {
          for (let i = 0; i < n; i++) a.add(b).dispose();
        },
        7,
        2,
      ) / n,
  });
}

const ref = runPythonReference("bench/reference/engine.py", threads);
report(`bench/engine — ${threads} thread(s), float32, medians`, out, ref, "engine.json");
