// bench/clip: the CLIP towers at full ViT-B/16 size (random weights, fp32, batch 1, no grad) as CAT-Seg /
// DEDOS run them, against the same computation in PyTorch (python3-torch) in the same run.
//   node dist/bench/clip.js [threads]
// Cases: the image tower at 384² in dense mode with the guidance taps; the text tower on the 171 COCO-Stuff
// class prompts from token ids (plus tokenisation and the whole embedClassNames path, ours only). Peak RSS
// is the kernel's VmHWM over each case's timed runs (reset through /proc/self/clear_refs) on both sides.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLIP_PRESETS } from "../src/clip/config.js";
import { ClipModel } from "../src/clip/model.js";
import { DEFAULT_TEMPLATE, embedClassNames, fillTemplate } from "../src/clip/prompts.js";
import { ClipTokenizer } from "../src/clip/tokenizer.js";
import { dispose, Generator, noGrad, randn, setNumThreads, tensor, tidy } from "../src/torch/index.js";
import * as bench from "./common.js";

const threads = Number(process.argv[2] ?? 2);
setNumThreads(threads);
const preset = CLIP_PRESETS["ViT-B/16"];
const res = preset.clipResolution; // 384: grid 24×24, the positional embedding resized from 14×14
const grid = res / preset.vision.patchSize;
const classes = JSON.parse(readFileSync("assets/classes/coco.json", "utf8")) as string[];
const prompts = classes.map((c) => fillTemplate(DEFAULT_TEMPLATE, c.split(", ")[0]!));

// Token ids as encodeTexts builds them: one batch, cut after the longest row's EOT.
const tokenizer = ClipTokenizer.load();
const ctx = preset.text.contextLength;
const tok = tokenizer.tokenize(prompts, { contextLength: ctx });
const used = Math.max(...tok.eotIndex) + 1;
const idsRows: number[] = [];
for (let r = 0; r < prompts.length; r++) idsRows.push(...tok.ids.subarray(r * ctx, r * ctx + used));

const names = {
  vision: `vision ViT-B/16 ${res}² dense, taps [${preset.taps.join(", ")}] (${grid}×${grid}+1 tok)`,
  text: `text ${prompts.length}×${used} ids → features`,
};
const reps = { vision: [10, 2], text: [8, 2] } as const;

// The reference runs first, while this process is still small: a child's ru_maxrss can inherit the parent's
// peak across fork/exec, which would otherwise be our model's.
const specFile = join(tmpdir(), `dedos-bench-clip-${process.pid}.json`);
writeFileSync(
  specFile,
  JSON.stringify({
    vision: preset.vision,
    text: preset.text,
    resolution: res,
    taps: preset.taps,
    ids: idsRows,
    idsShape: [prompts.length, used],
    names,
    reps,
    rssKey: bench.RSS_KEY,
  }),
);
const ref = bench.runPythonReference("bench/reference/clip.py", threads, [specFile]);
rmSync(specFile, { force: true });

const out: bench.Timing[] = [];
const model = new ClipModel(preset, { generator: new Generator(0) }).eval();
const modelRss = bench.rssMb();

/** Median ms of `fn` and the peak RSS over its warm-up and timed runs (optionally turning the event loop). */
async function measure(name: string, fn: () => void, n: number, warmup: number, yielding = false) {
  const reset = bench.resetPeakRss();
  const ms = yielding ? await bench.timeMedianYielding(fn, n, warmup) : bench.timeMedian(fn, n, warmup);
  const peak = reset ? bench.peakRssMb() : null;
  out.push({ name, ms, ...(peak !== null ? { peakRssMb: peak } : {}) });
}

const g = new Generator(1);
const pixels = randn([1, 3, res, res], { generator: g });
const ids = tidy(() => tensor(Int32Array.from(idsRows), [prompts.length, used]).long());
const encodeVision = () =>
  noGrad(() =>
    tidy(() => {
      model.visual.forward(pixels, { dense: true, taps: preset.taps });
    }),
  );
const encodeText = () => noGrad(() => model.encodeText(ids).dispose());

// Random full-size weights must stay finite through 12 blocks (inf/NaN would change kernel speed).
noGrad(() =>
  tidy(() => {
    const v = model.visual.forward(pixels, { dense: true, taps: preset.taps }).tokens;
    const t = model.encodeText(ids);
    if (!v.isfinite().all().item() || !t.isfinite().all().item()) console.warn("warning: non-finite outputs");
  }),
);

await measure(names.vision, encodeVision, ...reps.vision);
// Diagnostic: the text case with the event loop turning between runs (dead handles finalised), measured
// before the plain synchronous row so that its peak RSS is not inflated by a heap that row may have grown.
const textYielding = `${names.text}, event loop turned between runs`;
await measure(textYielding, encodeText, ...reps.text, true);
await measure(names.text, encodeText, ...reps.text);

// Ours only: tokenisation (its word cache warm, then a fresh tokenizer each time) and the whole
// embedClassNames path (tokenise, encode, L2-normalise) without its result cache.
await measure(
  `tokenize ${prompts.length} prompts (warm cache)`,
  () => void tokenizer.tokenize(prompts),
  20,
  2,
);
{
  const t: number[] = [];
  for (let i = 0; i < 5; i++) {
    const fresh = ClipTokenizer.load();
    const s = process.hrtime.bigint();
    fresh.tokenize(prompts);
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  out.push({ name: `tokenize ${prompts.length} prompts (cold cache)`, ms: t[2]! });
}
await measure(
  `embedClassNames ${prompts.length} (no cache)`,
  () => noGrad(() => embedClassNames(model, tokenizer, classes, { cache: false }).dispose()),
  5,
  1,
);
dispose([pixels, ids]);

// PyTorch frees every tensor by reference counting: its text time stands for both text rows.
if (ref?.[names.text] !== undefined) {
  ref[textYielding] = ref[names.text];
  const rss = ref[names.text + bench.RSS_KEY];
  if (rss !== undefined) ref[textYielding + bench.RSS_KEY] = rss;
}

bench.report(
  `bench/clip — ViT-B/16 random weights, ${threads} thread(s), float32, batch 1, medians`,
  out,
  ref,
  "clip.json",
  {
    modelRssMb: { dedos: modelRss, pytorch: ref?.["model RSS MB"] ?? null },
    processPeakRssMb: {
      dedos: Math.max(...out.map((o) => o.peakRssMb ?? 0)),
      pytorchRuMaxrss: ref?.["ru_maxrss MB"] ?? null,
    },
  },
);
console.log(
  `model resident (both towers): dedos ${modelRss?.toFixed(0)} MB, PyTorch ${ref?.["model RSS MB"]?.toFixed(0) ?? "—"} MB; ` +
    `PyTorch ru_maxrss ${ref?.["ru_maxrss MB"]?.toFixed(0) ?? "—"} MB`,
);
