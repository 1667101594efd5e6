// The full OpenAI CLIP model with the exact top-level key layout of OpenAI checkpoints, and the checkpoint
// loader shared by every CLIP consumer (real checkpoints and parity fixtures go through `loadClipWeights`).
//
// OpenAI stores the text tower at the top level (`token_embedding.weight`, `positional_embedding`,
// `transformer.*`, `ln_final.*`, `text_projection`) next to `visual.*` and `logit_scale`. ClipModel is
// therefore a ClipTextEncoder with the image tower and the logit scale added, so its state dict is
// OpenAI's key for key and a strict load of an OpenAI checkpoint needs no renaming.

import { withCheckpoint } from "../torch/io/load.js";
import { buildAndLoad, type Module } from "../torch/nn/module.js";
import { cat, dispose, full, type Tensor, tidy } from "../torch/tensor.js";
import { type ClipConfig, inferClipConfig } from "./config.js";
import { type ClipInitOptions, ClipTextEncoder } from "./text.js";
import { ClipVisionEncoder } from "./vision.js";

export class ClipModel extends ClipTextEncoder {
  readonly visual: ClipVisionEncoder;

  constructor(
    readonly config: ClipConfig,
    o: ClipInitOptions = {},
  ) {
    super(config.text, o);
    this.visual = this.child("visual", new ClipVisionEncoder(config.vision, o));
    this.param("logit_scale", full([], Math.log(1 / 0.07))); // scalar
  }

  /** The text tower is this module itself (its keys are top-level); typed view for clarity. */
  get text(): ClipTextEncoder {
    return this;
  }
  get logitScale(): Tensor {
    return this.get("logit_scale");
  }

  /** Normalised pixels (B, 3, H, W) → (B, E) pooled, or (B, 1 + HW, E) when dense. */
  encodeImage(pixels: Tensor, o: { dense?: boolean } = {}): Tensor {
    return this.visual.encodeImage(pixels, o);
  }

  /**
   * Builds the model from a checkpoint file (safetensors, torch .pth/.pt zip or legacy, TorchScript .pt):
   * config inferred from the shapes unless given, then a strict `loadClipWeights`.
   */
  static fromCheckpoint(file: string, o: ClipCheckpointOptions = {}): ClipModel {
    return withCheckpoint(file, (ckpt) => {
      const prefix = o.prefix ?? detectClipPrefix(ckpt.tensors.keys(), file);
      let config = o.config;
      if (!config) {
        const inferred = inferClipConfig(ckpt.records, { prefix, headWidth: o.headWidth });
        if (!inferred.vision || !inferred.text) {
          throw new Error(
            `${file}: not a full CLIP checkpoint under prefix "${prefix}" (need both visual.* and the text tower)`,
          );
        }
        config = { vision: inferred.vision, text: inferred.text };
      }
      const cfg = config;
      return buildAndLoad(
        () => new ClipModel(cfg, { init: "empty" }),
        (m) => loadClipWeights(m, ckpt.tensors, { prefix, source: file }),
      );
    });
  }
}

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

// ---------------------------------------------------------------------------------------------------------
// Key mapping

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
