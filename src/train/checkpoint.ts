// Training checkpoints: written atomically and kept to the last K.
//
//   <dir>/iter_0000100/model.safetensors      every tensor of the model (config in the metadata)
//                      optimizer.safetensors  AdamW moments per parameter (by parameter name)
//                      state.json             iteration, optimizer steps, RNG and data-loader state, config
//   <dir>/last_checkpoint                     the name of the newest complete checkpoint
//
// A checkpoint is assembled in a temporary folder and renamed into place only once every file is written
// and synced; `last_checkpoint` is replaced atomically after that. A process killed at any moment leaves
// either the previous checkpoint as the latest or the new one, never a half-written one.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { loadCheckpoint, saveSafetensors } from "../torch/io/load.js";
import type { Module } from "../torch/nn/module.js";
import type { AdamW, ParamState } from "../torch/optim.js";
import { dispose, type Tensor, tensor } from "../torch/tensor.js";
import { fsyncPath, writeFileAtomicSync } from "../util/fs.js";

export const LAST_CHECKPOINT = "last_checkpoint";
const NAME = /^iter_(\d+)$/;

export interface TrainingState {
  /** Iterations completed. */
  iteration: number;
  /** Everything else the trainer needs to continue exactly (RNG states, loader position, …): JSON. */
  extra: Record<string, unknown>;
}

export interface SaveCheckpointOptions {
  dir: string;
  model: Module;
  optimizer: AdamW;
  /** Parameter names of every optimizer group, in group order (the optimizer state is keyed by them). */
  paramNames: string[][];
  state: TrainingState;
  /** Saved with the model as safetensors metadata and in state.json. */
  config: unknown;
  /** Checkpoints to keep (older ones are deleted after the new one is in place); 0 keeps all. */
  keep: number;
}

export function checkpointName(iteration: number): string {
  return `iter_${String(iteration).padStart(7, "0")}`;
}

/** Writes a checkpoint of `iteration` atomically; returns its folder. */
export function saveCheckpoint(o: SaveCheckpointOptions): string {
  mkdirSync(o.dir, { recursive: true });
  const name = checkpointName(o.state.iteration);
  const final = join(o.dir, name);
  const tmp = join(o.dir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const configJson = JSON.stringify(o.config);
  saveSafetensors(join(tmp, "model.safetensors"), o.model.stateDict(), { config: configJson });

  const states = o.optimizer.getState();
  const flatNames = o.paramNames.flat();
  const tensors = new Map<string, Tensor>();
  const steps: Record<string, number> = {};
  try {
    states.forEach((s, i) => {
      if (!s) return;
      const n = flatNames[i]!;
      if (s.step !== undefined) steps[n] = s.step;
      for (const [k, v] of Object.entries(s)) if (k !== "step" && v) tensors.set(`${n}::${k}`, v as Tensor);
    });
    saveSafetensors(join(tmp, "optimizer.safetensors"), tensors);
  } finally {
    dispose([...tensors.values()]);
  }
  writeFileAtomicSync(
    join(tmp, "state.json"),
    Buffer.from(
      JSON.stringify(
        { iteration: o.state.iteration, steps, extra: o.state.extra, config: o.config },
        null,
        1,
      ),
    ),
  );
  fsyncPath(tmp);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  fsyncPath(o.dir);
  writeFileAtomicSync(join(o.dir, LAST_CHECKPOINT), Buffer.from(`${name}\n`));
  if (o.keep > 0) {
    const all = listCheckpoints(o.dir);
    for (const old of all.slice(0, Math.max(0, all.length - o.keep)))
      rmSync(join(o.dir, checkpointName(old)), { recursive: true, force: true });
  }
  return final;
}

/** Iterations of the complete checkpoints in `dir`, ascending. */
export function listCheckpoints(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((n) => NAME.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The newest complete checkpoint folder (by `last_checkpoint`), or null. */
export function latestCheckpoint(dir: string): string | null {
  const pointer = join(dir, LAST_CHECKPOINT);
  if (!existsSync(pointer)) return null;
  const name = readFileSync(pointer, "utf8").trim();
  const folder = join(dir, name);
  if (!existsSync(join(folder, "state.json")))
    throw new Error(`${pointer} names ${name}, which has no state.json: the checkpoint folder is damaged`);
  return folder;
}

export interface LoadedTrainingState extends TrainingState {
  config: unknown;
}

/**
 * Restores model weights (strict), optimizer state (by parameter name) and returns the training state.
 */
export function loadCheckpointInto(
  folder: string,
  model: Module,
  optimizer: AdamW | null,
  paramNames: string[][],
): LoadedTrainingState {
  const state = JSON.parse(readFileSync(join(folder, "state.json"), "utf8")) as {
    iteration: number;
    steps: Record<string, number>;
    extra: Record<string, unknown>;
    config: unknown;
  };
  const weights = loadCheckpoint(join(folder, "model.safetensors"));
  try {
    model.loadStateDict(weights.tensors, { strict: true, source: join(folder, "model.safetensors") });
  } finally {
    dispose([...weights.tensors.values()]);
  }
  if (optimizer) {
    const opt = loadCheckpoint(join(folder, "optimizer.safetensors"));
    try {
      const names = paramNames.flat();
      const known = new Set(names);
      for (const k of opt.tensors.keys()) {
        const n = k.split("::")[0]!;
        if (!known.has(n))
          throw new Error(
            `${folder}: optimizer state for ${n}, which is not a trainable parameter of this run`,
          );
      }
      const states: (ParamState | null)[] = names.map((n) => {
        const step = state.steps[n];
        if (step === undefined) return null;
        const s: ParamState = { step };
        for (const k of ["expAvg", "expAvgSq", "maxExpAvgSq", "momentumBuffer"] as const) {
          const t = opt.tensors.get(`${n}::${k}`);
          if (t) s[k] = t.clone();
        }
        return s;
      });
      optimizer.setState(states);
      for (const s of states)
        if (s) dispose(Object.values(s).filter((v): v is Tensor => typeof v === "object"));
    } finally {
      dispose([...opt.tensors.values()]);
    }
  }
  return { iteration: state.iteration, extra: state.extra, config: state.config };
}

/** A uint8 tensor ↔ base64 (RNG states in state.json). */
export function tensorToBase64(t: Tensor): string {
  return Buffer.from(t.toTypedArray() as Uint8Array).toString("base64");
}
export function base64ToTensor(s: string): Tensor {
  const b = Buffer.from(s, "base64");
  return tensor(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), [b.byteLength]);
}
