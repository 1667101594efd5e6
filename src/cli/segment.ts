// `dedos segment <images...>`: label every pixel with free-text classes; writes label PNGs, overlays, JSON.
import { createHash } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { type Segmentation, Segmenter } from "../api/segmenter.js";
import { parseClassList, readClassFile } from "../data/classes.js";
import { type RgbImage, readImageFile } from "../data/image-decode.js";
import { type FileSetEntry, writeFileSetAtomic } from "../util/fs.js";
import { Progress } from "../util/progress.js";
import { encodeLabelPng, renderOverlay } from "../viz/overlay.js";
import { configOfWeight } from "../weights/index.js";
import { parseCommandArgs, parseModelKind } from "./options.js";
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
                                 An image's files are replaced together or not at all. Two images with
                                 one NAME (a/x.png b/x.jpg): the later one is written as NAME-2 (printed).
  --scores                       also write NAME.scores.bin (float32 T×H×W probabilities); without it an
                                 older NAME.scores.bin is removed with the set it belonged to

Without --weights the model has random weights: the output shows the pipeline, not a segmentation.
Real weights: CAT-Seg's released ViT-B/16 or ViT-L/14 model_final.pth (they contain CLIP as well), or
DEDOS weights you trained (dedos train --help) together with --sd.

Examples:
  dedos segment street.jpg --classes "road; sidewalk; car, truck; person; sky" --weights catseg-vitb
  dedos segment photos/*.jpg --classes-file ade150 --weights model_final.pth --out labelled/
`;

/** The suffixes of an image's output set. */
const OUTPUT_SUFFIXES = [".labels.png", ".overlay.png", ".scores.bin", ".json"] as const;

/** Longest output base name in bytes: NAME_MAX 255 less the longest suffix and util/fs.ts's temporary name. */
const MAX_NAME_BYTES = 200;

export interface OutputName {
  /** The input as given. */
  input: string;
  /** The base name of its outputs (NAME of NAME.labels.png, …). */
  name: string;
  /** Why `name` is not the input's own name (a clash, a name too long), to be printed. */
  note?: string;
}

/** `name` cut to at most `maxBytes` of UTF-8 (whole code points), with a hash of the whole name appended. */
function shorten(name: string, maxBytes: number): string {
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  let out = "";
  for (const ch of name) {
    if (Buffer.byteLength(out + ch) > maxBytes - 9) break;
    out += ch;
  }
  return `${out}-${hash}`;
}

/**
 * The output name of every input: its file name without the extension, unless an earlier input has that name
 * already (compared case-insensitively, as on macOS and Windows file systems), or the name would overwrite an
 * input, or is too long for a file name. Then it gets "-2", "-3", … (or is shortened, with a hash) and `note`
 * says why. No two inputs share an output name, and no output name is one another input has on its own.
 */
export function outputNames(inputs: readonly string[], outDir: string): OutputName[] {
  const natural = inputs.map((f) => basename(f, extname(f)) || "image");
  const key = (n: string) => n.toLowerCase();
  const own = new Set(natural.map(key)); // names inputs have on their own: never given to another input
  const inputPaths = new Set(inputs.map((f) => resolve(f)));
  const overwritesInput = (n: string) =>
    OUTPUT_SUFFIXES.some((s) => inputPaths.has(resolve(outDir, `${n}${s}`)));
  const taken = new Map<string, string>(); // key → the input that has it
  return inputs.map((input, i) => {
    let base = natural[i]!;
    let note: string | undefined;
    if (Buffer.byteLength(base) > MAX_NAME_BYTES) {
      base = shorten(base, MAX_NAME_BYTES);
      note = "its name is too long for a file name";
    }
    let name = base;
    const holder = taken.get(key(name));
    if (holder !== undefined || overwritesInput(name)) {
      for (let k = 2; ; k++) {
        name = `${base}-${k}`;
        if (!taken.has(key(name)) && !own.has(key(name)) && !overwritesInput(name)) break;
      }
      note =
        holder !== undefined
          ? `"${base}" is taken by ${holder}`
          : `${base}.* would overwrite an input image in ${outDir}`;
    }
    taken.set(key(name), input);
    return { input, name, note };
  });
}

/** The console form of an error of one image: it names the image first. */
function imageError(file: string, e: unknown): string {
  const msg = (e as Error).message ?? String(e);
  return msg.startsWith(file) ? msg : `${file}: ${msg}`;
}

export async function segmentCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
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
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) {
    console.error(`dedos segment: no image given\n\n${HELP}`);
    return 2;
  }
  if ((values.classes === undefined) === (values["classes-file"] === undefined)) {
    console.error("dedos segment: give exactly one of --classes or --classes-file");
    return 2;
  }
  const classes = readClasses(values.classes, values["classes-file"]);
  if (!classes) return 2;
  const window = values.window ?? "catseg";
  if (window !== "catseg" && window !== "dedos") {
    console.error(`dedos segment: --window must be catseg or dedos, not '${window}'`);
    return 2;
  }
  const outDir = outputFolder(values.out ?? "out");
  if (!outDir) return 2;
  const names = outputNames(positionals, outDir);
  for (const n of names)
    if (n.note) console.log(`note: ${n.input} is written as ${join(outDir, n.name)}.* (${n.note})`);

  if (!values.weights) {
    console.log(
      "NOTE: no --weights given — the model uses RANDOM weights to show the pipeline; the labels are meaningless.\n" +
        "      Bring real weights: --weights catseg-vitb (fetched and cached on first use; catseg-vitl for ViT-L/14).",
    );
  }
  let seg: Segmenter;
  try {
    seg = await Segmenter.create({
      config: values.config ?? configOfWeight(values.weights),
      weights: (await weightsArg(values.weights)) ?? "random",
      sd: await weightsArg(values.sd),
      model: parseModelKind(values.model),
      device: values.device,
      window,
    });
  } catch (e) {
    // A wrong --config or --weights: the message names the file; no stack trace.
    console.error(`dedos segment: ${(e as Error).message ?? String(e)}`);
    return 1;
  }
  const progress = new Progress(positionals.length, "segment");
  let failed = 0;
  try {
    for (const { input: file, name } of names) {
      try {
        if (statSync(file, { throwIfNoEntry: false })?.isDirectory())
          throw new Error(`${file}: is a directory, not an image file (EISDIR)`);
        const rgb = await readImageFile(file); // decode once; a bad file is reported here by name
        const r = await seg.segment(rgb, classes, { scores: values.scores });
        await writeOutputs(join(outDir, name), name, file, rgb, r, {
          weights: values.weights ?? "random",
          title: seg.randomWeights ? "RANDOM weights (pipeline demo)" : basename(file),
        });
        progress.tick(true);
      } catch (e) {
        failed++;
        console.error(`dedos segment: ${imageError(file, e)}`);
        progress.tick(false);
      }
    }
  } finally {
    await seg.dispose();
  }
  console.log(`segmented ${positionals.length - failed}/${positionals.length} image(s) into ${outDir}`);
  return failed > 0 ? 1 : 0;
}

/** The classes of --classes or --classes-file (exactly one), or undefined after printing why not. */
function readClasses(typed: string | undefined, file: string | undefined): string[] | undefined {
  if ((typed === undefined) === (file === undefined)) {
    console.error("dedos segment: give exactly one of --classes or --classes-file");
    return undefined;
  }
  try {
    return typed !== undefined ? parseClassList(typed, { source: "--classes" }) : readClassFile(file!);
  } catch (e) {
    const msg = (e as Error).message;
    console.error(
      `dedos segment: ${typed === undefined && !msg.includes(file!) ? `--classes-file ${file}: ` : ""}${msg}`,
    );
    return undefined;
  }
}

/** The output folder, created; undefined after printing why it cannot be. */
function outputFolder(out: string): string | undefined {
  const outDir = resolve(out);
  try {
    mkdirSync(outDir, { recursive: true });
    if (!statSync(outDir).isDirectory()) throw Object.assign(new Error("not a folder"), { code: "ENOTDIR" });
    return outDir;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    console.error(
      `dedos segment: --out ${outDir}: ${code === "EEXIST" || code === "ENOTDIR" ? "a file is in the way of the output folder" : `cannot create the output folder (${code ?? (e as Error).message})`}`,
    );
    return undefined;
  }
}

/** One image's outputs (labels PNG, overlay, scores, summary JSON), written as one atomic set. */
async function writeOutputs(
  base: string,
  name: string,
  file: string,
  rgb: RgbImage,
  r: Segmentation,
  o: { weights: string; title: string },
): Promise<void> {
  const summary = {
    image: file,
    output: name,
    size: [r.width, r.height],
    weights: o.weights,
    classes: r.classes,
    present: r.present.map((p) => ({
      class: p.name,
      index: p.index,
      pixels: p.pixels,
      share: Number(p.share.toFixed(6)),
    })),
  };
  const overlay = await renderOverlay(rgb, r.labels, r.classes, { title: o.title });
  const set: FileSetEntry[] = [
    { file: `${base}.labels.png`, data: await encodeLabelPng(r.labels, r.width, r.height) },
    { file: `${base}.overlay.png`, data: overlay.png },
    r.scores
      ? {
          file: `${base}.scores.bin`,
          data: new Uint8Array(r.scores.buffer, r.scores.byteOffset, r.scores.byteLength),
        }
      : { file: `${base}.scores.bin`, remove: true }, // an older run's scores must not outlive its set
    { file: `${base}.json`, data: `${JSON.stringify(summary, null, 2)}\n` },
  ];
  try {
    await writeFileSetAtomic(set);
  } catch (e) {
    throw new Error(`${(e as Error).message}; no output of ${name}.* was changed`);
  }
}
