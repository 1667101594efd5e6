// Weight prepacking for inference: the weights of a frozen model's linear layers reordered once into oneDNN's
// blocked layout, in place of the plain tensors (the idea of ipex.optimize's weight prepacking and of
// torch.utils.mkldnn.to_mkldnn). The linear ops then run as one oneDNN matmul with bias, activation and residual
// fused (F.linearAct), about 15 % faster on ViT-B, and the model keeps one copy of each weight.
import { native as N } from "../native.js";
import type { Module } from "./module.js";

export interface PrepackReport {
  /** Weights now held packed. */
  packed: number;
  /** Plain bytes they replaced. */
  bytes: number;
  /** Linear weights left plain: a gradient required (trainable), or their storage shared with other tensors. */
  skipped: number;
}

/**
 * Packs every linear-layer weight of `model` (`Module.linearWeights()`: nn.Linear, the projections of
 * nn.MultiheadAttention) that needs no gradient. Values do not change, and the weights stay what they were to
 * every other use: reading one, saving the state dict, loading new values or training it unpacks that weight
 * again, for good. A no-op without oneDNN or with DEDOS_PREPACK=0. For frozen models at inference: the
 * Segmenter and the CLI do this to the models they build.
 */
export function prepackForInference(model: Module): PrepackReport {
  const report: PrepackReport = { packed: 0, bytes: 0, skipped: 0 };
  if (!N.prepackAvailable()) return report;
  const seen = new Set<number>();
  for (const [, m] of model.namedModules()) {
    for (const w of m.linearWeights()) {
      if (seen.has(w.handle) || N.isPrepacked(w.handle)) continue;
      seen.add(w.handle);
      const freed = w.requiresGrad ? 0 : N.prepackWeight(w.handle);
      if (freed > 0) {
        report.packed++;
        report.bytes += freed;
      } else {
        report.skipped++;
      }
    }
  }
  // The plain weights went to the allocator's cache as they were replaced: give them back now.
  if (report.packed > 0) N.emptyCache();
  return report;
}
