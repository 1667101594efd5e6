// The cases of bench/run.ts's table: what each engine runs (its id in bench/cases-dedos.ts and in
// bench/reference/worker.py), the specification both sides build it from, and how often it is called.
// Pure data (no addon): the harness's parent process stays small.
import { readFileSync } from "node:fs";
import { CLIP_PRESETS } from "../src/clip/config.js";
import { DEFAULT_TEMPLATE, fillTemplate } from "../src/clip/prompts.js";
import { ClipTokenizer } from "../src/clip/tokenizer.js";

export interface BenchCase {
  /** Protocol id: the key of the case factories on every engine. */
  id: string;
  /** Row label of the table. */
  title: string;
  /** What both sides build the case from (shapes, configs, token ids), sent with the setup request. */
  spec: () => Record<string, unknown>;
  /** Timed calls per engine per round (full run, --quick run). */
  reps: { full: number; quick: number };
  /** Untimed calls after setup (first-touch allocations, kernel selection). */
  warmup: number;
  /** Untimed calls at the start of every round (caches re-warmed after the other engines ran). */
  warm: number;
  /** Work per call, for a GFLOP/s column. */
  gflop?: number;
  /** Only these engines run the case (default: every engine that has it). */
  engines?: string[];
}

const VITB = CLIP_PRESETS["ViT-B/16"];

/** Token ids of the 171 COCO-Stuff class prompts as encodeTexts builds them (one batch, cut after the EOT). */
function cocoPromptIds(): { ids: number[]; idsShape: [number, number] } {
  const classes = JSON.parse(readFileSync("assets/classes/coco.json", "utf8")) as string[];
  const prompts = classes.map((c) => fillTemplate(DEFAULT_TEMPLATE, c.split(", ")[0]!));
  const ctx = VITB.text.contextLength;
  const tok = ClipTokenizer.load().tokenize(prompts, { contextLength: ctx });
  const used = Math.max(...tok.eotIndex) + 1;
  const ids: number[] = [];
  for (let r = 0; r < prompts.length; r++) ids.push(...tok.ids.subarray(r * ctx, r * ctx + used));
  return { ids, idsShape: [prompts.length, used] };
}

/** In table order, cheapest first. */
export const CASES: BenchCase[] = [
  {
    id: "matmul",
    title: "matmul 1024³",
    spec: () => ({ n: 1024 }),
    reps: { full: 30, quick: 10 },
    warmup: 3,
    warm: 1,
    gflop: (2 * 1024 ** 3) / 1e9,
  },
  {
    id: "conv",
    title: "conv3x3 320ch 64²",
    spec: () => ({ channels: 320, size: 64 }),
    reps: { full: 15, quick: 6 },
    warmup: 2,
    warm: 1,
    gflop: (2 * 320 * 320 * 9 * 64 * 64) / 1e9,
  },
  {
    id: "tiny-op",
    title: "tiny op call (add, 1 elem) ×20000",
    spec: () => ({ calls: 20000 }),
    reps: { full: 9, quick: 5 },
    warmup: 2,
    warm: 1,
  },
  {
    id: "vit-fwd",
    title: "ViT-B block fwd (577 tok)",
    spec: () => ({ tokens: 577 }),
    reps: { full: 10, quick: 5 },
    warmup: 2,
    warm: 1,
  },
  {
    id: "vit-fwd-bwd",
    title: "ViT-B block fwd+bwd (577 tok)",
    spec: () => ({ tokens: 577 }),
    reps: { full: 6, quick: 3 },
    warmup: 2,
    warm: 1,
  },
  {
    id: "clip-vision",
    title: "CLIP ViT-B/16 vision 384² dense (577 tok)",
    spec: () => ({
      preset: "ViT-B/16",
      vision: VITB.vision,
      resolution: VITB.clipResolution,
      taps: VITB.taps,
    }),
    reps: { full: 3, quick: 2 },
    warmup: 1,
    warm: 0,
  },
  {
    id: "clip-text",
    title: "CLIP ViT-B/16 text, 171 COCO prompts",
    spec: () => ({ preset: "ViT-B/16", text: VITB.text, ...cocoPromptIds() }),
    reps: { full: 3, quick: 2 },
    warmup: 1,
    warm: 0,
  },
  {
    // A whole image through the Segmenter's pipeline (resize, 5 views, head, stitching, labels); engines:
    // dedos (libtorch, in-thread) and onnxruntime (the onnx backend on an export of the same seeded model).
    id: "segment-image",
    title: "CAT-Seg ViT-B per image (640×480, 6 classes)",
    engines: ["dedos", "onnxruntime"],
    spec: () => ({
      config: "vitb_384",
      seed: 0,
      image: "assets/coco/000000039769.png",
      classes: ["cat", "sofa", "remote", "wall", "floor", "person"],
    }),
    reps: { full: 2, quick: 1 },
    warmup: 1,
    warm: 0,
  },
  {
    id: "unet",
    title: "SD-2-base UNet fwd, 48² latent",
    spec: () => ({ latent: 48 }),
    reps: { full: 1, quick: 1 },
    warmup: 1,
    warm: 0,
  },
];
