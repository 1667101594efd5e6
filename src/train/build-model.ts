// The model of a training run: built from the starting weights (a DEDOS weights file, a CAT-Seg checkpoint
// and / or OpenAI CLIP, or fresh), with the frozen Stable Diffusion branch attached when the config needs it,
// and the trained weights written at the end. Everything of training that reads or writes model weight files
// is here.
import type { DedosModel } from "../dedos/model.js";
import { DiffusionBranch, type DiffusionComponents } from "../diffusion/branch.js";
import { loadDiffusersFolder } from "../models/diffusers.js";
import { createModel, saveModel } from "../models/factory.js";
import type { Device } from "../torch/dtype.js";
import type { TrainConfig } from "./config.js";
import type { TrainOptions } from "./trainer.js";

export function buildModel(c: TrainConfig, o: TrainOptions): DedosModel {
  const w = o.weights ?? {};
  return createModel({
    arch: "dedos",
    config: c.model,
    weights: w.dedos ?? "random",
    startFrom: w.dedos ? undefined : { catseg: w.catseg, clip: w.clip },
    seed: o.initSeed ?? c.train.seed,
  });
}

/** Stable Diffusion attached to a training model. */
export interface AttachedDiffusion {
  /** Its frozen parameters (UNet and VAE). */
  params: number;
  /** Frees what the run loaded (a diffusers folder); components passed in memory stay the caller's. */
  release(): void;
}

/**
 * Attaches the frozen diffusion branch when the config needs Stable Diffusion (proxy.conditioning =
 * diffusion, or the consistency loss); null when it does not.
 */
export function attachStableDiffusion(
  model: DedosModel,
  c: TrainConfig,
  o: TrainOptions,
): AttachedDiffusion | null {
  let diffusion: DiffusionComponents | null = null;
  const needSd =
    c.model.enabled && (c.model.proxy.conditioning === "diffusion" || c.model.consistency.enabled);
  if (needSd) {
    if (!o.diffusion)
      throw new Error(
        "training needs Stable Diffusion (proxy.conditioning = diffusion or consistency.enabled): pass --sd <diffusers folder>",
      );
    diffusion =
      typeof o.diffusion === "string"
        ? loadDiffusersFolder(o.diffusion, { device: (o.device ?? "cpu") as Device })
        : o.diffusion;
    model.attachDiffusion(new DiffusionBranch(diffusion, c.model.diffusion));
  }
  if (!diffusion) return null;
  const d = diffusion;
  return {
    params: countParams(d),
    release: () => {
      if (typeof o.diffusion === "string") (d as { dispose?: () => void }).dispose?.();
    },
  };
}

/** Writes the trained model as a DEDOS weights file (loadable on its own, config in the metadata). */
export function saveTrainedModel(model: DedosModel, file: string): void {
  saveModel(model, file);
}

function countParams(d: DiffusionComponents): number {
  return d.unet.numParameters() + d.vae.numParameters();
}
