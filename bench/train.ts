// bench/train: training steps of the ViT-B DEDOS (full-size random weights, random SD-2-base) on CPU with the
// real data pipeline: synthetic 640×480 JPEGs in the COCO-Stuff layout decoded and augmented by background
// workers (ResizeShortestEdge 384, crop 384², SSD colour, flip), batch 1 by default, all losses, backward,
// clipping and the AdamW step. Reports the step time, peak RSS, the share of time outside libtorch kernels
// (target < 5 %) and how long the model waited for data (target < 5 %).
//   node dist/bench/train.js [threads] [steps] [workers] [batch]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { getBenchmark, loadClassNames } from "../src/data/benchmarks.js";
import { writeLabelMap } from "../src/data/labels.js";
import { AdamW, dispose, noGrad, setNumThreads, tidy } from "../src/torch/index.js";
import { trainPreset } from "../src/train/config.js";
import { SegmentationDataset } from "../src/train/dataset.js";
import { DataLoader } from "../src/train/loader.js";
import { applyUpdate, setupTrainable, totalLoss } from "../src/train/solver.js";
import { bindingOverhead, peakRssMb, report, resetPeakRss, type Timing } from "./common.js";
import { buildFullSize } from "./full-size.js";

const threads = Number(process.argv[2] ?? 2);
const steps = Number(process.argv[3] ?? 4);
const workers = Number(process.argv[4] ?? 1);
// Images per step: 1 = one device's share of the paper's batch 4 over 4 GPUs (CAT-Seg / DEDOS).
const batch = Number(process.argv[5] ?? 1);
setNumThreads(threads);

// A synthetic COCO-Stuff-171 train split: 640×480 JPEGs with block labels.
const root = mkdtempSync(join(tmpdir(), "dedos-bench-train-"));
const imageDir = join(root, "coco-stuff", "images", "train2017");
const gtDir = join(root, "coco-stuff", "annotations_detectron2", "train2017");
mkdirSync(imageDir, { recursive: true });
mkdirSync(gtDir, { recursive: true });
const [W, H] = [640, 480];
for (let k = 0; k < 16; k++) {
  const rgb = Buffer.alloc(W * H * 3);
  const label = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    const x = i % W;
    const y = Math.floor(i / W);
    rgb[3 * i] = (x * 7 + k * 31) & 255;
    rgb[3 * i + 1] = (y * 5 + x * y) & 255;
    rgb[3 * i + 2] = (k * 97 + y) & 255;
    label[i] = ((x >> 6) + (y >> 6) * 10 + k) % 171;
  }
  const name = String(k).padStart(12, "0");
  writeFileSync(
    join(imageDir, `${name}.jpg`),
    await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  await writeLabelMap(join(gtDir, `${name}.png`), { data: label, width: W, height: H });
}

const tc = trainPreset("vitb_384");
resetPeakRss();
const f = buildFullSize("vitb_384");
const model = f.model.train();
const setup = setupTrainable(model, tc.solver);
const optimizer = new AdamW(setup.groups);
const text = noGrad(() => model.textEmbeddings(loadClassNames(getBenchmark("cocostuff171")))).keep();
const loader = new DataLoader(SegmentationDataset.open({ root, benchmark: "cocostuff171", split: "train" }), {
  batchSize: batch,
  augment: {
    minSize: tc.data.minSize,
    maxSize: 1333,
    crop: [tc.data.crop, tc.data.crop],
    singleCategoryMaxArea: tc.data.singleCategoryMaxArea,
    colorAug: true,
    flip: true,
    padImage: 128,
    ignoreLabel: 255,
  },
  workers,
  seed: 0,
});

async function step(measureOverhead = false): Promise<{ ms: number; share?: number }> {
  const b = await loader.next();
  const run = () => {
    tidy(() => {
      const losses = model.trainingLosses(b.images, b.labels, text);
      optimizer.zeroGrad();
      totalLoss(losses).backward();
    });
    applyUpdate(setup, optimizer, tc.solver.gradClip);
  };
  const s = performance.now();
  let share: number | undefined;
  if (measureOverhead) share = bindingOverhead(run).share;
  else run();
  const ms = performance.now() - s;
  dispose([b.images, b.labels]);
  return { ms, share };
}

const times: number[] = [];
let share = 0;
for (let i = 0; i < steps; i++) {
  const r = await step(i === 1);
  if (i > 0) times.push(r.ms);
  if (r.share !== undefined) share = r.share;
  process.stderr.write(`step ${i + 1}/${steps}: ${(r.ms / 1000).toFixed(1)} s\n`);
}
const stats = loader.stats();
await loader.close();
const peak = peakRssMb();
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] ?? Number.NaN;
const out: Timing[] = [
  {
    name: `vitb_384 training step (batch ${batch}, 384², 171 classes)`,
    ms: median,
    peakRssMb: peak ?? undefined,
  },
];
const summary = {
  threads,
  steps,
  workers,
  batch,
  stepMs: times,
  medianStepMs: median,
  shareOutsideKernels: share,
  dataIdleShare: stats.idleShare,
  dataWaitMs: stats.steadyWaitMs,
  parameters: {
    trainable: setup.trainable,
    frozenInModel: setup.frozen,
    frozenStableDiffusion: f.sdParameters,
  },
  peakRssMb: peak,
};
report(
  `bench/train — ViT-B DEDOS, full-size random weights, ${threads} thread(s)`,
  out,
  null,
  "train.json",
  summary,
);
console.log(JSON.stringify(summary, null, 2));
text.dispose();
f.dispose();
rmSync(root, { recursive: true, force: true });
