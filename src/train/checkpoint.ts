// Training checkpoints: written atomically and kept to the last K.
//
//   <dir>/iter_0000100/model.safetensors      every tensor of the model (config in the metadata)
//                      optimizer.safetensors  AdamW moments per parameter (by parameter name)
//                      state.json             iteration, optimizer steps, RNG and data-loader state, config
//   <dir>/last_checkpoint                     the name of the newest complete checkpoint
//
// A checkpoint is assembled in a temporary folder (`.tmp-iter_…-<pid>`) and renamed into place only once
// every file is written and synced; `last_checkpoint` is replaced atomically after that. A write that fails
// (a full disk, a file too large) removes the temporary folder and names the file it was writing; the
// previous checkpoint stays the latest. A process killed at any moment leaves either the previous checkpoint
// as the latest or the new one, never a half-written one; what a kill leaves of the temporary folder is
// removed when the next run starts (run-folder.ts).
//
// The pointer is written after the rename, so a kill between the two leaves a complete `iter_*` folder that
// `last_checkpoint` does not name yet (or, for a run's first checkpoint, no pointer at all).
// `latestCheckpoint` therefore does not trust the pointer alone: every checkpoint records when it was saved
// (`savedAt` in state.json), and a complete folder saved after the one the pointer names is the latest; with
// the pointer missing or naming a folder that is gone, the newest complete folder is. A complete folder is
// one with a state.json, the last file written before the rename.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { loadCheckpoint, saveSafetensors } from "../torch/io/load.js";
import type { Module } from "../torch/nn/module.js";
import type { AdamW, ParamState } from "../torch/optim.js";
import { dispose, type Tensor, tensor } from "../torch/tensor.js";
import { fsyncPath, writeFileAtomicSync } from "../util/fs.js";
import { fileWriteError } from "./run-folder.js";

export const LAST_CHECKPOINT = "last_checkpoint";
const NAME = /^iter_(\d+)$/;

/** A checkpoint that cannot be restored; `file` is the file at fault (state.json, model or optimizer). */
export class DamagedCheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = "DamagedCheckpointError";
  }
}

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

/**
 * Writes a checkpoint of `iteration` atomically; returns its folder. On failure the temporary folder is
 * removed and the error names the file being written and the cause (e.g. ENOSPC, the disk is full).
 */
export function saveCheckpoint(o: SaveCheckpointOptions): string {
  const name = checkpointName(o.state.iteration);
  const final = join(o.dir, name);
  const tmp = join(o.dir, `.tmp-${name}-${process.pid}`);
  let writing = o.dir;
  try {
    mkdirSync(o.dir, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    writing = tmp;
    mkdirSync(tmp);
    // Errors name the file as it will be called once in place (the temporary folder goes away).
    writeCheckpointFiles(o, tmp, (file) => {
      writing = join(final, basename(file));
    });
    writing = final;
    fsyncPath(tmp);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(o.dir);
    writing = join(o.dir, LAST_CHECKPOINT);
    writeFileAtomicSync(writing, Buffer.from(`${name}\n`));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw fileWriteError(writing, e, "checkpoint");
  }
  if (o.keep > 0) {
    // Only checkpoints up to this one compete for the K places: this one is never pruned, even when the
    // folder holds higher iterations of an earlier run.
    const upTo = listCheckpoints(o.dir).filter((i) => i <= o.state.iteration);
    for (const old of upTo.slice(0, Math.max(0, upTo.length - o.keep)))
      rmSync(join(o.dir, checkpointName(old)), { recursive: true, force: true });
  }
  return final;
}

/** The files of a checkpoint, written into `tmp`; `writing` is told each file before it is written. */
function writeCheckpointFiles(o: SaveCheckpointOptions, tmp: string, writing: (file: string) => void): void {
  const configJson = JSON.stringify(o.config);
  writing(join(tmp, "model.safetensors"));
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
    writing(join(tmp, "optimizer.safetensors"));
    saveSafetensors(join(tmp, "optimizer.safetensors"), tensors);
  } finally {
    dispose([...tensors.values()]);
  }
  const state: SavedState = {
    iteration: o.state.iteration,
    savedAt: Date.now(),
    steps,
    extra: o.state.extra,
    config: o.config,
  };
  writing(join(tmp, "state.json"));
  writeFileAtomicSync(join(tmp, "state.json"), Buffer.from(JSON.stringify(state, null, 1)));
}

/** state.json of a checkpoint. */
interface SavedState {
  iteration: number;
  /** When it was saved (ms since the epoch); absent in checkpoints of earlier versions. */
  savedAt?: number;
  steps: Record<string, number>;
  extra: Record<string, unknown>;
  config: unknown;
}

/** Reads and checks a checkpoint's state.json; a DamagedCheckpointError names it when it is not usable. */
export function readCheckpointState(folder: string): SavedState {
  const file = join(folder, "state.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : (e as Error).message;
    throw new DamagedCheckpointError(file, `unreadable (${why})`);
  }
  const bad = (why: string): never => {
    throw new DamagedCheckpointError(file, why);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("not a JSON object");
  const st = raw as Record<string, unknown>;
  const it = st.iteration;
  if (typeof it !== "number" || !Number.isSafeInteger(it) || it < 0)
    bad(`"iteration" must be a non-negative integer, got ${JSON.stringify(it) ?? "nothing"}`);
  if (st.savedAt !== undefined && typeof st.savedAt !== "number") bad(`"savedAt" must be a number`);
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(st.steps)) bad(`"steps" must be an object (optimizer steps by parameter name)`);
  for (const [k, v] of Object.entries(st.steps as Record<string, unknown>))
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
      bad(`"steps"."${k}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  if (!isObject(st.extra)) bad(`"extra" must be an object`);
  return st as unknown as SavedState;
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

/**
 * The newest complete checkpoint folder, or null: the one `last_checkpoint` names, unless a complete folder
 * was saved after it (a kill between the rename and the pointer's update), or the pointer is missing or
 * names a folder that is gone (then the newest complete folder by iteration). See the top of this file.
 */
export function latestCheckpoint(dir: string): string | null {
  const complete = listCheckpoints(dir).filter((i) => existsSync(join(dir, checkpointName(i), "state.json")));
  const newest = complete.at(-1);
  const pointed = pointerTarget(dir);
  if (pointed === null || !complete.includes(pointed))
    return newest === undefined ? null : join(dir, checkpointName(newest));
  const at = savedAt(join(dir, checkpointName(pointed)));
  let latest = pointed;
  if (at !== undefined) {
    let latestAt = at;
    for (const i of complete) {
      const t = savedAt(join(dir, checkpointName(i)));
      if (t !== undefined && t > latestAt) [latest, latestAt] = [i, t];
    }
  }
  return join(dir, checkpointName(latest));
}

/**
 * The checkpoints to try when resuming, best first: the latest ({@link latestCheckpoint}), then the other
 * complete ones, newest iteration first.
 */
export function resumeCandidates(dir: string): string[] {
  const latest = latestCheckpoint(dir);
  if (latest === null) return [];
  const others = listCheckpoints(dir)
    .reverse()
    .map((i) => join(dir, checkpointName(i)))
    .filter((f) => f !== latest && existsSync(join(f, "state.json")));
  return [latest, ...others];
}

/** The iteration `last_checkpoint` names, or null when it is missing or does not name a checkpoint. */
function pointerTarget(dir: string): number | null {
  let name: string;
  try {
    name = readFileSync(join(dir, LAST_CHECKPOINT), "utf8").trim();
  } catch {
    return null;
  }
  const m = NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** A checkpoint's `savedAt`, or undefined when its state.json does not say (or cannot be read). */
function savedAt(folder: string): number | undefined {
  try {
    const t = (JSON.parse(readFileSync(join(folder, "state.json"), "utf8")) as { savedAt?: unknown }).savedAt;
    return typeof t === "number" ? t : undefined;
  } catch {
    return undefined;
  }
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
  const state = readCheckpointState(folder);
  const modelFile = join(folder, "model.safetensors");
  const weights = loadPart(modelFile);
  try {
    model.loadStateDict(weights.tensors, { strict: true, source: modelFile });
  } catch (e) {
    throw damaged(modelFile, e);
  } finally {
    dispose([...weights.tensors.values()]);
  }
  if (optimizer) {
    const optFile = join(folder, "optimizer.safetensors");
    const opt = loadPart(optFile);
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
      try {
        checkOptimizerSizes(optFile, optimizer, states, names);
        optimizer.setState(states);
      } finally {
        for (const s of states)
          if (s) dispose(Object.values(s).filter((v): v is Tensor => typeof v === "object"));
      }
    } finally {
      dispose([...opt.tensors.values()]);
    }
  }
  return { iteration: state.iteration, extra: state.extra, config: state.config };
}

/** Loads one tensor file of a checkpoint; any failure is a DamagedCheckpointError naming it. */
function loadPart(file: string): ReturnType<typeof loadCheckpoint> {
  try {
    return loadCheckpoint(file);
  } catch (e) {
    throw damaged(file, e);
  }
}

function damaged(file: string, e: unknown): DamagedCheckpointError {
  if (e instanceof DamagedCheckpointError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as NodeJS.ErrnoException).code;
  const why = code === "ENOENT" ? "missing" : msg.startsWith(`${file}: `) ? msg.slice(file.length + 2) : msg;
  return new DamagedCheckpointError(file, why);
}

/**
 * The optimizer moments must have their parameters' shapes: a damaged file or one of a differently sized
 * model would otherwise surface later, as a shape error inside the update.
 */
function checkOptimizerSizes(file: string, optimizer: AdamW, states: (ParamState | null)[], names: string[]) {
  const params = optimizer.groups.flatMap((g) => g.params);
  states.forEach((s, i) => {
    const p = params[i];
    if (!s || !p) return;
    for (const k of ["expAvg", "expAvgSq", "maxExpAvgSq", "momentumBuffer"] as const) {
      const t = s[k];
      if (t && t.shape.join(",") !== p.shape.join(","))
        throw new DamagedCheckpointError(
          file,
          `${names[i]}::${k} has shape [${t.shape.join(", ")}] but the parameter is [${p.shape.join(", ")}]`,
        );
    }
  });
}

/** A uint8 tensor ↔ base64 (RNG states in state.json). */
export function tensorToBase64(t: Tensor): string {
  return Buffer.from(t.toTypedArray() as Uint8Array).toString("base64");
}
export function base64ToTensor(s: string): Tensor {
  const b = Buffer.from(s, "base64");
  return tensor(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), [b.byteLength]);
}
