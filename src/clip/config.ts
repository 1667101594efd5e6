// CLIP architecture configs: the presets DEDOS / CAT-Seg use, and inference of every field from checkpoint
// shapes the way openai/CLIP's `build_model` does it (so any ViT checkpoint builds without a config file).

/** The ViT image tower. */
export interface ClipVisionConfig {
  /** Token width (conv1 output channels). */
  width: number;
  layers: number;
  heads: number;
  patchSize: number;
  /** Pretraining resolution: sets the native positional-embedding grid (imageSize / patchSize). */
  imageSize: number;
  /** Joint embedding size (columns of `proj`). */
  outputDim: number;
}

/** The causal text transformer. */
export interface ClipTextConfig {
  width: number;
  layers: number;
  heads: number;
  contextLength: number;
  vocabSize: number;
  /** Joint embedding size (columns of `text_projection`). */
  embedDim: number;
}

export interface ClipConfig {
  vision: ClipVisionConfig;
  text: ClipTextConfig;
}

/** A released OpenAI model plus how CAT-Seg / DEDOS run it. */
export interface ClipPreset extends ClipConfig {
  name: ClipPresetName;
  /** Resolution the segmentation models feed the image tower (CAT-Seg `clip_resolution`). */
  clipResolution: number;
  /** Block outputs tapped for the decoder guidance (CAT-Seg `layer_indexes`). */
  taps: number[];
}

export type ClipPresetName = "ViT-B/16" | "ViT-L/14@336px" | "ViT-B/32";

/** CLIP's pixel statistics on the 0–255 scale (CAT-Seg `CLIP_PIXEL_MEAN` / `CLIP_PIXEL_STD`). */
export const CLIP_PIXEL_MEAN = [122.7709383, 116.7460125, 104.09373615] as const;
export const CLIP_PIXEL_STD = [68.5005327, 66.6321579, 70.323163] as const;

/** Heads of every released OpenAI ViT: one per 64 channels. */
export const CLIP_HEAD_WIDTH = 64;

const TEXT_B: ClipTextConfig = {
  width: 512,
  layers: 12,
  heads: 8,
  contextLength: 77,
  vocabSize: 49408,
  embedDim: 512,
};

export const CLIP_PRESETS: Readonly<Record<ClipPresetName, ClipPreset>> = {
  // `vitb_384`: the 224-px checkpoint run at 384 (grid 24×24 through the bicubic positional resize).
  "ViT-B/16": {
    name: "ViT-B/16",
    vision: { width: 768, layers: 12, heads: 12, patchSize: 16, imageSize: 224, outputDim: 512 },
    text: TEXT_B,
    clipResolution: 384,
    taps: [3, 7],
  },
  // `vitl_336`: native 336 px, grid 24×24.
  "ViT-L/14@336px": {
    name: "ViT-L/14@336px",
    vision: { width: 1024, layers: 24, heads: 16, patchSize: 14, imageSize: 336, outputDim: 768 },
    text: { width: 768, layers: 12, heads: 12, contextLength: 77, vocabSize: 49408, embedDim: 768 },
    clipResolution: 336,
    taps: [7, 15],
  },
  "ViT-B/32": {
    name: "ViT-B/32",
    vision: { width: 768, layers: 12, heads: 12, patchSize: 32, imageSize: 224, outputDim: 512 },
    text: TEXT_B,
    clipResolution: 224,
    taps: [3, 7],
  },
};

/** A preset by name (also accepts "ViT-L/14" for the 336-px model, the only ViT-L DEDOS uses). */
export function clipPreset(name: string): ClipPreset {
  const key = name === "ViT-L/14" || name === "ViT-L/14@336" ? "ViT-L/14@336px" : name;
  const p = CLIP_PRESETS[key as ClipPresetName];
  if (!p) throw new Error(`unknown CLIP preset "${name}" (one of ${Object.keys(CLIP_PRESETS).join(", ")})`);
  return p;
}

/** Native patch grid side of a vision config. */
export function nativeGrid(c: ClipVisionConfig): number {
  return Math.floor(c.imageSize / c.patchSize);
}

// ---------------------------------------------------------------------------------------------------------
// Inference from shapes

/** Anything that maps checkpoint keys to shapes: tensors, file records, or plain shape arrays. */
export type ShapeSource = ReadonlyMap<string, { readonly shape: readonly number[] } | readonly number[]>;

export interface InferClipConfigOptions {
  /** Prepended to every key looked up (e.g. `sem_seg_head.predictor.clip_model.`). */
  prefix?: string;
  /** Channels per head (64 for every OpenAI model); tiny test models override the head counts instead. */
  headWidth?: number;
}

export interface InferredClipConfig {
  vision?: ClipVisionConfig;
  text?: ClipTextConfig;
}

/**
 * Every config field from checkpoint shapes, as openai/CLIP `build_model`:
 * vision width = conv1 out-channels, patch = conv1 kernel, grid = √(positional rows − 1), image = patch·grid,
 * layers = number of `visual.transformer.resblocks.i`, output = proj columns; text context = positional
 * rows, vocab = token_embedding rows, width = ln_final size, layers = number of `transformer.resblocks.i`,
 * embed = text_projection columns; heads = width / 64 for both. Works for the packed (OpenAI) and split
 * (CAT-Seg) attention layouts. A tower whose keys are absent is left undefined.
 */
export function inferClipConfig(shapes: ShapeSource, opts: InferClipConfigOptions = {}): InferredClipConfig {
  const prefix = opts.prefix ?? "";
  const headWidth = opts.headWidth ?? CLIP_HEAD_WIDTH;
  const shapeOf = (key: string): readonly number[] | undefined => {
    const v = shapes.get(prefix + key);
    if (v === undefined) return undefined;
    return Array.isArray(v) ? (v as readonly number[]) : (v as { shape: readonly number[] }).shape;
  };
  const need = (key: string, rank: number): readonly number[] => {
    const s = shapeOf(key);
    if (!s) throw new Error(`inferClipConfig: "${prefix}${key}" is missing`);
    if (s.length !== rank)
      throw new Error(
        `inferClipConfig: "${prefix}${key}" has shape [${s.join(", ")}], expected rank ${rank}`,
      );
    return s;
  };
  const heads = (width: number, what: string): number => {
    if (width % headWidth !== 0)
      throw new Error(
        `inferClipConfig: ${what} width ${width} is not a multiple of the head width ${headWidth}`,
      );
    return width / headWidth;
  };

  const out: InferredClipConfig = {};
  if (shapeOf("visual.conv1.weight")) {
    const conv = need("visual.conv1.weight", 4); // (width, 3, patch, patch)
    const pos = need("visual.positional_embedding", 2); // (1 + grid², width)
    const proj = need("visual.proj", 2); // (width, outputDim)
    const grid = Math.round(Math.sqrt(pos[0]! - 1));
    if (grid * grid + 1 !== pos[0]) {
      throw new Error(
        `inferClipConfig: "${prefix}visual.positional_embedding" has ${pos[0]} rows, not 1 + a square grid`,
      );
    }
    const width = conv[0]!;
    out.vision = {
      width,
      layers: countBlocks(shapes, `${prefix}visual.transformer.resblocks.`),
      heads: heads(width, "vision"),
      patchSize: conv[3]!,
      imageSize: conv[3]! * grid,
      outputDim: proj[1]!,
    };
  }
  if (shapeOf("token_embedding.weight")) {
    const width = need("ln_final.weight", 1)[0]!;
    out.text = {
      width,
      layers: countBlocks(shapes, `${prefix}transformer.resblocks.`),
      heads: heads(width, "text"),
      contextLength: need("positional_embedding", 2)[0]!,
      vocabSize: need("token_embedding.weight", 2)[0]!,
      embedDim: need("text_projection", 2)[1]!,
    };
  }
  if (!out.vision && !out.text) {
    throw new Error(
      `inferClipConfig: no CLIP tower under prefix "${prefix}" (neither visual.conv1.weight nor token_embedding.weight)`,
    );
  }
  return out;
}

/** Number of blocks `<stem>i.` with i = 0…n−1 (throws on holes, which mean a truncated checkpoint). */
function countBlocks(shapes: ShapeSource, stem: string): number {
  const seen = new Set<number>();
  for (const k of shapes.keys()) {
    if (!k.startsWith(stem)) continue;
    const i = Number(k.slice(stem.length).split(".")[0]);
    if (Number.isInteger(i) && i >= 0) seen.add(i);
  }
  for (let i = 0; i < seen.size; i++) {
    if (!seen.has(i)) throw new Error(`inferClipConfig: "${stem}${i}.*" is missing but later blocks exist`);
  }
  if (seen.size === 0) throw new Error(`inferClipConfig: no "${stem}*" keys`);
  return seen.size;
}
