// The dedos engine's side of the cases of bench/cases.ts: one factory per case id (the same ids as
// bench/reference/worker.py), each building the case from its spec and returning one call of it that frees
// everything it allocates. Random weights (seeded); under noGrad unless the case is a backward.
import { CLIP_PRESETS } from "../src/clip/config.js";
import { ClipTextEncoder, ResidualAttentionBlock } from "../src/clip/text.js";
import { ClipVisionEncoder } from "../src/clip/vision.js";
import { SD_PRESETS } from "../src/diffusion/config.js";
import { UNet2DConditionModel } from "../src/diffusion/unet.js";
import {
  Generator,
  noGrad,
  prepackForInference,
  randn,
  type Tensor,
  tensor,
  tidy,
} from "../src/torch/index.js";
import { referenceKernels } from "./common.js";
import type { CaseFactory } from "./sample.js";

/**
 * One ViT-B block (pre-LN, 12 heads, MLP 3072, QuickGELU): CLIP's own block (src/clip/text.ts), tokens
 * (L, 1, D); bench/reference/engine.py VitBlock is the same ops in PyTorch. Shared with bench/engine.ts.
 */
export function vitBlock(
  g: Generator,
  o: { frozen?: boolean } = {},
): { forward: (x: Tensor) => Tensor; parameters: Tensor[] } {
  const block = new ResidualAttentionBlock(768, 12, { generator: g });
  if (o.frozen) prepackForInference(block.requiresGrad_(false));
  return { forward: (x: Tensor) => block.forward(x), parameters: block.parameters() };
}

/**
 * The clip-vision case's model (seeded random weights), its input and its forward (dense tokens with the
 * guidance taps): what dedos times, and what bench/export-case.ts hands to the exporter for onnxruntime.
 */
export function clipVisionCase(spec: Record<string, unknown>) {
  const preset = clipPreset(spec);
  const visual = new ClipVisionEncoder(preset.vision, { generator: new Generator(0) }).eval();
  prepackForInference(visual.requiresGrad_(false)); // as the Segmenter runs its models
  const r = Number(spec.resolution);
  const pixels = randn([1, 3, r, r], { generator: new Generator(1) });
  const taps = spec.taps as number[];
  const forward = (x: Tensor) => visual.forward(x, { dense: true, taps }).tokens; // (1, 1 + g², D)
  return { visual, pixels, forward };
}

/** One of the engine's reference kernels (common.ts referenceKernels: the same cases as bench/engine). */
function kernel(name: "matmul" | "conv"): () => void {
  const k = referenceKernels(name)[0]!;
  return () => noGrad(k.run);
}

const clipPreset = (spec: Record<string, unknown>) =>
  CLIP_PRESETS[String(spec.preset) as keyof typeof CLIP_PRESETS];

export const DEDOS_CASES: Record<string, CaseFactory> = {
  matmul: () => kernel("matmul"),
  conv: () => kernel("conv"),
  "tiny-op": (spec) => {
    const [a, b] = [randn([1]), randn([1])];
    const n = Number(spec.calls);
    return () => {
      for (let i = 0; i < n; i++) a.add(b).dispose();
    };
  },
  "vit-fwd": (spec) => {
    const g = new Generator(0);
    const block = vitBlock(g, { frozen: true });
    const x = randn([Number(spec.tokens), 1, 768], { generator: g });
    return () => noGrad(() => block.forward(x).dispose());
  },
  "vit-fwd-bwd": (spec) => {
    const g = new Generator(0);
    const block = vitBlock(g);
    const x = randn([Number(spec.tokens), 1, 768], { generator: g, requiresGrad: true });
    return () =>
      tidy(() => {
        for (const p of block.parameters) p.grad = null;
        x.grad = null;
        block.forward(x).sum().backward();
      });
  },
  "clip-vision": (spec) => {
    const { forward, pixels } = clipVisionCase(spec);
    return () =>
      noGrad(() =>
        tidy(() => {
          forward(pixels);
        }),
      );
  },
  "segment-image": async (spec) => {
    // Loaded here: the image decoder (sharp) and the Segmenter's pipeline would add ~30 MB to every case's RSS.
    const { buildSegmentationModel, segmentRgb } = await import("../src/api/segment-core.js");
    const { readImageFile } = await import("../src/data/image-decode.js");
    const model = buildSegmentationModel({
      config: String(spec.config),
      weights: "random",
      seed: Number(spec.seed),
    });
    const rgb = readImageFile(String(spec.image));
    const classes = spec.classes as string[];
    return async () => {
      segmentRgb(model, "cpu", "catseg", await rgb, { classes });
    };
  },
  "clip-text": (spec) => {
    const preset = clipPreset(spec);
    const text = new ClipTextEncoder(preset.text, { generator: new Generator(0) }).eval();
    prepackForInference(text.requiresGrad_(false));
    const ids = tidy(() => tensor(Int32Array.from(spec.ids as number[]), spec.idsShape as number[]).long());
    return () => noGrad(() => text.encodeText(ids).dispose());
  },
  unet: (spec) => {
    const config = SD_PRESETS["sd-2-base"].unet;
    const g = new Generator(0);
    const unet = new UNet2DConditionModel(config, { generator: g }).requiresGrad_(false).eval();
    prepackForInference(unet);
    const n = Number(spec.latent);
    const z = randn([1, 4, n, n], { generator: g });
    const text = randn([1, 77, config.cross_attention_dim as number], { generator: g });
    // No taps: the PyTorch reference returns the sample only, so both sides do the same work.
    return () => noGrad(() => unet.forward(z, 50, text, { taps: false }).sample.dispose());
  },
};
