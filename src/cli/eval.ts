// `dedos eval --dataset NAME --root DIR`: sliding-window evaluation with detectron2's metrics.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Segmenter } from "../api/segmenter.js";
import { BENCHMARK_NAMES, type BenchmarkSpec, getBenchmark } from "../data/benchmarks.js";
import { type BenchmarkEvaluation, evaluate, listSplit } from "../eval/evaluate.js";
import type { MiouDefinition } from "../eval/semseg-metrics.js";
import * as dist from "../torch/distributed.js";
import { Progress } from "../util/progress.js";
import { configOfWeight } from "../weights/index.js";
import { inProcessGroup, launchWorkers, parseLaunchFlags, shouldLaunch } from "./launch.js";
import { parseModelKind } from "./options.js";
import { weightsArg } from "./weight-args.js";

const HELP = `dedos eval --dataset NAME --root DIR [options] — mIoU on a prepared benchmark

  --dataset NAME        ${BENCHMARK_NAMES.join(", ")}
  --root DIR            datasets root (as given to dedos prepare) or the dataset folder itself
  --weights NAME|FILE   catseg-vitb / catseg-vitl (fetched into the cache on first use; dedos weights list),
                        a CAT-Seg checkpoint (model_final.pth) or DEDOS weights (model_final.safetensors);
                        none = random weights
  --sd NAME|DIR         Stable Diffusion 2-base: sd2-base (fetched on first use) or a folder in diffusers
                        layout (DEDOS reads it at inference)
  --model catseg|dedos  the architecture without weights (default catseg)
  --config NAME|FILE    vitb_384, vitl_336, or a JSON config (default: the one of a registered --weights
                        name, e.g. vitl_336 for catseg-vitl; else vitb_384)
  --window catseg|dedos sliding window (default catseg: kernel 384, overlap 1/3, plus a global view)
  --limit N             only the first N images (a quick look)
  --out DIR             where metrics.json, per_class_iou.csv and per_class_iou.md go (default out/eval/NAME)
  --save-predictions    also write a colour overlay of every prediction (DIR/predictions/)
  --miou d2-main|d2-v0.6  headline mIoU definition (both are always reported; default d2-main)
  --device cpu|cuda[:N]
  --nproc N             split the images over N processes (c10d, Gloo on CPU); confusion matrices are
                        summed, so the result equals one process's

Metrics follow detectron2's SemSegEvaluator exactly (ignore label per benchmark, VOC-20b background fold).

Example:
  dedos prepare ade150 --root ~/datasets
  dedos eval --dataset ade150 --root ~/datasets --weights catseg-vitb --limit 50
`;

type EvalValues = ReturnType<typeof parseEvalArgs>;

function parseEvalArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      dataset: { type: "string" },
      root: { type: "string" },
      weights: { type: "string" },
      sd: { type: "string" },
      model: { type: "string" },
      config: { type: "string" },
      window: { type: "string" },
      limit: { type: "string" },
      out: { type: "string" },
      "save-predictions": { type: "boolean" },
      miou: { type: "string" },
      device: { type: "string" },
      nproc: { type: "string" },
    },
  }).values;
}

/** The checked arguments of one evaluation. */
interface EvalRun {
  values: EvalValues;
  spec: BenchmarkSpec;
  root: string;
  limit: number | undefined;
  miou: MiouDefinition;
  window: "catseg" | "dedos";
  outDir: string;
}

export async function evalCommand(argv: string[]): Promise<number> {
  const values = parseEvalArgs(argv);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.dataset || !values.root) {
    console.error(`dedos eval: --dataset and --root are required\n\n${HELP}`);
    return 2;
  }
  const spec = getBenchmark(values.dataset);
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
    throw new Error(`--limit must be a positive integer`);
  const miou = (values.miou ?? "d2-main") as MiouDefinition;
  if (miou !== "d2-main" && miou !== "d2-v0.6") throw new Error("--miou must be d2-main or d2-v0.6");
  const window = values.window ?? "catseg";
  if (window !== "catseg" && window !== "dedos") throw new Error(`--window must be catseg or dedos`);
  const outDir = resolve(values.out ?? join("out", "eval", spec.name));
  mkdirSync(outDir, { recursive: true });

  // --nproc N: this process becomes the launcher; each worker runs this command with the c10d environment.
  const launch = parseLaunchFlags(values);
  if (shouldLaunch(launch)) {
    listSplit(spec, values.root); // fail here, once, if the folders are missing
    // Registered weight names are fetched here, once; the workers find them in the cache.
    await weightsArg(values.weights);
    await weightsArg(values.sd);
    await launchWorkers("eval", argv, launch, ["--out", outDir]);
    return 0;
  }
  const run: EvalRun = { values, spec, root: values.root, limit, miou, window, outDir };
  return inProcessGroup(() => evalProcess(run));
}

/** This process's part: its shard of the images, and on rank 0 the summary of the whole evaluation. */
async function evalProcess(a: EvalRun): Promise<number> {
  const { values, spec } = a;
  const rank = dist.isInitialized() ? dist.getRank() : 0;
  const world = dist.isInitialized() ? dist.getWorldSize() : 1;
  const total = Math.min(listSplit(spec, a.root).length, a.limit ?? Number.POSITIVE_INFINITY); // checks the folders first
  if (!values.weights)
    console.log("NOTE: no --weights given — evaluating RANDOM weights (numbers are meaningless).");
  const seg = await Segmenter.create({
    // A registered weight's preset (none for a path; "" when the registry gives none: the file's own).
    config: values.config ?? (configOfWeight(values.weights) || undefined),
    weights: (await weightsArg(values.weights)) ?? "random",
    sd: await weightsArg(values.sd),
    model: parseModelKind(values.model),
    device: values.device,
    window: a.window,
  });
  const progress = new Progress(
    total,
    world > 1 ? `eval ${spec.name} (rank ${rank}/${world})` : `eval ${spec.name}`,
  );
  let r: BenchmarkEvaluation;
  try {
    r = await evaluate(seg, spec.name, a.root, {
      limit: a.limit,
      predictionsDir: values["save-predictions"] ? join(a.outDir, "predictions") : undefined,
      onImage: (ok) => progress.tick(ok),
      miou: a.miou,
      reportDir: a.outDir,
      weights: values.weights ?? "random",
    });
  } finally {
    await seg.dispose();
  }
  for (const f of r.failed) console.error(`dedos eval: ${f.file}: ${f.error}`);
  if (r.rank !== 0) return r.failed.length > 0 ? 1 : 0;
  const m = r.metrics;
  console.log(
    `${spec.title}: ${r.images} image(s)${r.worldSize > 1 ? ` over ${r.worldSize} processes` : ""} — mIoU ${m.mIoU.toFixed(2)} (${a.miou}), fwIoU ${m.fwIoU.toFixed(2)}, mACC ${m.mACC.toFixed(2)}, pACC ${m.pACC.toFixed(2)}`,
  );
  console.log(`wrote ${r.files.join(", ")}`);
  return r.failedImages > 0 ? 1 : 0;
}
