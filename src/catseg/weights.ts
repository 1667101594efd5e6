// CAT-Seg checkpoint layout (detectron2 `model_final.pth`, or safetensors with the same keys), pure: tensor
// maps in, a loaded model or a tensor map out (files are read by models/factory.ts).
//
//   sem_seg_head.predictor.clip_model.*   CLIP, attention split into {q,k,v}_proj_weight (this model packs it)
//   sem_seg_head.predictor.transformer.*  the Aggregator
//   upsample1.*, upsample2.*              the guidance upsampling convs

import { CLIP_NON_PARAMETER_KEYS, packedToSplitAttention, splitToPackedAttention } from "../clip/weights.js";
import { dispose, type Tensor } from "../torch/tensor.js";
import type { Aggregator } from "./aggregator.js";
import type { CatSegModel } from "./model.js";

/** Where CAT-Seg checkpoints keep CLIP. */
export const CATSEG_CLIP_PREFIX = "sem_seg_head.predictor.clip_model.";
/** Where CAT-Seg checkpoints keep the cost-aggregation head. */
export const CATSEG_AGGREGATOR_PREFIX = "sem_seg_head.predictor.transformer.";

/** A CatSegModel's state dict in the checkpoint's layout (CLIP attention split into q/k/v_proj_weight). */
export function catsegStateDict(model: CatSegModel): Map<string, Tensor> {
  const clip = new Map<string, Tensor>();
  const out = new Map<string, Tensor>();
  for (const [k, t] of model.stateDict()) {
    if (k.startsWith(CATSEG_CLIP_PREFIX)) clip.set(k, t);
    else out.set(k, t);
  }
  const split = packedToSplitAttention(clip);
  return new Map([...split, ...out]);
}

/**
 * Strictly loads checkpoint tensors (CAT-Seg layout: split or packed CLIP attention, OpenAI's CLIP
 * non-parameter entries tolerated) into `model`. Throws a StateDictError naming every missing, unexpected
 * and wrongly shaped key.
 */
export function loadCatSegWeights(
  model: CatSegModel,
  tensors: ReadonlyMap<string, Tensor>,
  source = "the state dict",
): void {
  const clip = new Map<string, Tensor>();
  const rest = new Map<string, Tensor>();
  for (const [k, t] of tensors) (k.startsWith(CATSEG_CLIP_PREFIX) ? clip : rest).set(k, t);
  // CLIP through the shared conversion (drops input_resolution & co., packs split attention) …
  const probe = new Map<string, Tensor>();
  const { stateDict, created } = splitToPackedAttention(clip, source);
  try {
    for (const [k, t] of stateDict) probe.set(k, t);
    for (const [k, t] of rest) probe.set(k, t);
    for (const name of CLIP_NON_PARAMETER_KEYS) probe.delete(CATSEG_CLIP_PREFIX + name);
    // … and one strict load of everything, so a single error lists every problem.
    model.loadStateDict(probe, { strict: true, source });
  } finally {
    dispose(created);
  }
}

/**
 * Strictly loads the keys under `prefix` (default the CAT-Seg checkpoint path of the Aggregator) into
 * `model`; keys outside the prefix are ignored. Errors (StateDictError) name every missing / unexpected key
 * and every shape mismatch.
 */
export function loadAggregatorWeights(
  model: Aggregator,
  tensors: ReadonlyMap<string, Tensor>,
  o: { prefix?: string; source?: string } = {},
): void {
  const prefix = o.prefix ?? CATSEG_AGGREGATOR_PREFIX;
  const sd = new Map<string, Tensor>();
  for (const [k, t] of tensors) if (k.startsWith(prefix)) sd.set(k.slice(prefix.length), t);
  if (sd.size === 0 && tensors.size > 0) {
    throw new Error(
      `${o.source ?? "the state dict"}: no key starts with "${prefix}" (not a CAT-Seg Aggregator?)`,
    );
  }
  model.loadStateDict(sd, { strict: true, source: o.source });
}
