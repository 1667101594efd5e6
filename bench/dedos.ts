// bench/dedos: both DEDOS configs with full-size random weights (CLIP, CAT-Seg head, DEDOS modules, SD-2-base
// UNet + VAE): parameter counts (trainable / frozen), one training step (batch 1 at the training crop, the
// 171 COCO-Stuff classes, all losses, backward, AdamW step) and one inference forward (a 512² view, the 150
// ADE classes), with time, peak RSS and the share of time outside libtorch kernels.
//   node dist/bench/dedos.js [threads] [presets…]      (each preset runs in its own process: clean peak RSS)
import { spawnSync } from "node:child_process";
import { getBenchmark, loadClassNames } from "../src/data/benchmarks.js";
import { AdamW, allocatorStats, noGrad, rand, randint, setNumThreads, tidy } from "../src/torch/index.js";
import { trainPreset } from "../src/train/config.js";
import { applyUpdate, setupTrainable, totalLoss } from "../src/train/solver.js";
import { bindingOverhead, peakRssMb, report, resetPeakRss, rssMb, type Timing } from "./common.js";
import { buildFullSize } from "./full-size.js";

const threads = Number(process.argv[2] ?? 2);
const presets = process.argv.slice(3).length ? process.argv.slice(3) : ["vitb_384", "vitl_336"];

if (process.env.DEDOS_BENCH_CHILD) {
  setNumThreads(threads);
  const preset = presets[0]!;
  const tc = trainPreset(preset);
  const crop = tc.data.crop;
  resetPeakRss();
  const f = buildFullSize(preset);
  const model = f.model;
  const setup = setupTrainable(model, tc.solver);
  const optimizer = new AdamW(setup.groups);
  const coco = loadClassNames(getBenchmark("cocostuff171"));
  const ade = loadClassNames(getBenchmark("ade150"));
  const trainText = noGrad(() => model.textEmbeddings(coco)).keep();
  const testText = noGrad(() => model.textEmbeddings(ade)).keep();
  const images = rand([1, 3, crop, crop]).mul(255).keep();
  const labels = randint(0, 171, [1, crop, crop]).keep();

  const step = () => {
    model.train();
    tidy(() => {
      const losses = model.trainingLosses(images, labels, trainText);
      optimizer.zeroGrad();
      totalLoss(losses).backward();
    });
    applyUpdate(setup, optimizer, tc.solver.gradClip);
  };
  const view = rand([1, 3, 512, 512]).mul(255).keep();
  const infer = () => {
    model.eval();
    noGrad(() => tidy(() => model.forward(view, testText).dispose()));
  };

  const time = (fn: () => void) => {
    const s = performance.now();
    fn();
    return performance.now() - s;
  };
  /** fn's new large blocks: fresh memory the kernel has to fault in and clear (GB, count). */
  const newBlocks = (fn: () => void) => {
    const before = allocatorStats();
    fn();
    const after = allocatorStats();
    return { gb: (after.newBytes - before.newBytes) / 1e9, count: after.misses - before.misses };
  };
  const firstStepMs = time(step); // includes the optimizer state allocation
  let stepMs = 0;
  const stepNewBlocks = newBlocks(() => {
    stepMs = time(step);
  });
  const stepOverhead = bindingOverhead(step);
  const inferMs = time(infer);
  const inferOverhead = bindingOverhead(infer);
  const peak = peakRssMb();
  const result = {
    preset,
    threads,
    buildMs: f.buildMs,
    parameters: {
      trainable: setup.trainable,
      frozenInModel: setup.frozen,
      frozenStableDiffusion: f.sdParameters,
    },
    train: {
      batch: 1,
      crop,
      classes: coco.length,
      firstStepMs,
      stepMs,
      shareOutsideKernels: stepOverhead.share,
      newBlocks: stepNewBlocks,
    },
    inference: { view: 512, classes: ade.length, ms: inferMs, shareOutsideKernels: inferOverhead.share },
    rssAfterMb: rssMb(),
    peakRssMb: peak,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const out: Timing[] = [];
const summary: Record<string, unknown> = { threads };
for (const p of presets) {
  const r = spawnSync(process.execPath, ["--expose-gc", process.argv[1]!, String(threads), p], {
    env: { ...process.env, DEDOS_BENCH_CHILD: "1" },
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`bench/dedos ${p} failed:\n${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split("\n").pop()!);
  summary[p] = res;
  out.push({
    name: `${p} training step (batch 1, ${res.train.crop}², 171 classes)`,
    ms: res.train.stepMs,
    peakRssMb: res.peakRssMb,
  });
  out.push({ name: `${p} inference (512² view, 150 classes)`, ms: res.inference.ms });
}
report(
  `bench/dedos — full-size random weights, ${threads} thread(s), float32`,
  out,
  null,
  "dedos.json",
  summary,
);
console.log(JSON.stringify(summary, null, 2));
