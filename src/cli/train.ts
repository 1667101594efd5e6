// `dedos train`: trains DEDOS (or CAT-Seg with `--set model.enabled=false`) on a prepared dataset.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEDOS_PRESET_NAMES, upgradeDedosConfig } from "../dedos/config.js";
import * as dist from "../torch/distributed.js";
import { applyOverrides, type TrainConfig, trainPreset } from "../train/config.js";
import { train } from "../train/trainer.js";
import { inProcessGroup, launchWorkers, parseLaunchFlags, shouldLaunch } from "./launch.js";

const HELP = `dedos train --data DIR --out DIR [options] — train DEDOS on a prepared dataset

  --config NAME|FILE   ${DEDOS_PRESET_NAMES.join(", ")} (default vitb_384), or a config.json of an earlier run
  --data DIR           datasets root holding the prepared training set (dedos prepare cocostuff171 --split train)
  --out DIR            run folder: config.json, metrics.jsonl, checkpoints/, model_final.safetensors
  --set PATH=VALUE     override a config field (repeatable), e.g. --set solver.lr=1e-4
                       --set solver.maxIter=1000 --set data.batchSize=8 --set model.head=cost-aggregation
  --sd DIR             Stable Diffusion 2-base in diffusers layout (needed unless
                       --set model.proxy.conditioning=static --set model.consistency.enabled=false)
  --clip FILE          OpenAI CLIP weights to start from (ViT-B-16.pt / ViT-L-14-336px.pt)
  --catseg FILE        or a CAT-Seg checkpoint (CLIP and the cost-aggregation head) to start from
  --weights FILE       or a DEDOS weights file (model_final.safetensors) to fine-tune
  --resume             continue from the newest checkpoint in --out (weights, optimizer, schedule, RNG, data)
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

Example:
  dedos prepare cocostuff171 --root ~/datasets --split train
  dedos train --data ~/datasets --out runs/dedos-b --sd ~/sd-2-base --clip ~/ViT-B-16.pt --nproc 2
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
  const config = loadConfig(values.config ?? "vitb_384", values.set ?? []);
  const launch = parseLaunchFlags(values);
  const maxSteps = values["max-steps"] === undefined ? undefined : Number(values["max-steps"]);
  if (maxSteps !== undefined && !(Number.isInteger(maxSteps) && maxSteps > 0))
    throw new Error("--max-steps must be a positive integer");
  if (shouldLaunch(launch)) return launchWorkers("train", argv, launch);

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
      weights: { dedos: values.weights, catseg: values.catseg, clip: values.clip },
      diffusion: values.sd,
      stopAfter: maxSteps,
      device: values.device,
    });
    if (!dist.isInitialized() || dist.getRank() === 0)
      console.log(
        `stopped at iteration ${r.iteration}/${config.solver.maxIter}; checkpoint ${r.checkpoint ?? "none"}; ` +
          `data idle ${(r.dataIdleShare * 100).toFixed(1)}%`,
      );
    return 0;
  });
}

function loadConfig(name: string, overrides: readonly string[]): TrainConfig {
  if (!name.endsWith(".json")) return trainPreset(name, overrides);
  let config: TrainConfig;
  try {
    config = JSON.parse(readFileSync(name, "utf8")) as TrainConfig;
  } catch (e) {
    throw new Error(`${name}: cannot read the training config (${(e as Error).message})`);
  }
  config.model = upgradeDedosConfig(config.model);
  return applyOverrides(config, overrides);
}
