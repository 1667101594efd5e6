// bench/segment: CAT-Seg ViT-B/16 (`vitb_384`, random full-size weights, fp32, no grad) end to end on one
// 640-px photo with the ADE-150 and ADE-847 class lists, and one aggregation layer against PyTorch.
//   node dist/bench/segment.js [threads] [rounds] [--only=layer|segment] [--cases=layer,class,…] [--reps=3]
//     [--warmup=1]
//
// 1. Aggregation layer (bench/reference/aggregator.py, python3-torch, same ops): `AggregatorLayer.forward`
//    at the head's real shapes (B 1, T 256 = pad_len, hidden 128, 24×24, window 12, 4 heads, guidance 128 /
//    128, class pooling 1×1 as at test time), and its sub-blocks on both sides: the Swin pair, each Swin
//    block, the class layer and its linear attention alone. Repeated `rounds` times (reference, then ours),
//    since the machine is shared; the table shows every round, and the JSON keeps each round's ratio.
// 2. Segmentation: `segmentTensor(model, image, text, {output: "labels"})` (CAT-Seg sliding window: 4
//    windows of 384 + the global view) once per class list — a run is far above 20 s — with the share of
//    time outside libtorch kernels from `bindingOverhead` (counted during that same run), the process peak
//    RSS over the run (VmHWM reset just before; it includes the model's weights), and the text embedding
//    (`model.textEmbeddings`, no cache) timed separately.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { AggregatorLayer, linearAttention } from "../src/catseg/aggregator.js";
import { catSegPreset } from "../src/catseg/config.js";
import { segmentTensor } from "../src/catseg/inference.js";
import { CatSegModel } from "../src/catseg/model.js";
import { readImageRGB } from "../src/data/image-decode.js";
import { imageToTensor } from "../src/data/image-tensor.js";
import { dispose, Generator, noGrad, randn, setNumThreads, type Tensor, tidy } from "../src/torch/index.js";
import * as bench from "./common.js";

const threads = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 3);
const opt = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
const only = opt("only");
/** Layer cases to run (keys of `names` below; default all) and their repetitions. */
const caseKeys = opt("cases")?.split(",");
const layerReps = Number(opt("reps") ?? 3);
const layerWarmup = Number(opt("warmup") ?? 1);
setNumThreads(threads);

const config = catSegPreset("vitb_384");
const agg = config.aggregator;
const out: bench.Timing[] = [];
const extra: Record<string, unknown> = { threads };
/** The reference's times keyed by our row names (null when it could not run or the section was skipped). */
let layerRef: Record<string, number> | null = null;

/** Median ms and peak RSS of `fn` (VmHWM reset first). */
function measure(name: string, fn: () => void, reps: number, warmup: number): bench.Timing {
  const reset = bench.resetPeakRss();
  const ms = bench.timeMedian(fn, reps, warmup);
  const peak = reset ? bench.peakRssMb() : null;
  return { name, ms, ...(peak !== null ? { peakRssMb: peak } : {}) };
}

// ---------------------------------------------------------------------------------------------------------
// 1. One aggregation layer against PyTorch

if (only !== "segment") {
  const [B, T, C, H, W] = [1, agg.padLen, agg.hiddenDim, ...agg.featureResolution] as const;
  const shape = `B${B} T${T} C${C} ${H}×${W}`;
  const names = {
    layer: `AggregatorLayer.forward (${shape}, win ${agg.windowSize}, ${agg.nheads} heads)`,
    swin: "  Swin pair (swin_block.forward)",
    block1: "    block_1 (windows)",
    block2: "    block_2 (shifted windows + mask)",
    class: "  class layer (attention.forward, pool 1×1)",
    linattn: `    linear attention alone (${B * H * W}×${T}×${agg.nheads}×${C / agg.nheads})`,
  };
  const reps = layerReps;
  const warmup = layerWarmup;
  const specFile = join(tmpdir(), `dedos-bench-segment-${process.pid}.json`);
  writeFileSync(
    specFile,
    JSON.stringify({
      B,
      T,
      C,
      H,
      W,
      window: agg.windowSize,
      heads: agg.nheads,
      appearanceDim: agg.appearanceGuidanceProjDim,
      textDim: agg.textGuidanceProjDim,
      reps,
      warmup,
      names,
      only: caseKeys?.map((k) => names[k as keyof typeof names]),
      rssKey: bench.RSS_KEY,
    }),
  );

  const gen = new Generator(0);
  const layer = new AggregatorLayer(agg, { generator: gen }).eval();
  const x = randn([B, C, T, H, W], { generator: gen });
  const ag = randn([B, agg.appearanceGuidanceProjDim, H, W], { generator: gen });
  const tg = randn([B, T, agg.textGuidanceProjDim], { generator: gen });
  const pool: [number, number] = [1, 1];
  const sw = layer.swin_block;
  // The Swin blocks' inputs exactly as SwinTransformerBlockWrapper.forward prepares them.
  const { tokens, g, y1, afterSwin } = noGrad(() =>
    tidy(() => {
      const tokens = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C);
      const Cg = ag.size(1);
      const normed = sw.guidance_norm!.forward(ag.permute(0, 2, 3, 1).reshape(B, 1, H * W, Cg));
      const g = normed.expand(B, T, H * W, Cg).reshape(B * T, H * W, Cg);
      return { tokens, g, y1: sw.block_1.forward(tokens, g), afterSwin: sw.forward(x, ag) };
    }),
  );
  const hd = C / agg.nheads;
  const [ql, kl, vl] = [0, 1, 2].map(() => randn([B * H * W, T, agg.nheads, hd], { generator: gen })) as [
    Tensor,
    Tensor,
    Tensor,
  ];
  const run = (f: () => Tensor) => () => noGrad(() => tidy(() => void f()));
  const cases = (
    [
      ["layer", run(() => layer.forward(x, ag, tg, pool))],
      ["swin", run(() => sw.forward(x, ag))],
      ["block1", run(() => sw.block_1.forward(tokens, g))],
      ["block2", run(() => sw.block_2.forward(y1, g))],
      ["class", run(() => layer.attention.forward(afterSwin, tg, pool))],
      ["linattn", run(() => linearAttention(ql, kl, vl))],
    ] as [keyof typeof names, () => void][]
  )
    .filter(([k]) => !caseKeys || caseKeys.includes(k))
    .map(([k, f]) => [names[k], f] as const);

  const perRound: Record<string, { dedosMs: number; pytorchMs: number | null; ratio: number | null }[]> = {};
  let ref: Record<string, number> | null = {};
  for (let r = 0; r < rounds; r++) {
    const py = bench.runPythonReference("bench/reference/aggregator.py", threads, [specFile]);
    if (!py) ref = null;
    for (const [name, fn] of cases) {
      const t = measure(name, fn, reps, warmup);
      const label = `${name} [round ${r + 1}]`;
      out.push({ ...t, name: label });
      const p = py?.[name];
      if (ref && p !== undefined) {
        ref[label] = p;
        const rss = py?.[name + bench.RSS_KEY];
        if (rss !== undefined) ref[label + bench.RSS_KEY] = rss;
      }
      perRound[name] ??= [];
      perRound[name].push({ dedosMs: t.ms, pytorchMs: p ?? null, ratio: p ? t.ms / p : null });
    }
  }
  rmSync(specFile, { force: true });
  extra.aggregatorLayer = perRound;
  dispose([layer, x, ag, tg, tokens, g, y1, afterSwin, ql, kl, vl]);
  if (only === "layer") {
    bench.report(
      `bench/segment — CAT-Seg aggregation layer vs PyTorch, ${threads} thread(s), fp32, medians of ${reps}`,
      out,
      ref,
      "segment-layer.json",
      extra,
    );
    process.exit(0);
  }
  layerRef = ref;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Segmentation end to end

const imageFile = "assets/images/astronaut.png";
const SIDE = 640;
// The bundled photo resized so that its shorter side is 640 (segmentTensor's own resize is then a no-op).
const resized = await sharp(imageFile).resize({ width: SIDE, height: SIDE, fit: "outside" }).png().toBuffer();
const rgb = await readImageRGB(resized);
const image = imageToTensor(rgb);
const baseRss = bench.rssMb();
const model = new CatSegModel(config, { generator: new Generator(0) }).eval();
const modelRss = bench.rssMb();
const segRows: Record<string, unknown>[] = [];

// Warm-up: one view through CLIP and the head (first-touch allocations, kernel selection).
noGrad(() =>
  tidy(() => {
    const text = model.textEmbeddings(["person", "sky"], { cache: false });
    const f = model.encodeImage(randn([1, 3, 384, 384]).mul(60).add(120));
    model.head(f, text, {});
  }),
);

for (const list of ["ade150", "ade847"]) {
  const names = JSON.parse(readFileSync(`assets/classes/${list}.json`, "utf8")) as string[];
  const T = names.length;
  // Text embedding, separately (without the result cache, so the CLIP text tower really runs).
  let text: Tensor | undefined;
  const ts = performance.now();
  noGrad(() => {
    text = model.textEmbeddings(names, { cache: false });
  });
  const textMs = performance.now() - ts;
  out.push({ name: `text embeddings, ${T} classes (model.textEmbeddings)`, ms: textMs });

  // The segmentation, once, counting addon calls for the overhead estimate.
  const reset = bench.resetPeakRss();
  let windows: unknown;
  let labelsShape: number[] = [];
  const ov = bench.bindingOverhead(() => {
    const r = segmentTensor(model, image, text!, { output: "labels" });
    windows = r.windows;
    labelsShape = r.labels!.shape;
    r.labels!.dispose();
  });
  const peak = reset ? bench.peakRssMb() : null;
  text!.dispose();
  out.push({
    name: `segment ${rgb.width}×${rgb.height}, ${T} classes (sliding window, labels)`,
    ms: ov.wallMs,
    ...(peak !== null ? { peakRssMb: peak } : {}),
  });
  const row = {
    classes: T,
    image: `${imageFile} resized to ${rgb.width}×${rgb.height}`,
    labels: labelsShape,
    windows,
    wallMs: ov.wallMs,
    textEmbeddingMs: textMs,
    peakRssMb: peak,
    addonCalls: ov.calls,
    perCallUs: ov.perCallUs,
    overheadShare: ov.share,
  };
  segRows.push(row);
  console.log(
    `${list}: ${(ov.wallMs / 1e3).toFixed(1)} s, peak RSS ${peak?.toFixed(0)} MB, ${ov.calls} addon calls × ${ov.perCallUs.toFixed(2)} µs = ${(100 * ov.share).toFixed(3)}% outside kernels; text ${textMs.toFixed(0)} ms`,
  );
}
image.dispose();
model.dispose();
extra.segment = segRows;
extra.rssMb = { beforeModel: baseRss, afterModel: modelRss };

bench.report(
  `bench/segment — CAT-Seg vitb_384 random weights, ${threads} thread(s), fp32; aggregation layer vs PyTorch`,
  out,
  layerRef,
  "segment.json",
  extra,
);
