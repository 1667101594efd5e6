// `dedos demo`: the end-to-end path that exists today, on a bundled image. CLIP's dense patch features are
// compared with the class-name embeddings (MaskCLIP-style zero-shot labelling); the result is written as a
// label PNG, a colour overlay with a legend and a JSON summary. It grows into `dedos segment` (CAT-Seg/DEDOS).
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { clipPreset } from "../clip/config.js";
import { ClipModel } from "../clip/model.js";
import { embedClassNames } from "../clip/prompts.js";
import { ClipTokenizer } from "../clip/tokenizer.js";
import { normalizeClipPixels, resizeForClip } from "../clip/vision.js";
import { readImageRGB } from "../data/image-decode.js";
import { imageToTensor } from "../data/image-tensor.js";
import { F, Generator, noGrad, tidy } from "../torch/index.js";
import { assetPath } from "../util/assets.js";
import { writeLabelPng, writeOverlay } from "../viz/overlay.js";

const DEFAULT_IMAGE = assetPath("images", "chelsea.png");
const DEFAULT_CLASSES = "cat; wall; floor; table; sky";
const DEFAULT_WEIGHTS = "weights/clip/ViT-B-16.pt";

const HELP = `dedos demo — label every pixel of an image with CLIP (zero-shot, patch level)

Options:
  --image PATH         image to label (default: ${DEFAULT_IMAGE}, a bundled sample)
  --classes "a; b, c"  class names separated by ";" (", " inside a class lists synonyms; the first is used)
  --clip-weights FILE  OpenAI CLIP checkpoint (ViT-B-16.pt) or any safetensors/.pth with the same keys
                       (default: ${DEFAULT_WEIGHTS} if present, else random weights)
  --out DIR            output folder (default: out/demo)

Without real weights the model is randomly initialised: the picture shows the pipeline, not a
segmentation. To bring real weights, put OpenAI's ViT-B-16.pt at ${DEFAULT_WEIGHTS}.

Example:
  dedos demo --image photo.jpg --classes "dog; grass; sky, clouds" --clip-weights ~/ViT-B-16.pt
`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", short: "h" },
      image: { type: "string" },
      classes: { type: "string" },
      "clip-weights": { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const imagePath = values.image ?? DEFAULT_IMAGE;
  const classes = (values.classes ?? DEFAULT_CLASSES)
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean);
  if (classes.length === 0) throw new Error("--classes: no class names given");
  const outDir = resolve(values.out ?? "out/demo");
  mkdirSync(outDir, { recursive: true });

  const weights = values["clip-weights"] ?? (existsSync(DEFAULT_WEIGHTS) ? DEFAULT_WEIGHTS : undefined);
  const t0 = performance.now();
  let model: ClipModel;
  if (weights) {
    console.log(`loading CLIP weights from ${weights}`);
    model = ClipModel.fromCheckpoint(weights);
  } else {
    console.log(
      "NOTE: no CLIP weights found — using RANDOM weights (ViT-B/16 shape) to show the pipeline; the labels are meaningless.\n" +
        `      Bring real weights: put OpenAI's ViT-B-16.pt at ${DEFAULT_WEIGHTS} or pass --clip-weights FILE.`,
    );
    const p = clipPreset("ViT-B/16");
    model = new ClipModel({ vision: p.vision, text: p.text }, { generator: new Generator(0) }).eval();
  }
  const tokenizer = ClipTokenizer.load();
  const image = await readImageRGB(imagePath);
  const res = 384;
  const labels = noGrad(() =>
    tidy(() => {
      const x = resizeForClip(normalizeClipPixels(imageToTensor(image)), res); // (1, 3, 384, 384)
      const out = model.visual.forward(x, { dense: true });
      const [gh, gw] = out.grid;
      const feats = out.tokens.slice(1, 1).reshape(1, gh, gw, -1); // (1, gh, gw, E) patch tokens
      const patches = feats.div(feats.norm(2, -1, true)); // cosine needs unit vectors
      const text = embedClassNames(model, tokenizer, classes).squeeze(1); // (T, E)
      const logits = patches.matmul(text.mT).permute(0, 3, 1, 2); // (1, T, gh, gw)
      const full = F.interpolate(logits, { size: [image.height, image.width], mode: "bilinear" });
      return full.argmax(1).flatten().to("int32"); // (H·W)
    }),
  );
  const lab = labels.intoTypedArray() as Int32Array;
  const base = imagePath.replace(/^.*\//, "").replace(/\.[^.]+$/, "");
  const title = weights ? `CLIP ViT-B/16 zero-shot` : "RANDOM weights (pipeline demo)";
  await writeLabelPng(join(outDir, `${base}.labels.png`), lab, image.width, image.height);
  const shares = await writeOverlay(join(outDir, `${base}.overlay.png`), image, lab, classes, { title });
  const summary = {
    image: imagePath,
    size: [image.width, image.height],
    weights: weights ?? "random",
    classes,
    present: shares.map((s) => ({ class: s.name, index: s.index, share: Number(s.share.toFixed(4)) })),
    seconds: Number(((performance.now() - t0) / 1e3).toFixed(2)),
  };
  writeFileSync(join(outDir, `${base}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  model.dispose();
  console.log(
    `wrote ${join(outDir, `${base}.overlay.png`)}, ${base}.labels.png and ${base}.json (${summary.seconds} s)`,
  );
  return 0;
}
