// CLIP checkpoint layouts (pure: tensor maps in, tensor maps or a loaded module out; files are read by the
// assembly layer, models/factory.ts):
//   - OpenAI (`ViT-B-16.pt`): top-level text tower, `visual.*`, packed attention (`in_proj_weight`), and int
//     scalars that are not parameters (input_resolution & co.);
//   - CAT-Seg (`sem_seg_head.predictor.clip_model.*`): the same under a prefix, attention split into
//     `{q,k,v}_proj_weight`;
//   - parity fixtures (`weights.visual.*`, ...).

import type { Module } from "../torch/nn/module.js";
import { cat, dispose, type Tensor, tidy } from "../torch/tensor.js";
import type { ClipConfig } from "./config.js";

/** How a CLIP checkpoint is read (models/factory.ts). */
export interface ClipCheckpointOptions {
  /**
   * Key prefix of the CLIP weights (`sem_seg_head.predictor.clip_model.` in CAT-Seg checkpoints). Default:
   * detected from where `visual.conv1.weight` sits.
   */
  prefix?: string;
  /** Use this config instead of inferring it (the load still checks every shape). */
  config?: ClipConfig;
  /** Channels per attention head when inferring the config (64, as every OpenAI model; tiny test models differ). */
  headWidth?: number;
}

/** The prefix in front of `visual.conv1.weight` (or `token_embedding.weight`), if exactly one exists. */
export function detectClipPrefix(keys: Iterable<string>, source = "checkpoint"): string {
  const found = new Set<string>();
  for (const k of keys) {
    for (const anchor of ["visual.conv1.weight", "token_embedding.weight"]) {
      if (k === anchor || k.endsWith(`.${anchor}`)) found.add(k.slice(0, k.length - anchor.length));
    }
  }
  if (found.size === 1) return [...found][0]!;
  if (found.size === 0)
    throw new Error(
      `${source}: no CLIP weights found (no key ends with visual.conv1.weight or token_embedding.weight)`,
    );
  throw new Error(
    `${source}: several CLIP models inside (prefixes ${[...found].map((p) => JSON.stringify(p)).join(", ")}); pass prefix`,
  );
}

/**
 * Non-parameter entries of OpenAI's TorchScript state dicts (int scalars that `build_model` deletes before
 * loading). They are dropped by name, never silently together with other unknown keys.
 */
export const CLIP_NON_PARAMETER_KEYS = ["input_resolution", "context_length", "vocab_size"] as const;

const SPLIT_SUFFIXES = ["q_proj_weight", "k_proj_weight", "v_proj_weight"] as const;

/**
 * CAT-Seg → OpenAI attention layout. CAT-Seg's `Attention` (model_vpt.py) replaces the packed projection by
 * three parameters; OpenAI stores them stacked:
 *   `<block>.attn.q_proj_weight` (D, D) ┐
 *   `<block>.attn.k_proj_weight` (D, D) ├→ `<block>.attn.in_proj_weight` = cat([q, k, v], 0)  (3D, D)
 *   `<block>.attn.v_proj_weight` (D, D) ┘
 *   `<block>.attn.in_proj_bias`, `<block>.attn.out_proj.{weight,bias}` keep their names.
 * Returns the renamed map (new tensors for the packed weights, the caller's tensors otherwise) and the
 * packed tensors it created (to dispose after loading).
 */
export function splitToPackedAttention(
  sd: ReadonlyMap<string, Tensor>,
  source = "the state dict",
): { stateDict: Map<string, Tensor>; created: Tensor[] } {
  const out = new Map<string, Tensor>();
  const created: Tensor[] = [];
  for (const [k, t] of sd) {
    const suffix = SPLIT_SUFFIXES.find((s) => k.endsWith(`.${s}`));
    if (!suffix) {
      out.set(k, t);
      continue;
    }
    if (suffix !== "q_proj_weight") continue; // k and v are consumed with q
    const stem = k.slice(0, k.length - suffix.length);
    const parts = SPLIT_SUFFIXES.map((s) => sd.get(stem + s));
    const missing = SPLIT_SUFFIXES.filter((_, i) => !parts[i]).map((s) => stem + s);
    if (missing.length)
      throw new Error(`${source}: split attention weights incomplete, missing ${missing.join(", ")}`);
    const shapes = parts.map((p) => p!.shape);
    if (!shapes.every((s) => s.length === 2 && s[0] === shapes[0]![0] && s[1] === shapes[0]![1])) {
      throw new Error(
        `${source}: ${stem}{q,k,v}_proj_weight must share one (D, D) shape, got ${shapes.map((s) => `[${s.join(", ")}]`).join(", ")}`,
      );
    }
    const packed = tidy(() => cat(parts as Tensor[], 0)); // (3D, D)
    created.push(packed);
    out.set(`${stem}in_proj_weight`, packed);
  }
  // A lone k/v without q is also a truncated split layout.
  for (const k of sd.keys()) {
    for (const s of SPLIT_SUFFIXES.slice(1)) {
      if (k.endsWith(`.${s}`) && !sd.has(`${k.slice(0, k.length - s.length)}q_proj_weight`)) {
        throw new Error(`${source}: split attention weights incomplete, ${k} has no matching q_proj_weight`);
      }
    }
  }
  return { stateDict: out, created };
}

/** OpenAI packed → CAT-Seg split layout (the inverse of `splitToPackedAttention`, for exporting). */
export function packedToSplitAttention(sd: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of sd) {
    if (!k.endsWith(".in_proj_weight")) {
      out.set(k, t);
      continue;
    }
    const stem = k.slice(0, k.length - "in_proj_weight".length);
    const [q, kk, v] = t.chunk(3, 0) as [Tensor, Tensor, Tensor];
    out.set(`${stem}q_proj_weight`, q);
    out.set(`${stem}k_proj_weight`, kk);
    out.set(`${stem}v_proj_weight`, v);
  }
  return out;
}

export interface LoadClipWeightsOptions {
  /** Only keys starting with this are used, with it removed (`weights.visual.`, `sem_seg_head.predictor.clip_model.`). */
  prefix?: string;
  /** File name for error messages. */
  source?: string;
}

/**
 * Strictly loads CLIP weights from a checkpoint's tensors into `module` (a ClipModel, ClipTextEncoder or
 * ClipVisionEncoder): prefix selection, the OpenAI non-parameter keys dropped, split attention packed, and
 * every parameter copied with conversion to the module's dtype (fp16 checkpoints become fp32). Missing,
 * unexpected and wrongly shaped keys throw a StateDictError naming the file, each key and both shapes.
 */
export function loadClipWeights(
  module: Module,
  tensors: ReadonlyMap<string, Tensor>,
  o: LoadClipWeightsOptions = {},
): void {
  const prefix = o.prefix ?? "";
  const source = o.source ?? "the state dict";
  const selected = new Map<string, Tensor>();
  for (const [k, t] of tensors) {
    if (!k.startsWith(prefix)) continue;
    const name = k.slice(prefix.length);
    if ((CLIP_NON_PARAMETER_KEYS as readonly string[]).includes(name)) continue;
    selected.set(name, t);
  }
  const { stateDict, created } = splitToPackedAttention(selected, source);
  try {
    // copy_ converts fp16/bf16/fp64 to the parameter's fp32 element by element (no full fp32 copy of the file).
    module.loadStateDict(stateDict, { source: prefix ? `${source} (prefix "${prefix}")` : source });
  } finally {
    dispose(created);
  }
}
