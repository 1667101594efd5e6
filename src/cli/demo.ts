// `dedos demo`: the end-to-end path that exists today, on a bundled image. CLIP's dense patch features are
// compared with the class-name embeddings (MaskCLIP-style zero-shot labelling); the result is written as a
// label PNG, a colour overlay with a legend and a JSON summary. It grows into `dedos segment` (CAT-Seg/DEDOS).
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { clipPreset } from "../clip/config.js";
import { ClipTokenizer } from "../clip/tokenizer.js";
import { zeroShotSegment } from "../clip/zero-shot.js";
import { parseClassList } from "../data/classes.js";
import { readImageRGB } from "../data/image-decode.js";
import { imageToTensor } from "../data/image-tensor.js";
import { createModel } from "../models/factory.js";
import { assetPath } from "../util/assets.js";
import { writeLabelPng, writeOverlay } from "../viz/overlay.js";
import { weightsArg } from "./weight-args.js";

const DEFAULT_IMAGE = assetPath("images", "chelsea.png");
const DEFAULT_CLASSES = "cat; wall; floor; table; sky";
const DEFAULT_WEIGHTS = "weights/clip/ViT-B-16.pt";

const HELP = `dedos demo — label every pixel of an image with CLIP (zero-shot, patch level)

Options:
  --image PATH         image to label (default: ${DEFAULT_IMAGE}, a bundled sample)
  --classes "a; b, c"  class names separated by ";" (", " inside a class lists synonyms; the first is used)
  --clip-weights NAME|FILE  clip-vitb16 (fetched into the cache on first use), an OpenAI CLIP checkpoint
                       (ViT-B-16.pt) or any safetensors/.pth with the same keys
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
  const classes = parseClassList(values.classes ?? DEFAULT_CLASSES);
  const outDir = resolve(values.out ?? "out/demo");
  mkdirSync(outDir, { recursive: true });

  const weights = await weightsArg(
    values["clip-weights"] ?? (existsSync(DEFAULT_WEIGHTS) ? DEFAULT_WEIGHTS : undefined),
  );
  const t0 = performance.now();
  if (weights) console.log(`loading CLIP weights from ${weights}`);
  else
    console.log(
      "NOTE: no CLIP weights found — using RANDOM weights (ViT-B/16 shape) to show the pipeline; the labels are meaningless.\n" +
        `      Bring real weights: put OpenAI's ViT-B-16.pt at ${DEFAULT_WEIGHTS} or pass --clip-weights FILE.`,
    );
  const p = clipPreset("ViT-B/16");
  const model = createModel({
    arch: "clip",
    weights: weights ?? "random",
    config: weights ? undefined : { vision: p.vision, text: p.text },
  });
  const image = await readImageRGB(imagePath);
  const input = imageToTensor(image);
  const labels = zeroShotSegment(model, ClipTokenizer.load(), input, classes);
  input.dispose();
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
