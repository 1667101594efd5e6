// DEDOS configuration (docs/DEDOS-SPEC.md §1–§7) as plain typed objects. Every constant of the model is a
// field here; the two presets are the paper's ViT-B/16 @384 and ViT-L/14 @336 models. Where the paper's
// figure and the authors' released code disagree, the spec decides and the other reading is a switch:
// the figure for the architecture (proxy conditioning, injection, similarity, head fusion), the released
// code (with CAT-Seg's recipe) for the training recipe (empty prompt, CLIP fine-tuning, losses).
//
// Learning rates: parameters under the CLIP module train at solver.lr × solver.clipLrMultiplier (0.01);
// every DEDOS module (proxy queries, injection, query memory, text aggregation, mask head, consistency
// projections) and the CAT-Seg head train at the full solver.lr.

import { type CatSegConfig, catSegPreset, validateCatSegConfig } from "../catseg/config.js";
import { SD_PRESETS } from "../diffusion/config.js";
import type { PromptPadding } from "../diffusion/text-encoder.js";
import { unetTapSpecs } from "../diffusion/unet.js";

/** §3: `diffusion` runs SD at inference too (figure); `static` merges the kernels alone (released code). */
export type ProxyConditioning = "diffusion" | "static";
/** §5: `concat-project` f ← f + 𝒫^F([f; S·T]) (figure, zero-init); `gated-residual` (released code). */
export type InjectionRule = "concat-project" | "gated-residual";
/** §4: `matrix` token-similarity matrices (figure); `per-pixel` cosine at the same pixel (released code). */
export type ConsistencySimilarity = "matrix" | "per-pixel";
/** §6: the head. */
export type HeadType = "mask-decoder" | "cost-aggregation";
/** §6: how the cost-aggregation branch joins the mask-classification prediction. */
export type HeadFuse = "mean" | "none";
/** §6: mask loss of the mask-classification head. */
export type MaskLossType = "focal" | "bce";
/** §4: how the per-layer consistency terms combine: summed (released code) or averaged. */
export type ConsistencyReduction = "sum" | "mean";

/** §3 Proxy queries. N = basicQueries·diffusionQueries queries of width C = basicDim·diffusionDim. */
export interface ProxyConfig {
  conditioning: ProxyConditioning;
  /** n1: rows of the basic kernel q^b (n1 × c1). */
  basicQueries: number;
  /** c1: columns of the basic kernel. */
  basicDim: number;
  /** n2: rows of each per-timestep diffusion kernel q^κ_t (n2 × c2). */
  diffusionQueries: number;
  /** c2: columns of each diffusion kernel. */
  diffusionDim: number;
  /** Heads of the interaction module's cross-attention (queries → UNet taps). */
  heads: number;
  /** Hidden width of the interaction MLP = mlpRatio · C. */
  mlpRatio: number;
  /** Channels of every UNet transformer-block tap, in execution order (16 for SD-2: down 6, mid 1, up 9). */
  tapChannels: number[];
  /** LayerNorm eps of the interaction module. */
  normEps: number;
}

/** §5 Query-refined CLIP. */
export interface InjectionConfig {
  rule: InjectionRule;
  /** Hidden width of Q̂ = MLP(Q) (input and output width are the query width C). */
  mlpHidden: number;
  /** `gated-residual`: initial value of the learnable scale s. */
  gateInit: number;
}

/** §4 Texture-separation (consistency) loss, training only. */
export interface ConsistencyConfig {
  enabled: boolean;
  similarity: ConsistencySimilarity;
  /** Loss weight (10), applied to each compared layer's term. */
  weight: number;
  /** "sum" (default, the released code): Σ_l weight·term_l; "mean": the average over layers. */
  reduction: ConsistencyReduction;
  /** SmoothL1 β (1). */
  beta: number;
  /** Width of the projections 𝒫^C (CLIP width → projDim) and 𝒫^L (C → projDim). */
  projDim: number;
  /** The timestep whose x̂0 is decoded into the denoised image (50; must be one of diffusion.timesteps). */
  timestep: number;
  /** CLIP blocks compared (`matrix`); default the CAT-Seg guidance taps. */
  layers: number[];
}

/** §6 Linear-attention text aggregation (both heads). */
export interface TextAggregationConfig {
  /** M: rounds of aggregation (2). */
  layers: number;
  /** Heads of each linear-attention layer. */
  heads: number;
}

/** §6 Mask-classification head (`head = mask-decoder`). */
export interface MaskHeadConfig {
  /** Width of the pixel decoder, the transformer decoder and the aggregated text (256). */
  hiddenDim: number;
  /** Channels of the mask features (256). */
  maskDim: number;
  /** Transformer-decoder layers (6). */
  decoderLayers: number;
  /** Attention heads of the decoder (8). */
  heads: number;
  /** FFN hidden width of the decoder (2048). */
  ffnDim: number;
  /** Multi-scale memory levels the decoder cycles through (3: 12², 24², 48² for a 24² CLIP grid). */
  memoryLevels: number;
  /** GroupNorm groups of the pixel decoder convs (32). */
  normGroups: number;
  /** Fusion with the cost-aggregation branch (mean). */
  fuse: HeadFuse;
}

/** §6 Losses of the mask-classification head and the matcher. */
export interface LossConfig {
  /** Hungarian cost weights. */
  costClass: number;
  costMask: number;
  costDice: number;
  /** Loss weights: CE over classes + "other", mask (focal or BCE), dice. */
  classWeight: number;
  maskWeight: number;
  diceWeight: number;
  maskLoss: MaskLossType;
  /** CE weight of the extra "other" (no-object) class. */
  otherClassWeight: number;
  /**
   * 0 (default, the released code): the mask losses on the full predicted masks; N: on N importance-sampled
   * points per mask (Mask2Former: 12544, with oversampleRatio 3 and importanceSampleRatio 0.75).
   */
  points: number;
  oversampleRatio: number;
  importanceSampleRatio: number;
  /** Loss on every decoder layer's prediction (deep supervision). */
  deepSupervision: boolean;
  /** Weight of the per-pixel BCE of the cost-aggregation branch (or head). */
  costAggregationWeight: number;
  /** Ignored label of the training ground truth. */
  ignoreLabel: number;
}

export interface DiffusionBranchConfig {
  /** Which Stable Diffusion the UNet taps come from (decides tapChannels; the weights come from a folder). */
  preset: "sd-2-base" | "sd-1.5";
  timesteps: number[];
  clipSample: boolean;
  /** The empty prompt fed to the UNet: "none" (default: BOS + EOS, 2 tokens) or "max-length" (77). */
  promptPadding: PromptPadding;
}

/** §1: which CLIP parameters train (both heads). */
export interface ClipFinetuneConfig {
  /** "attention" (default, CAT-Seg): the q and v projections of every attention layer; "none": frozen. */
  finetune: "attention" | "none";
  /** With `attention`: the text tower trains too (default true, CAT-Seg); false freezes it (the figure). */
  finetuneText: boolean;
}

export interface DedosConfig {
  /** CLIP and the CAT-Seg cost-aggregation head (the official CAT-Seg layout and constants). */
  catseg: CatSegConfig;
  /** false: the model is exactly CAT-Seg (no diffusion, no proxy queries); loads CAT-Seg checkpoints. */
  enabled: boolean;
  head: HeadType;
  diffusion: DiffusionBranchConfig;
  proxy: ProxyConfig;
  injection: InjectionConfig;
  consistency: ConsistencyConfig;
  textAggregation: TextAggregationConfig;
  maskHead: MaskHeadConfig;
  loss: LossConfig;
  /** §1: which CLIP parameters train. */
  clip: ClipFinetuneConfig;
}

export type DedosPresetName = "vitb_384" | "vitl_336";
export const DEDOS_PRESET_NAMES: readonly DedosPresetName[] = ["vitb_384", "vitl_336"];

/** The number of proxy queries N and their width C. */
export function proxyShape(p: ProxyConfig): { queries: number; dim: number } {
  return { queries: p.basicQueries * p.diffusionQueries, dim: p.basicDim * p.diffusionDim };
}

/** Channels of the transformer-block taps of a Stable Diffusion preset's UNet, in execution order. */
export function sdTapChannels(preset: DiffusionBranchConfig["preset"]): number[] {
  return unetTapSpecs(SD_PRESETS[preset].unet).map((s) => s.channels);
}

/** The paper's models (spec §1–§7 defaults). */
export function dedosPreset(name: string): DedosConfig {
  if (!DEDOS_PRESET_NAMES.includes(name as DedosPresetName))
    throw new Error(`unknown DEDOS config "${name}" (one of ${DEDOS_PRESET_NAMES.join(", ")})`);
  const catseg = catSegPreset(name);
  const timesteps = [50, 100, 200];
  return {
    catseg,
    enabled: true,
    head: "mask-decoder",
    diffusion: { preset: "sd-2-base", timesteps, clipSample: true, promptPadding: "none" },
    proxy: {
      conditioning: "diffusion",
      basicQueries: 10,
      basicDim: 16,
      diffusionQueries: 10,
      diffusionDim: 16,
      heads: 8,
      mlpRatio: 4,
      tapChannels: sdTapChannels("sd-2-base"),
      normEps: 1e-6,
    },
    injection: { rule: "concat-project", mlpHidden: 256, gateInit: 1e-3 },
    consistency: {
      enabled: true,
      similarity: "matrix",
      weight: 10,
      reduction: "sum",
      beta: 1,
      projDim: 256,
      timestep: 50,
      layers: [...catseg.taps],
    },
    textAggregation: { layers: 2, heads: 8 },
    maskHead: {
      hiddenDim: 256,
      maskDim: 256,
      decoderLayers: 6,
      heads: 8,
      ffnDim: 2048,
      memoryLevels: 3,
      normGroups: 32,
      fuse: "mean",
    },
    loss: {
      costClass: 1,
      costMask: 1,
      costDice: 1,
      classWeight: 1,
      maskWeight: 20,
      diceWeight: 1,
      maskLoss: "focal",
      otherClassWeight: 0.1,
      points: 0,
      oversampleRatio: 3,
      importanceSampleRatio: 0.75,
      deepSupervision: true,
      costAggregationWeight: 1,
      ignoreLabel: 255,
    },
    clip: { finetune: "attention", finetuneText: true },
  };
}

/** A deep copy (configs are plain data). */
export function cloneDedosConfig(c: DedosConfig): DedosConfig {
  return structuredClone(c);
}

/** Throws naming the field when parts of a config do not fit together. */
export function validateDedosConfig(c: DedosConfig): void {
  const bad = (msg: string): never => {
    throw new Error(`DedosConfig: ${msg}`);
  };
  validateCatSegConfig(c.catseg);
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v <= 0) bad(`${name} must be a positive integer, got ${v}`);
  };
  const p = c.proxy;
  for (const k of [
    "basicQueries",
    "basicDim",
    "diffusionQueries",
    "diffusionDim",
    "heads",
    "mlpRatio",
  ] as const)
    posInt(p[k], `proxy.${k}`);
  const { dim } = proxyShape(p);
  if (dim % p.heads !== 0) bad(`proxy width ${dim} is not divisible by proxy.heads ${p.heads}`);
  if (p.tapChannels.length === 0 && p.conditioning === "diffusion")
    bad("proxy.tapChannels is empty but proxy.conditioning is diffusion");
  if (c.diffusion.timesteps.length === 0) bad("diffusion.timesteps is empty");
  for (const t of c.diffusion.timesteps)
    if (!Number.isInteger(t) || t < 0 || t >= 1000) bad(`diffusion timestep ${t} is not in 0..999`);
  if (c.consistency.enabled && !c.diffusion.timesteps.includes(c.consistency.timestep))
    bad(`consistency.timestep ${c.consistency.timestep} is not one of diffusion.timesteps`);
  const layers = c.catseg.clip.vision.layers;
  for (const l of c.consistency.layers)
    if (!Number.isInteger(l) || l < 0 || l >= layers) bad(`consistency layer ${l} is not a CLIP block`);
  posInt(c.textAggregation.layers, "textAggregation.layers");
  posInt(c.textAggregation.heads, "textAggregation.heads");
  const m = c.maskHead;
  for (const k of [
    "hiddenDim",
    "maskDim",
    "decoderLayers",
    "heads",
    "ffnDim",
    "memoryLevels",
    "normGroups",
  ] as const)
    posInt(m[k], `maskHead.${k}`);
  if (m.hiddenDim % m.heads !== 0)
    bad(`maskHead.hiddenDim ${m.hiddenDim} is not divisible by ${m.heads} heads`);
  if (m.hiddenDim % c.textAggregation.heads !== 0)
    bad(
      `maskHead.hiddenDim ${m.hiddenDim} is not divisible by textAggregation.heads ${c.textAggregation.heads}`,
    );
  if (m.hiddenDim % m.normGroups !== 0 || m.maskDim % m.normGroups !== 0)
    bad(`maskHead.normGroups ${m.normGroups} does not divide hiddenDim and maskDim`);
  if (m.memoryLevels < 1 || m.memoryLevels > 3)
    bad(`maskHead.memoryLevels must be 1..3, got ${m.memoryLevels}`);
  if (!Number.isInteger(c.loss.points) || c.loss.points < 0)
    bad(`loss.points must be a non-negative integer, got ${c.loss.points}`);
  const oneOf = <T extends string>(v: T, allowed: readonly T[], name: string) => {
    if (!allowed.includes(v)) bad(`${name} must be ${allowed.join(" or ")}, got ${JSON.stringify(v)}`);
  };
  oneOf(c.diffusion.promptPadding, ["none", "max-length"], "diffusion.promptPadding");
  oneOf(c.consistency.reduction, ["sum", "mean"], "consistency.reduction");
  oneOf(c.clip.finetune, ["attention", "none"], "clip.finetune");
  if (typeof c.clip.finetuneText !== "boolean")
    bad(`clip.finetuneText must be true or false, got ${JSON.stringify(c.clip.finetuneText)}`);
}

/**
 * A config saved before the recipe decisions of the fidelity issue (#17) lacks their fields; it is read
 * with the values that model was trained with, so it keeps behaving as it did: a 77-token empty prompt,
 * averaged consistency terms, `clipFinetune` (the text tower frozen for the mask-decoder head).
 */
export function upgradeDedosConfig(raw: DedosConfig): DedosConfig {
  const c = structuredClone(raw) as DedosConfig & { clipFinetune?: "attention" | "none" };
  if (c.diffusion && c.diffusion.promptPadding === undefined) c.diffusion.promptPadding = "max-length";
  if (c.consistency && c.consistency.reduction === undefined) c.consistency.reduction = "mean";
  if (c.clip === undefined && c.clipFinetune !== undefined) {
    c.clip = {
      finetune: c.clipFinetune,
      finetuneText: !c.enabled || c.head === "cost-aggregation",
    };
  }
  delete c.clipFinetune;
  return c;
}
