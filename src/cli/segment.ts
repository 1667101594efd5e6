// `dedos segment <images...>`: label every pixel with free-text classes; writes label PNGs, overlays, JSON.
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Segmenter } from "../api/segmenter.js";
import { parseClassList, readClassFile } from "../data/classes.js";
import { readImageRGB } from "../data/image-decode.js";
import { Progress } from "../util/progress.js";
import { writeLabelPng, writeOverlay } from "../viz/overlay.js";
import { configOfWeight } from "../weights/index.js";
import { parseModelKind } from "./options.js";
import { weightsArg } from "./weight-args.js";

const HELP = `dedos segment <images...> — label every pixel with the classes you name

Classes:
  --classes "a; b, synonym; c"   classes separated by ";" (", " separates synonyms of one class)
  --classes-file FILE|NAME       a JSON array or a text file (one class per line), or a bundled
                                 benchmark list: ade150, ade847, pc59, pc459, voc20, voc20b, coco
Model:
  --weights NAME|FILE            catseg-vitb / catseg-vitl (fetched into the cache on first use; dedos weights
                                 list), a CAT-Seg checkpoint (model_base.pth), or DEDOS weights from dedos train
                                 (model_final.safetensors; recognised by its metadata)
  --sd DIR|sd2-base              Stable Diffusion 2-base (diffusers layout): DEDOS reads it at inference
  --model catseg|dedos           the architecture without weights (default catseg)
  --config NAME|FILE             vitb_384 (default), vitl_336, or a JSON config
  --window catseg|dedos          sliding window: 384 px / overlap 1/3 (default) or 512 px / 0.75
  --device cpu|cuda[:N]          where to run (default cpu)
Output:
  --out DIR                      for each image NAME: NAME.labels.png (class indices), NAME.overlay.png
                                 (colours + legend with pixel shares), NAME.json (summary). Default out/
  --scores                       also write NAME.scores.bin (float32 T×H×W probabilities)

Without --weights the model has random weights: the output shows the pipeline, not a segmentation.
Real weights: CAT-Seg's released ViT-B/16 or ViT-L/14 model_final.pth (they contain CLIP as well), or
DEDOS weights you trained (dedos train --help) together with --sd.

Examples:
  dedos segment street.jpg --classes "road; sidewalk; car, truck; person; sky" --weights catseg-vitb
  dedos segment photos/*.jpg --classes-file ade150 --weights model_final.pth --out labelled/
`;

export async function segmentCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      classes: { type: "string" },
      "classes-file": { type: "string" },
      weights: { type: "string" },
      sd: { type: "string" },
      model: { type: "string" },
      config: { type: "string" },
      window: { type: "string" },
      device: { type: "string" },
      out: { type: "string" },
      scores: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) {
    console.error(`dedos segment: no image given\n\n${HELP}`);
    return 2;
  }
  if (!values.classes === !values["classes-file"]) {
    console.error("dedos segment: give exactly one of --classes or --classes-file");
    return 2;
  }
  const classes = values.classes ? parseClassList(values.classes) : readClassFile(values["classes-file"]!);
  const window = values.window ?? "catseg";
  if (window !== "catseg" && window !== "dedos")
    throw new Error(`--window must be catseg or dedos, not '${window}'`);
  const outDir = resolve(values.out ?? "out");
  mkdirSync(outDir, { recursive: true });

  if (!values.weights) {
    console.log(
      "NOTE: no --weights given — the model uses RANDOM weights to show the pipeline; the labels are meaningless.\n" +
        "      Bring real weights: --weights catseg-vitb (fetched and cached on first use; catseg-vitl for ViT-L/14).",
    );
  }
  const seg = await Segmenter.create({
    config: values.config ?? configOfWeight(values.weights),
    weights: (await weightsArg(values.weights)) ?? "random",
    sd: await weightsArg(values.sd),
    model: parseModelKind(values.model),
    device: values.device,
    window,
  });
  const progress = new Progress(positionals.length, "segment");
  let failed = 0;
  try {
    for (const file of positionals) {
      try {
        const rgb = await readImageRGB(file); // decode once; a bad file is reported here by name
        const r = await seg.segment(rgb, classes, { scores: values.scores });
        const base = join(outDir, basename(file, extname(file)));
        await writeLabelPng(`${base}.labels.png`, r.labels, r.width, r.height);
        await writeOverlay(`${base}.overlay.png`, rgb, r.labels, r.classes, {
          title: seg.randomWeights ? "RANDOM weights (pipeline demo)" : basename(file),
        });
        if (r.scores) writeFileSync(`${base}.scores.bin`, r.scores);
        const summary = {
          image: file,
          size: [r.width, r.height],
          weights: values.weights ?? "random",
          classes: r.classes,
          present: r.present.map((p) => ({
            class: p.name,
            index: p.index,
            pixels: p.pixels,
            share: Number(p.share.toFixed(6)),
          })),
        };
        writeFileSync(`${base}.json`, `${JSON.stringify(summary, null, 2)}\n`);
        progress.tick(true);
      } catch (e) {
        failed++;
        const msg = (e as Error).message;
        console.error(`dedos segment: ${msg.startsWith(file) ? msg : `${file}: ${msg}`}`);
        progress.tick(false);
      }
    }
  } finally {
    await seg.dispose();
  }
  console.log(`segmented ${positionals.length - failed}/${positionals.length} image(s) into ${outDir}`);
  return failed > 0 ? 1 : 0;
}
