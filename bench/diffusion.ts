// bench/diffusion: the SD-2-base UNet (random full-size weights, SD_PRESETS config) at a 48×48 latent (DEDOS's
// 384 crop), batch 1, the empty-prompt text length 77 × 1024, under noGrad: forward time, peak RSS, and the
// achieved GFLOP/s against the engine's own matmul and conv GFLOP/s measured in the same run.
//   node dist/bench/diffusion.js [threads] [reps]
//
// FLOPs are counted once by wrapping nn.Conv2d / nn.Linear forwards (2·out·fan_in each) plus the attention
// products (QKᵀ and A·V: 2·2·N·M·C per transformer block, N queries, M keys), which run as plain matmuls.
import { SD_PRESETS } from "../src/diffusion/config.js";
import { UNet2DConditionModel, unetTapSpecs } from "../src/diffusion/unet.js";
import { Generator, nn, noGrad, randn, setNumThreads, type Tensor } from "../src/torch/index.js";
import {
  bindingOverhead,
  kernelTimings,
  peakRssMb,
  report,
  resetPeakRss,
  rssMb,
  type Timing,
  timeMedian,
} from "./common.js";

const threads = Number(process.argv[2] ?? 2);
const reps = Number(process.argv[3] ?? 3);
setNumThreads(threads);
const g = new Generator(0);
const out: Timing[] = [];

// The engine's own rates (the same cases as bench/engine).
out.push(...kernelTimings({ matmul: [10, 2], conv: [5, 1] }));

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

/** FLOPs of one forward: conv/linear by wrapping their forwards once, attention products analytically. */
function countFlops(): { conv: number; linear: number; attention: number } {
  const counts = { conv: 0, linear: 0, attention: 0 };
  const convFwd = nn.Conv2d.prototype.forward;
  const linFwd = nn.Linear.prototype.forward;
  nn.Conv2d.prototype.forward = function (this: nn.Conv2d, x: Tensor): Tensor {
    const y = convFwd.call(this, x);
    const w = this.parameters()[0]!.shape; // (out, in/groups, kh, kw)
    counts.conv += 2 * y.numel * w[1]! * w[2]! * w[3]!;
    return y;
  };
  nn.Linear.prototype.forward = function (this: nn.Linear, x: Tensor): Tensor {
    const y = linFwd.call(this, x);
    counts.linear += 2 * y.numel * this.inFeatures;
    return y;
  };
  try {
    noGrad(() => {
      const r = unet.forward(z, 50, text, { taps: false });
      r.sample.dispose();
    });
  } finally {
    nn.Conv2d.prototype.forward = convFwd;
    nn.Linear.prototype.forward = linFwd;
  }
  const layers = Array.isArray(config.transformer_layers_per_block) ? 1 : config.transformer_layers_per_block;
  for (const s of unetTapSpecs(config)) {
    const n = (H / s.stride) * (W / s.stride);
    counts.attention += layers * (4 * n * n * s.channels + 4 * n * S * s.channels);
  }
  return counts;
}

const flops = countFlops();
const gflop = (flops.conv + flops.linear + flops.attention) / 1e9;
resetPeakRss();
const rssBefore = rssMb();
const ms = noGrad(() =>
  timeMedian(() => unet.forward(z, 50, text, { taps: true }).sample.dispose(), reps, 1),
);
const peak = peakRssMb();
out.push({ name: `SD-2-base UNet fwd ${H}×${W} latent`, ms, gflop, peakRssMb: peak ?? undefined });
// Share of the forward spent outside libtorch kernels (binding + JavaScript), target < 5 %.
const overhead = noGrad(() =>
  bindingOverhead(() => unet.forward(z, 50, text, { taps: true }).sample.dispose()),
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
const summary = {
  threads,
  parameters: params,
  buildMs,
  gflop: {
    conv: flops.conv / 1e9,
    linear: flops.linear / 1e9,
    attention: flops.attention / 1e9,
    total: gflop,
  },
  unetGflops: unetRate,
  engineMatmulGflops: matmulRate,
  engineConvGflops: convRate,
  fractionOfMatmul: unetRate / matmulRate,
  fractionOfConv: unetRate / convRate,
  fractionOfMix: unetRate / mixRate,
  addonCalls: overhead.calls,
  shareOutsideKernels: overhead.share,
  rssBeforeMb: rssBefore,
  peakRssMb: peak,
};
report(
  `bench/diffusion — ${threads} thread(s), float32, medians of ${reps}`,
  out,
  null,
  "diffusion.json",
  summary,
);
console.log(JSON.stringify(summary, null, 2));
