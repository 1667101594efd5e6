// `dedos train`: trains DEDOS (or CAT-Seg with `--set model.enabled=false`) on a prepared dataset.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEDOS_PRESET_NAMES } from "../dedos/config.js";
import * as dist from "../torch/distributed.js";
import { applyOverrides, type TrainConfig, trainPreset, upgradeTrainConfig } from "../train/config.js";
import { SIGNAL_EXIT_CODES, train } from "../train/trainer.js";
import { checkConfigShape } from "../util/config-shape.js";
import { configOfWeight } from "../weights/index.js";
import { inProcessGroup, launchWorkers, parseLaunchFlags, shouldLaunch } from "./launch.js";
import { weightsArg } from "./weight-args.js";

const HELP = `dedos train --data DIR --out DIR [options] — train DEDOS on a prepared dataset

  --config NAME|FILE   ${DEDOS_PRESET_NAMES.join(", ")} (default: the one of --catseg / --clip when it is a
                       registered name, else vitb_384), or a config.json of an earlier run (checked field
                       by field: missing, unknown and mistyped fields are named)
  --data DIR           datasets root holding the prepared training set (dedos prepare cocostuff171 --split train)
  --out DIR            run folder: config.json, metrics.jsonl, checkpoints/, model_final.safetensors
  --set PATH=VALUE     override a config field (repeatable), e.g. --set solver.lr=1e-4
                       --set solver.maxIter=1000 --set data.batchSize=8 --set model.head=cost-aggregation
  --sd NAME|DIR         Stable Diffusion 2-base: sd2-base (fetched into the cache on first use) or a folder in
                       diffusers layout (needed unless --set model.proxy.conditioning=static
                       --set model.consistency.enabled=false)
  --clip NAME|FILE     OpenAI CLIP weights to start from: clip-vitb16 / clip-vitl14-336, or a file
                       (ViT-B-16.pt / ViT-L-14-336px.pt)
  --catseg NAME|FILE   or a CAT-Seg checkpoint (CLIP and the cost-aggregation head) to start from:
                       catseg-vitb / catseg-vitl, or a file (model_base.pth)
  --weights NAME|FILE  or DEDOS weights (model_final.safetensors of an earlier run) to fine-tune
                       (names are fetched and verified once, then cached: dedos weights list)
  --resume             continue from the newest checkpoint in --out (weights, optimizer, schedule, RNG, data)
  --resume-fallback    with --resume: if the latest checkpoint is damaged, continue from the newest intact one
                       (the damaged one is kept as iter_….damaged)
  --nproc N            data parallel over N processes (c10d: Gloo on CPU); the batch is split between them
  --nnodes M --node-rank R --master-addr HOST --master-port PORT
                       several machines: run the same command on each (R = 0…M−1); node 0's HOST:PORT
                       is the rendezvous. (Or start one process per device yourself with DEDOS_RANK,
                       DEDOS_WORLD_SIZE, DEDOS_MASTER_ADDR and DEDOS_MASTER_PORT set.)
  --max-steps N        stop after N iterations of this run (the schedule still ends at solver.maxIter)
  --device cpu|cuda[:N]  where to train (default cpu); mixed precision: --set solver.amp=bf16 (CPU or CUDA)
                       or --set solver.amp=fp16 (CUDA, with dynamic loss scaling)

Periodic evaluation: --set train.evalEvery=5000 --set train.evalDataset=ade150 [--set train.evalLimit=200]
evaluates the prepared benchmark under --data during training (logged to the console and metrics.jsonl).

The effective config is printed at start and saved with every checkpoint. Progress (it/s, ETA, losses) goes
to the console and to metrics.jsonl. A NaN loss stops the run with the newest checkpoint intact.

Faults: one run at a time per --out (a second is refused while <out>/.lock names a live process; a lock
left by a killed run is taken over). Ctrl-C (SIGINT) or SIGTERM stops after the current step, finishing a
checkpoint being written; exit code 130 / 143 (again to exit at once). A sample whose image or label fails
to load is skipped with a warning; more than data.maxBadSamples distinct ones (default 10; or a fraction
of the training set, e.g. --set data.maxBadSamples=0.001; 0 = none) stop the run. A failed write (disk
full) stops the run naming the file; the previous checkpoint stays intact.

Example:
  dedos prepare cocostuff171 --root ~/datasets --split train
  dedos train --data ~/datasets --out runs/dedos-b --sd sd2-base --catseg catseg-vitb --nproc 2
`;

function parseTrainArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      config: { type: "string" },
      data: { type: "string" },
      out: { type: "string" },
      set: { type: "string", multiple: true },
      sd: { type: "string" },
      clip: { type: "string" },
      catseg: { type: "string" },
      weights: { type: "string" },
      resume: { type: "boolean" },
      "resume-fallback": { type: "boolean" },
      nproc: { type: "string" },
      nnodes: { type: "string" },
      "node-rank": { type: "string" },
      "master-addr": { type: "string" },
      "master-port": { type: "string" },
      "max-steps": { type: "string" },
      device: { type: "string" },
    },
  }).values;
}

export async function trainCommand(argv: string[]): Promise<number> {
  const values = parseTrainArgs(argv);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.data || !values.out) {
    console.error(`dedos train: --data and --out are required\n\n${HELP}`);
    return 2;
  }
  if (values["resume-fallback"] && !values.resume) {
    console.error("dedos train: --resume-fallback goes with --resume");
    return 2;
  }
  const config = loadConfig(values.config ?? configOfWeights(values) ?? "vitb_384", values.set ?? []);
  const launch = parseLaunchFlags(values);
  const maxSteps = values["max-steps"] === undefined ? undefined : Number(values["max-steps"]);
  if (maxSteps !== undefined && !(Number.isInteger(maxSteps) && maxSteps > 0))
    throw new Error("--max-steps must be a positive integer");
  // Registered names are fetched here, once (in a launcher, before its workers start; they then find them
  // in the cache).
  const weights = {
    dedos: await weightsArg(values.weights),
    catseg: await weightsArg(values.catseg),
    clip: await weightsArg(values.clip),
  };
  const sd = await weightsArg(values.sd);
  if (shouldLaunch(launch)) return launchTrainWorkers(argv, launch);

  const data = values.data;
  const out = values.out;
  return inProcessGroup(async () => {
    if (!values.clip && !values.catseg && !values.weights && !values.resume)
      console.error("NOTE: no --clip, --catseg or --weights: training from RANDOM CLIP weights.");
    const r = await train({
      config,
      out: resolve(out),
      dataRoot: resolve(data),
      resume: values.resume,
      resumeFallback: values["resume-fallback"],
      weights,
      diffusion: sd,
      stopAfter: maxSteps,
      device: values.device,
      handleSignals: true,
    });
    const rank0 = !dist.isInitialized() || dist.getRank() === 0;
    if (r.interrupted) {
      if (rank0)
        console.error(
          `dedos train: interrupted by ${r.interrupted} at iteration ${r.iteration}/${config.solver.maxIter}; ` +
            (r.checkpoint
              ? `the newest checkpoint is ${r.checkpoint} (continue with --resume)`
              : "no checkpoint was written yet"),
        );
      return SIGNAL_EXIT_CODES[r.interrupted];
    }
    if (rank0)
      console.log(
        `stopped at iteration ${r.iteration}/${config.solver.maxIter}; checkpoint ${r.checkpoint ?? "none"}; ` +
          `data idle ${(r.dataIdleShare * 100).toFixed(1)}%` +
          (r.skippedSamples > 0 ? `; ${r.skippedSamples} sample(s) skipped` : ""),
      );
    return 0;
  });
}

/**
 * The launcher's part: the workers get Ctrl-C from the terminal themselves (same process group) and stop
 * together; the launcher waits for them meanwhile and exits with their code (130 / 143).
 */
async function launchTrainWorkers(
  argv: string[],
  launch: ReturnType<typeof parseLaunchFlags>,
): Promise<number> {
  const wait = () => console.error("dedos train: SIGINT: waiting for the workers to stop");
  process.on("SIGINT", wait);
  try {
    return await launchWorkers("train", argv, launch);
  } catch (e) {
    if (e instanceof dist.WorkerFailedError) {
      const codes = new Set(e.exits.filter((x) => x.code !== 0).map((x) => x.code));
      for (const code of Object.values(SIGNAL_EXIT_CODES))
        if (codes.size === 1 && codes.has(code)) {
          console.error(`dedos train: the workers were interrupted (exit code ${code})`);
          return code;
        }
    }
    throw e;
  } finally {
    process.off("SIGINT", wait);
  }
}

/** The preset of a registered --catseg / --clip weight name (catseg-vitl → vitl_336), if any. */
function configOfWeights(v: { catseg?: string; clip?: string; weights?: string }): string | undefined {
  const CLIP_PRESETS: Record<string, string> = { "ViT-B/16": "vitb_384", "ViT-L/14@336px": "vitl_336" };
  const catseg = configOfWeight(v.catseg);
  if (catseg && DEDOS_PRESET_NAMES.includes(catseg as (typeof DEDOS_PRESET_NAMES)[number])) return catseg;
  const clip = configOfWeight(v.clip);
  return clip ? CLIP_PRESETS[clip] : undefined;
}

/**
 * A preset with overrides, or a config.json (of an earlier run): read, brought to the current fields
 * (upgradeTrainConfig: the model's upgrade, defaults of fields added since) and checked field by field
 * against a preset, so that a wrong shape is named instead of failing later as "Cannot read properties of
 * undefined".
 */
function loadConfig(name: string, overrides: readonly string[]): TrainConfig {
  if (!name.endsWith(".json") && !existsSync(name)) return trainPreset(name, overrides);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(name, "utf8"));
  } catch (e) {
    throw new Error(`${name}: cannot read the training config (${(e as Error).message})`);
  }
  const config = checkConfigShape(upgradeTrainConfig(raw), trainPreset("vitb_384"), name);
  return applyOverrides(config, overrides);
}
