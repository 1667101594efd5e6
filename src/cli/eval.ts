// `dedos eval --dataset NAME --root DIR`: sliding-window evaluation with detectron2's metrics.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Segmenter } from "../api/segmenter.js";
import { parseModelKind } from "./options.js";
import { BENCHMARK_NAMES, getBenchmark } from "../data/benchmarks.js";
import { evaluateShard, listSplit } from "../eval/evaluate.js";
import { writeEvalReport } from "../eval/report.js";
import { ConfusionMatrix, computeMetrics, type MiouDefinition } from "../eval/semseg-metrics.js";
import { dist, tensor } from "../torch/index.js";
import { Progress } from "../util/progress.js";

const HELP = `dedos eval --dataset NAME --root DIR [options] — mIoU on a prepared benchmark

  --dataset NAME        ${BENCHMARK_NAMES.join(", ")}
  --root DIR            datasets root (as given to dedos prepare) or the dataset folder itself
  --weights FILE        CAT-Seg checkpoint (model_final.pth) or DEDOS weights (model_final.safetensors);
                        none = random weights
  --sd DIR              Stable Diffusion 2-base in diffusers layout (DEDOS reads it at inference)
  --model catseg|dedos  the architecture without weights (default catseg)
  --config NAME|FILE    vitb_384 (default), vitl_336, or a JSON config
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
  dedos eval --dataset ade150 --root ~/datasets --weights model_final.pth --limit 50
`;

export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
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
  });
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
  const nproc = Number(values.nproc ?? 1);
  if (!(Number.isInteger(nproc) && nproc >= 1)) throw new Error("--nproc must be a positive integer");
  const isWorker = process.env.DEDOS_WORLD_SIZE !== undefined;
  if (nproc > 1 && !isWorker) {
    listSplit(spec, values.root); // fail here, once, if the folders are missing
    const args = argv.filter(
      (a, i) => a !== "--nproc" && argv[i - 1] !== "--nproc" && !a.startsWith("--nproc="),
    );
    await dist.spawnWorkers(process.argv[1]!, ["eval", ...args, "--out", outDir], { nproc });
    return 0;
  }
  if (isWorker) dist.initProcessGroup();
  const rank = isWorker ? dist.getRank() : 0;
  const world = isWorker ? dist.getWorldSize() : 1;

  const total = Math.min(listSplit(spec, values.root).length, limit ?? Number.POSITIVE_INFINITY); // checks the folders first
  if (!values.weights)
    console.log("NOTE: no --weights given — evaluating RANDOM weights (numbers are meaningless).");
  const seg = Segmenter.create({
    config: values.config,
    weights: values.weights ?? "random",
    sd: values.sd,
    model: parseModelKind(values.model),
    device: values.device,
    window,
  });
  const progress = new Progress(
    total,
    world > 1 ? `eval ${spec.name} (rank ${rank}/${world})` : `eval ${spec.name}`,
  );
  let shard: Awaited<ReturnType<typeof evaluateShard>>;
  try {
    shard = await evaluateShard(seg, spec.name, values.root, {
      limit,
      rank,
      worldSize: world,
      predictionsDir: values["save-predictions"] ? join(outDir, "predictions") : undefined,
      onImage: (ok) => progress.tick(ok),
    });
  } finally {
    seg.dispose();
  }
  for (const f of shard.failed) console.error(`dedos eval: ${f.file}: ${f.error}`);
  let conf = shard.conf;
  let images = shard.images;
  let failed = shard.failed.length;
  if (world > 1) {
    // Sum the shards' confusion matrices (int64: exact) and counts over the process group.
    const counts = tensor(conf.toBigInt64Array(), undefined, { dtype: "int64" });
    const tally = tensor(new BigInt64Array([BigInt(images), BigInt(failed)]), undefined, { dtype: "int64" });
    dist.allReduce(counts, "sum");
    dist.allReduce(tally, "sum");
    conf = ConfusionMatrix.fromCounts(
      conf.numClasses,
      conf.ignoreLabel,
      counts.intoTypedArray() as BigInt64Array,
    );
    [images, failed] = tally.toArray() as [number, number];
    tally.dispose();
    dist.destroyProcessGroup();
    if (rank !== 0) return shard.failed.length > 0 ? 1 : 0;
  }
  const metrics = computeMetrics(conf, { miou });
  const N = spec.numClasses;
  const gtPixels = Array.from({ length: N }, (_, g) => {
    let s = 0;
    for (let p = 0; p <= N; p++) s += conf.get(p, g);
    return s;
  });
  const names = spec.foldBackground
    ? [...shard.classNames.slice(0, N - 1), "background"]
    : shard.classNames.slice(0, N);
  const files = writeEvalReport(outDir, {
    benchmark: spec.name,
    images,
    weights: values.weights ?? "random",
    metrics,
    classNames: names,
    gtPixels,
  });
  console.log(
    `${spec.title}: ${images} image(s)${world > 1 ? ` over ${world} processes` : ""} — mIoU ${metrics.mIoU.toFixed(2)} (${miou}), fwIoU ${metrics.fwIoU.toFixed(2)}, mACC ${metrics.mACC.toFixed(2)}, pACC ${metrics.pACC.toFixed(2)}`,
  );
  console.log(`wrote ${files.join(", ")}`);
  return failed > 0 ? 1 : 0;
}
