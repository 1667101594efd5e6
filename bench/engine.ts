// bench/engine: the engine's kernels and call overhead against PyTorch (python3-torch) in the same run.
//   node dist/bench/engine.js [threads]
import { F, Generator, nn, noGrad, randn, setNumThreads, type Tensor, tidy } from "../src/torch/index.js";
import { kernelTimings, report, runPythonReference, type Timing, timeMedian } from "./common.js";

const threads = Number(process.argv[2] ?? 2);
setNumThreads(threads);
const g = new Generator(0);
const out: Timing[] = [];

out.push(...kernelTimings({ matmul: [20, 3], conv: [10, 2] }));
// One ViT-B block (pre-LN, 12 heads, MLP 3072, QuickGELU) on 577 tokens, batch 1, written as CLIP's block is.
{
  const D = 768;
  const ln1 = new nn.LayerNorm(D);
  const ln2 = new nn.LayerNorm(D);
  const attn = new nn.MultiheadAttention(D, 12, { generator: g });
  const fc = new nn.Linear(D, 4 * D, true, { generator: g });
  const proj = new nn.Linear(4 * D, D, true, { generator: g });
  const block = (x: Tensor) =>
    tidy(() => {
      const y = x.add(attn.forward(ln1.forward(x)));
      return y.add(proj.forward(F.quickGelu(fc.forward(ln2.forward(y)))));
    });
  const x = randn([577, 1, D], { generator: g });
  out.push({
    name: "ViT-B block fwd (577 tok)",
    ms: noGrad(() => timeMedian(() => block(x).dispose(), 10, 2)),
  });
  const xg = randn([577, 1, D], { generator: g, requiresGrad: true });
  const params = [
    ...ln1.parameters(),
    ...ln2.parameters(),
    ...attn.parameters(),
    ...fc.parameters(),
    ...proj.parameters(),
  ];
  out.push({
    name: "ViT-B block fwd+bwd",
    ms: timeMedian(
      () =>
        tidy(() => {
          for (const p of params) p.grad = null;
          xg.grad = null;
          block(xg).sum().backward();
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
