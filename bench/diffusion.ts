// bench/diffusion: the SD-2-base UNet (random full-size weights, SD_PRESETS config) at a 48×48 latent (DEDOS's
// 384 crop), batch 1, the empty-prompt text length 77 × 1024, under noGrad: forward time, peak RSS, the same
// UNet in PyTorch (bench/reference/diffusion.py, python3-torch) in the same run, and the achieved GFLOP/s
// against the engine's own rates measured in the same run:
//   - the best-case reference kernels shared with bench/engine (matmul 1024³, conv3x3 320ch at 64²), timed in
//     turn with the forward (f, matmul ×3, conv ×3, f, … after a warm-up run each) so that the machine's
//     drift cannot skew their ratio;
//   - the UNet's own kernel shapes run alone, one by one, weighted by how often the forward runs each: every
//     conv, every linear and every attention, through the inference paths the UNet takes ("inference") and
//     through plain ATen (F.conv2d / F.linear / F.attention, i.e. what PyTorch runs: "aten").
// The fraction of the own-shape mix is Σ(kernels alone) / forward: what the forward loses outside its kernels
// (glue ops, layout copies, cold caches), independent of how fast a kernel can be at those shapes.
//   node dist/bench/diffusion.js [threads] [reps] [--no-reference]
//
// FLOPs are counted once by wrapping the diffusion layers' forwards (2·out·fan_in each) and the attention
// modules (QKᵀ and A·V: 2·2·L·S·d per head), which is also how the kernel shapes are collected.

import {
  Attention,
  attentionQueryChunk,
  DEFAULT_ATTENTION_BUDGET_BYTES,
} from "../src/diffusion/attention.js";
import { SD_PRESETS } from "../src/diffusion/config.js";
import { Conv2d, Linear } from "../src/diffusion/layers.js";
import { UNet2DConditionModel } from "../src/diffusion/unet.js";
import * as F from "../src/torch/functional.js";
import { dispose, Generator, noGrad, randn, setNumThreads, type Tensor, tidy } from "../src/torch/index.js";
import { native } from "../src/torch/native.js";
import * as bench from "./common.js";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const threads = Number(args[0] ?? 2);
const reps = Number(args[1] ?? 3);
const withReference = !process.argv.includes("--no-reference");
setNumThreads(threads);
const NAME = "SD-2-base UNet fwd 48×48 latent";

// The reference runs first, while this process is still small (a child's peak RSS can inherit the parent's).
const ref = withReference
  ? bench.runPythonReference("bench/reference/diffusion.py", threads, [String(reps)])
  : null;

const g = new Generator(0);
const out: bench.Timing[] = [];

const config = SD_PRESETS["sd-2-base"].unet;
const H = 48;
const W = 48;
const S = 77;
const buildStart = process.hrtime.bigint();
const unet = new UNet2DConditionModel(config, { generator: g }).requiresGrad_(false).eval();
const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6;
const params = unet.numParameters();
const z = randn([1, 4, H, W], { generator: g });
const text = randn([1, S, config.cross_attention_dim as number], { generator: g });

interface ConvShape {
  x: number[];
  w: number[];
  bias: boolean;
  opts: F.Conv2dOptions;
}
interface LinearShape {
  x: number[];
  w: number[];
  bias: boolean;
}
interface AttentionShape {
  batch: number;
  heads: number;
  lq: number;
  lk: number;
  d: number;
}
/** A kernel shape, how often one forward runs it, and its FLOPs per run. */
interface Use<T> {
  shape: T;
  count: number;
  flops: number;
}

/** FLOPs of one forward and every kernel shape it runs, by wrapping the layers' and attentions' forwards once. */
function countFlops() {
  const convs = new Map<string, Use<ConvShape>>();
  const linears = new Map<string, Use<LinearShape>>();
  const attentions = new Map<string, Use<AttentionShape>>();
  const note = <T>(m: Map<string, Use<T>>, shape: T, flops: number) => {
    const key = JSON.stringify(shape);
    const u = m.get(key) ?? { shape, count: 0, flops };
    u.count++;
    m.set(key, u);
  };
  const convFwd = Conv2d.prototype.forwardWithBias;
  const linFwd = Linear.prototype.forward;
  const linRows = Linear.prototype.forwardRows;
  const attFwd = Attention.prototype.forward;
  Conv2d.prototype.forwardWithBias = function (this: Conv2d, x: Tensor, bias: Tensor | null): Tensor {
    const y = convFwd.call(this, x, bias);
    const w = this.weight.shape; // (out, in/groups, kh, kw)
    note(convs, { x: x.shape, w, bias: bias !== null, opts: this.opts }, 2 * y.numel * w[1]! * w[2]! * w[3]!);
    return y;
  };
  Linear.prototype.forward = function (this: Linear, x: Tensor): Tensor {
    const y = linFwd.call(this, x);
    note(
      linears,
      { x: x.shape, w: this.weight.shape, bias: this.bias !== null },
      2 * y.numel * this.inFeatures,
    );
    return y;
  };
  Linear.prototype.forwardRows = function (this: Linear, x: Tensor, start: number, length: number): Tensor {
    const y = linRows.call(this, x, start, length);
    note(
      linears,
      { x: x.shape, w: [length, this.inFeatures], bias: this.bias !== null },
      2 * y.numel * this.inFeatures,
    );
    return y;
  };
  Attention.prototype.forward = function (
    this: Attention,
    x: Tensor,
    context: Tensor | null = null,
    ctx = {},
  ) {
    const c = this.config;
    const lq = x.ndim === 4 ? x.size(2) * x.size(3) : x.size(1);
    const lk = context ? context.size(1) : lq;
    const batch = x.size(0);
    note(
      attentions,
      { batch, heads: c.heads, lq, lk, d: c.dimHead },
      4 * batch * c.heads * lq * lk * c.dimHead,
    );
    return attFwd.call(this, x, context, ctx);
  };
  try {
    noGrad(() => unet.forward(z, 50, text, { taps: false }).sample.dispose());
  } finally {
    Conv2d.prototype.forwardWithBias = convFwd;
    Linear.prototype.forward = linFwd;
    Linear.prototype.forwardRows = linRows;
    Attention.prototype.forward = attFwd;
  }
  const total = (m: Map<string, Use<unknown>>) => [...m.values()].reduce((s, u) => s + u.count * u.flops, 0);
  return {
    conv: total(convs),
    linear: total(linears),
    attention: total(attentions),
    convs: [...convs.values()],
    linears: [...linears.values()],
    attentions: [...attentions.values()],
  };
}

const flops = countFlops();
const gflop = (flops.conv + flops.linear + flops.attention) / 1e9;
/** One forward as DEDOS runs it (with its 16 taps), everything it returns freed. */
const forward = () => {
  const r = unet.forward(z, 50, text, { taps: true });
  dispose([r.sample, ...r.taps.map((t) => t.tokens)]);
};
bench.resetPeakRss();
const rssBefore = bench.rssMb();
// The forward and the engine's best-case kernels (the same cases as bench/engine), measured in turn.
const refs = bench.referenceKernels();
const [ms, ...kernelMs] = noGrad(() =>
  bench.interleavedMedians([{ fn: forward, runs: 1 }, ...refs.map((r) => ({ fn: r.run, runs: 3 }))], reps),
) as [number, ...number[]];
const peak = bench.peakRssMb();
refs.forEach((r, i) => {
  out.push({ name: r.name, ms: kernelMs[i]!, gflop: r.gflop });
  r.dispose();
});
out.push({ name: NAME, ms, gflop, peakRssMb: peak ?? undefined });
// Share of the forward spent outside libtorch kernels (binding + JavaScript), target < 5 %.
const overhead = noGrad(() => bench.bindingOverhead(forward));
unet.dispose();
dispose([z, text]);

/**
 * The UNet's kernel shapes run alone on random inputs, each timed (median of `reps` after a warm-up) and
 * weighted by its count: total ms per forward and GFLOP/s, through the inference paths and through plain ATen.
 */
function ownShapeRates(path: "inference" | "aten") {
  const time = (make: () => { run: () => Tensor; inputs: Tensor[] }) => {
    const { run, inputs } = make();
    try {
      return noGrad(() => bench.timeMedian(() => run().dispose(), reps, 1));
    } finally {
      dispose(inputs);
    }
  };
  const sum = <T>(uses: Use<T>[], make: (s: T) => { run: () => Tensor; inputs: Tensor[] }) => {
    let msTotal = 0;
    let flopTotal = 0;
    for (const u of uses) {
      msTotal += u.count * time(() => make(u.shape));
      flopTotal += u.count * u.flops;
    }
    return { ms: msTotal, gflops: flopTotal / 1e6 / msTotal };
  };
  const fast = path === "inference";
  const conv = sum(flops.convs, (s) => {
    const x = randn(s.x, { generator: g });
    const w = randn(s.w, { generator: g }).mul(0.02);
    const b = s.bias ? randn([s.w[0]!], { generator: g }) : null;
    const f = fast ? F.conv2dInference : F.conv2d;
    return { run: () => f(x, w, b, s.opts), inputs: b ? [x, w, b] : [x, w] };
  });
  const linear = sum(flops.linears, (s) => {
    const x = randn(s.x, { generator: g });
    const w = randn(s.w, { generator: g }).mul(0.02);
    const b = s.bias ? randn([s.w[0]!], { generator: g }) : null;
    const f = fast ? F.linearInference : F.linear;
    return { run: () => f(x, w, b), inputs: b ? [x, w, b] : [x, w] };
  });
  const attention = sum(flops.attentions, (s) => {
    // Head views of (B, L, heads·d) projections, as the UNet's Attention makes them.
    const proj = (n: number) =>
      tidy(() =>
        randn([s.batch, n, s.heads * s.d], { generator: g })
          .view(s.batch, n, s.heads, s.d)
          .transpose(1, 2),
      );
    const [q, k, v] = [proj(s.lq), proj(s.lk), proj(s.lk)];
    const scale = s.d ** -0.5;
    const queryChunk = attentionQueryChunk(s.batch * s.heads, s.lq, s.lk, 4, DEFAULT_ATTENTION_BUDGET_BYTES);
    const merge = (o: Tensor) => tidy(() => o.transpose(1, 2).reshape(s.batch, s.lq, s.heads * s.d)); // what to_out reads
    const run = fast
      ? () => tidy(() => merge(F.attentionInference(q, k, v, { scale, queryChunk })))
      : () => tidy(() => merge(F.attention(q, k, v, { scale, queryChunk })));
    return { run, inputs: [q, k, v] };
  });
  const matmulMs = linear.ms + attention.ms;
  return {
    conv,
    linear,
    attention,
    matmul: { ms: matmulMs, gflops: (flops.linear + flops.attention) / 1e6 / matmulMs },
    mix: { ms: conv.ms + matmulMs, gflops: gflop / ((conv.ms + matmulMs) / 1e3) },
  };
}
const own = { inference: ownShapeRates("inference"), aten: ownShapeRates("aten") };
out.push(
  { name: "UNet's kernels alone, inference paths (Σ per forward)", ms: own.inference.mix.ms, gflop },
  { name: "UNet's kernels alone, plain ATen (Σ per forward)", ms: own.aten.mix.ms, gflop },
);

const rate = (name: string) => {
  const o = out.find((x) => x.name === name)!;
  return o.gflop! / (o.ms / 1e3);
};
const unetRate = gflop / (ms / 1e3);
const matmulRate = rate("matmul 1024³");
const convRate = rate("conv3x3 320ch 64²");
// The UNet's work is mostly convs and linears: compare with the FLOP-weighted mix of the two engine rates.
const convShare = flops.conv / (flops.conv + flops.linear + flops.attention);
const mixRate = 1 / (convShare / convRate + (1 - convShare) / matmulRate);
const refMs = ref?.[NAME];
const summary = {
  threads,
  // The BLAS libtorch's F.linear / matmul use (OpenBLAS core and threads), and whether the inference paths
  // (oneDNN sgemm) are on.
  blas: native.blasInfo(),
  inferencePaths: native.inferenceGemmAvailable(),
  parameters: params,
  buildMs,
  gflop: {
    conv: flops.conv / 1e9,
    linear: flops.linear / 1e9,
    attention: flops.attention / 1e9,
    total: gflop,
  },
  kernelShapes: {
    conv: flops.convs.length,
    linear: flops.linears.length,
    attention: flops.attentions.length,
  },
  unetMs: ms,
  unetGflops: unetRate,
  pytorchMs: refMs ?? null,
  oursOverPytorch: refMs ? ms / refMs : null,
  engineMatmulGflops: matmulRate,
  engineConvGflops: convRate,
  fractionOfMatmul: unetRate / matmulRate,
  fractionOfConv: unetRate / convRate,
  fractionOfMix: unetRate / mixRate,
  // The engine on the UNet's own shapes (GFLOP/s of each group alone, and ms per forward).
  ownShapes: own,
  fractionOfOwnConv: unetRate / own.inference.conv.gflops,
  fractionOfOwnMatmul: unetRate / own.inference.matmul.gflops,
  fractionOfOwnMix: unetRate / own.inference.mix.gflops,
  addonCalls: overhead.calls,
  shareOutsideKernels: overhead.share,
  rssBeforeMb: rssBefore,
  peakRssMb: peak,
  pytorchPeakRssMb: ref?.[`${NAME} | peak RSS MB`] ?? null,
};
bench.report(
  `bench/diffusion — ${threads} thread(s), float32, medians of ${reps}`,
  out,
  ref,
  "diffusion.json",
  summary,
);
console.log(JSON.stringify(summary, null, 2));
