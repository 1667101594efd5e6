// `dedos prepare`: turns the files users download into the ground-truth layouts of the benchmarks, with
// exactly the label mappings of CAT-Seg's `datasets/prepare_*.py`:
//   ade150       ADEChallengeData2016/annotations/validation/*.png: uint8(raw − 1), so 0 (other) → 255
//                (split "train": annotations/training, as detectron2's prepare_ade20k_sem_seg.py)
//   voc20        VOC2012 val (ImageSets/Segmentation/val.txt), SegmentationClassAug (or SegmentationClass,
//                palette or colour-rendered): 0 → 255, k → k−1, 255 → 255, anything else → 255; masks
//                that end up all-255 are not written (as CAT-Seg)
//   voc20b       the same with background 0 → 20
//   cocostuff171 coco-stuff/annotations/val2017/*.png (stuffthingmaps: cocoId−1, 255 unlabeled) → 0..170
//                (split "train": annotations/train2017, the same mapping, as CAT-Seg converts both)
//   pc59         VOC2010/trainval_merged.json (RLE, val phase) → 60-id table: id 0 → 255, the other 59 → 0..58
//   pc459        VOC2010/trainval/<name>.mat (PASCAL-Context LabelMap, 1..459) → uint16(LabelMap − 1) TIFF
//   ade847       ADE20K_2021_17_01/images/ADE/validation/**/ADE_val_*.jpg + *_seg.png (full format, class id
//                floor(R/10)·256 + G) → CAT-Seg's id→trainId table, 65535 elsewhere, uint16 TIFF; image and
//                label resized to short side 512 when larger, images re-encoded as PIL does (src/data/ade847.ts)
// Every benchmark's evaluation split ("val") can be prepared; the training split ("train") of those listed in
// PREPARE_TRAIN_SIZES too, into the folders `splitSpec` names (those SegmentationDataset reads).
// Outputs are written atomically, skipped when they exist and are newer than their inputs (so a run can be
// interrupted and resumed), and a corrupt or missing input is reported by name without stopping the run.

import { existsSync, promises as fsp, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { assetPath } from "../util/assets.js";
import { writeFileAtomic } from "../util/fs.js";
import { Progress } from "../util/progress.js";
import { ade847Lut, InputFileError, prepareAde847Pair } from "./ade847.js";
import {
  type BenchmarkName,
  type BenchmarkSpec,
  benchmarkPaths,
  getBenchmark,
  splitSpec,
} from "./benchmarks.js";
import { decodeCocoRle, decodeVocColorMask, type LabelMap, writeLabelMap } from "./labels.js";
import { readMatFile } from "./matlab.js";
import { decodePng, pngToRgb } from "./png.js";

// ---- label mappings (pure) ----

/** ADE-150: uint8(raw − 1): 0 → 255, k → k − 1. */
export function mapAde150(raw: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = (raw[i]! - 1) & 0xff;
  return out;
}

/** VOC SegmentationClass indices → VOC-20 (background → 255) or VOC-20b (background → 20). */
export function mapVoc(raw: ArrayLike<number>, background: "ignore" | "class20"): Uint8Array {
  const bg = background === "ignore" ? 255 : 20;
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    out[i] = v === 0 ? bg : v >= 1 && v <= 20 ? v - 1 : 255;
  }
  return out;
}

/** stuffthingmaps value (COCO id − 1) → COCO-Stuff-171 train id; 255 for unlabeled and the 11 unused ids. */
export const COCO_STUFF_171_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256).fill(255);
  const things = [
    ...range(0, 10),
    ...range(12, 24),
    26,
    27,
    ...range(30, 43),
    ...range(45, 64),
    66,
    69,
    ...range(71, 81),
    ...range(83, 89),
  ];
  things.forEach((id, k) => {
    lut[id] = k;
  });
  for (let id = 91; id <= 181; id++) lut[id] = 80 + (id - 91);
  return lut;
})();

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

export function mapCocoStuff171(raw: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    out[i] = v < 256 ? COCO_STUFF_171_LUT[v]! : 255;
  }
  return out;
}

/** The 60 PASCAL-Context ids kept by PC-59 (sorted); position k maps to k − 1 (so id 0 → 255). */
export const PC59_IDS: readonly number[] = [
  0, 2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158, 159, 416, 33, 162, 420, 454, 295,
  296, 427, 44, 45, 46, 308, 59, 440, 445, 31, 232, 65, 354, 424, 68, 326, 72, 458, 34, 207, 80, 355, 85, 347,
  220, 349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115,
].sort((a, b) => a - b);

/** PASCAL-Context id map → PC-59 train ids (255 for id 0 and every id outside the 59). */
export function mapPc59(ids: ArrayLike<number>): Uint8Array {
  const lut = new Map<number, number>();
  PC59_IDS.forEach((id, k) => {
    lut.set(id, (k - 1) & 0xff);
  });
  const out = new Uint8Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = lut.get(ids[i]!) ?? 255;
  return out;
}

// ---- reading sources ----

async function readPng(file: string) {
  const buf = await fsp.readFile(file);
  try {
    return decodePng(buf);
  } catch (e) {
    throw new Error(`corrupt PNG (${(e as Error).message})`);
  }
}

/** A single-channel 8-bit PNG (grey or palette indices). */
async function readIndexPng(file: string): Promise<LabelMap> {
  const png = await readPng(file);
  if ((png.colorType !== 0 && png.colorType !== 3) || png.bitDepth > 8)
    throw new Error(
      `expected an 8-bit grey or palette PNG, got colour type ${png.colorType}, ${png.bitDepth}-bit`,
    );
  return { data: png.data, width: png.width, height: png.height };
}

/** A VOC mask as SegmentationClass indices: grey / palette PNG as stored, colour-rendered RGB via the palette. */
export async function readVocMask(file: string): Promise<LabelMap> {
  const png = await readPng(file);
  if ((png.colorType === 0 || png.colorType === 3) && png.bitDepth <= 8)
    return { data: png.data, width: png.width, height: png.height };
  if (png.bitDepth !== 8) throw new Error(`unsupported ${png.bitDepth}-bit colour PNG`);
  return decodeVocColorMask(pngToRgb(png), png.width, png.height);
}

// ---- the job runner ----

export interface PrepareFailure {
  /** The input file (or id) that failed. */
  file: string;
  error: string;
}

/** A split `dedos prepare` builds: the evaluation split, or the training split. */
export type PrepareSplit = "val" | "train";

/** What `--split` accepts: one split, or every split the benchmark supports. */
export type PrepareSplitChoice = PrepareSplit | "all";

export const PREPARE_SPLIT_CHOICES: readonly PrepareSplitChoice[] = ["val", "train", "all"];

/** Benchmarks whose training split can be prepared, with its size (the count check's default). */
export const PREPARE_TRAIN_SIZES: Readonly<Partial<Record<BenchmarkName, number>>> = {
  ade150: 20210,
  cocostuff171: 118287,
};

/** The splits of a benchmark `prepareDataset` can build ("val" for all, "train" for some). */
export function preparableSplits(name: BenchmarkName): PrepareSplit[] {
  return PREPARE_TRAIN_SIZES[name] === undefined ? ["val"] : ["val", "train"];
}

/** The splits a `--split` choice stands for ("all": every preparable split); the error names the supported ones. */
export function resolvePrepareSplits(name: BenchmarkName, choice: string): PrepareSplit[] {
  const supported = preparableSplits(name);
  if (choice === "all") return supported;
  const split = supported.find((s) => s === choice);
  if (split) return [split];
  const known = (PREPARE_SPLIT_CHOICES as readonly string[]).includes(choice);
  throw new Error(
    `${known ? `the ${choice} split of ${name} cannot be prepared` : `unknown split '${choice}'`} (supported splits of ${name}: ${[...supported, "all"].join(", ")})`,
  );
}

export interface PrepareReport {
  dataset: BenchmarkName;
  split: PrepareSplit;
  outDir: string;
  /** Inputs listed for the split. */
  listed: number;
  written: number;
  /** Outputs already present and up to date. */
  upToDate: number;
  /** Masks with no labelled pixel, not written (CAT-Seg's VOC rule). */
  empty: number;
  failed: PrepareFailure[];
  /** Outputs present at the end. */
  present: number;
  expected: number;
  /** present + empty === expected, and nothing failed. */
  ok: boolean;
  seconds: number;
}

export interface PrepareOptions {
  /** Datasets root (holding e.g. ADEChallengeData2016/) or the dataset folder itself. */
  root: string;
  /** Rebuild outputs even if up to date. */
  force?: boolean;
  /** Progress line on stderr (default: true). */
  progress?: boolean;
  /** Messages (failures, summary); default: console.error. */
  log?: (msg: string) => void;
  /** The split to build (default "val", the evaluation split); see `preparableSplits`. */
  split?: PrepareSplit;
  /** Expected number of outputs (default: the split's size; for tests on small copies). */
  expected?: number;
}

interface Job {
  /** Name used in reports (the input file). */
  name: string;
  inputs: string[];
  output: string;
  /** Other files the build writes itself (ade847: the converted image); checked like `output`. */
  extraOutputs?: string[];
  /** The image the label belongs to, which must exist (a missing one is a failure of this job, not another). */
  image?: string;
  /** Builds the output label map, or null when nothing is to be written (all ignore). */
  build: () => Promise<LabelMap | null>;
}

/** Datasets `prepareDataset` can build; the others need sources not handled yet. */
export const PREPARE_SUPPORTED: readonly BenchmarkName[] = [
  "ade150",
  "voc20",
  "voc20b",
  "cocostuff171",
  "pc59",
  "pc459",
  "ade847",
];

function mtime(file: string): number {
  return statSync(file).mtimeMs;
}

function isUpToDate(job: Job): boolean {
  const outputs = [job.output, ...(job.extraOutputs ?? [])];
  if (!outputs.every((f) => existsSync(f))) return false;
  const out = Math.min(...outputs.map(mtime));
  return job.inputs.every((f) => existsSync(f) && mtime(f) <= out);
}

/** Removes temporary files a killed run may have left in `dir`. */
function removeStaleTemps(dir: string): void {
  for (const f of readdirSync(dir)) if (f.startsWith(".") && f.includes(".tmp-")) rmQuiet(join(dir, f));
}

function rmQuiet(f: string): void {
  rmSync(f, { force: true });
}

async function runJobs(
  spec: BenchmarkSpec,
  split: PrepareSplit,
  splitSize: number,
  outDir: string,
  jobs: Job[],
  preFailed: PrepareFailure[],
  o: PrepareOptions,
): Promise<PrepareReport> {
  const log = o.log ?? ((m: string) => console.error(m));
  const t0 = Date.now();
  await fsp.mkdir(outDir, { recursive: true });
  removeStaleTemps(outDir);
  // One failure at most per listed input: a job whose image is missing and whose label fails too is one
  // failure naming both (counted twice, a run with neither images nor labels reported twice its size).
  const failed = [...preFailed];
  for (const f of preFailed) log(`${spec.name}: ${f.file}: ${f.error}`);
  let written = 0;
  let upToDate = 0;
  let empty = 0;
  const label = `prepare ${spec.name}${split === "val" ? "" : ` ${split}`}`;
  const progress = (o.progress ?? true) ? new Progress(jobs.length, label) : undefined;
  const fail = (f: PrepareFailure) => {
    failed.push(f);
    log(`\n${spec.name}: ${f.file}: ${f.error}`);
  };
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    if (i > 0) progress?.tick();
    const imageMissing = job.image !== undefined && !existsSync(job.image);
    const imageFailure = { file: job.image!, error: "image missing" };
    if (!o.force && isUpToDate(job)) {
      upToDate++;
      if (imageMissing) fail(imageFailure);
      continue;
    }
    try {
      const missing = job.inputs.filter((f) => !existsSync(f));
      if (missing.length)
        throw job.inputs.length > 1
          ? new InputFileError(missing[0]!, `missing input ${missing.join(", ")}`)
          : new Error(`missing input ${missing.join(", ")}`);
      const map = await job.build();
      if (map === null) {
        empty++;
        if (existsSync(job.output)) await fsp.rm(job.output);
      } else {
        await writeLabelMap(job.output, map);
        written++;
      }
      if (imageMissing) fail(imageFailure);
    } catch (e) {
      const error = (e as Error).message;
      const file = e instanceof InputFileError ? e.file : job.name;
      fail({ file, error: imageMissing ? `${error}; image missing too: ${job.image}` : error });
    }
  }
  if (jobs.length > 0) progress?.tick();
  const present = readdirSync(outDir).filter(
    (f) => f.endsWith(`.${spec.gtExt}`) && !f.startsWith("."),
  ).length;
  const expected = o.expected ?? splitSize;
  const ok = failed.length === 0 && present + empty === expected;
  return {
    dataset: spec.name,
    split,
    outDir,
    listed: jobs.length + preFailed.length,
    written,
    upToDate,
    empty,
    failed,
    present,
    expected,
    ok,
    seconds: (Date.now() - t0) / 1000,
  };
}

function stem(f: string): string {
  return basename(f).replace(/\.[^.]+$/, "");
}

function listDir(dir: string, ext: string): string[] {
  if (!existsSync(dir)) throw new Error(`folder not found: ${dir}`);
  return readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith(ext) && !f.startsWith("."))
    .sort();
}

/** The image of a label: `<imageDir>/<id>.jpg` (checked by the job runner). */
function imagePath(imageDir: string, id: string, ext = "jpg"): string {
  return join(imageDir, `${id}.${ext}`);
}

// ---- per-dataset job lists ----

/**
 * A folder of index PNGs, each mapped to the benchmark's label values (ADE-150, COCO-Stuff-171): the raw
 * annotations/<split folder> to the prepared annotations_detectron2/<split folder> (`spec` already pointing
 * at the split, so the split folder is the last part of its gtDir).
 */
function pngFolderJobs(
  spec: BenchmarkSpec,
  root: string,
  map: (raw: Uint8Array | Uint16Array) => Uint8Array,
): { outDir: string; jobs: Job[] } {
  const p = benchmarkPaths(spec, root);
  const srcDir = join(p.datasetDir, "annotations", basename(spec.gtDir));
  const jobs = listDir(srcDir, ".png").map((f): Job => {
    const input = join(srcDir, f);
    return {
      name: input,
      inputs: [input],
      image: imagePath(p.imageDir, stem(f)),
      output: join(p.gtDir, f),
      build: async () => {
        const m = await readIndexPng(input);
        return { data: map(m.data), width: m.width, height: m.height };
      },
    };
  });
  return { outDir: p.gtDir, jobs };
}

/** Names listed one per line (split lists such as val.txt). */
function readNameList(file: string): string[] {
  return readFileSync(file, "utf8")
    .split(/\r?\n/)
    .map((x) => x.trim())
    .filter(Boolean);
}

function vocJobs(spec: BenchmarkSpec, root: string): { outDir: string; jobs: Job[] } {
  const p = benchmarkPaths(spec, root);
  const listFile = join(p.datasetDir, "ImageSets", "Segmentation", "val.txt");
  if (!existsSync(listFile)) throw new Error(`split list not found: ${listFile}`);
  const ids = readNameList(listFile);
  const aug = join(p.datasetDir, "SegmentationClassAug");
  const srcDir = existsSync(aug) ? aug : join(p.datasetDir, "SegmentationClass");
  const background = spec.foldBackground ? "class20" : "ignore";
  const jobs = ids.map((id): Job => {
    const input = join(srcDir, `${id}.png`);
    return {
      name: input,
      inputs: [input],
      image: imagePath(p.imageDir, id),
      output: join(p.gtDir, `${id}.png`),
      build: async () => {
        const m = await readVocMask(input);
        const data = mapVoc(m.data, background);
        if (data.every((v) => v === 255)) return null;
        return { data, width: m.width, height: m.height };
      },
    };
  });
  return { outDir: p.gtDir, jobs };
}

interface PcImage {
  image_id: number;
  file_name: string;
  height: number;
  width: number;
  phase?: string;
}
interface PcAnno {
  image_id: number;
  category_id: number;
  segmentation: { size: number[]; counts: string | number[] };
}

function pc59Jobs(spec: BenchmarkSpec, root: string): { outDir: string; jobs: Job[] } {
  const p = benchmarkPaths(spec, root);
  const json = join(p.datasetDir, "trainval_merged.json");
  if (!existsSync(json)) throw new Error(`annotation file not found: ${json}`);
  // Parsed lazily (it is large), and only if some output needs building.
  let parsed: { images: Map<number, PcImage>; annos: Map<number, PcAnno[]> } | undefined;
  const load = () => {
    if (!parsed) {
      let data: { images: PcImage[]; annos_segmentation: PcAnno[] };
      try {
        data = JSON.parse(readFileSync(json, "utf8"));
      } catch (e) {
        throw new Error(`${json}: cannot parse (${(e as Error).message})`);
      }
      const images = new Map<number, PcImage>();
      for (const im of data.images) if (im.phase === "val") images.set(im.image_id, im);
      const annos = new Map<number, PcAnno[]>();
      for (const a of data.annos_segmentation) {
        if (!images.has(a.image_id)) continue;
        const l = annos.get(a.image_id);
        if (l) l.push(a);
        else annos.set(a.image_id, [a]);
      }
      parsed = { images, annos };
    }
    return parsed;
  };
  // The split: val images of the json. To avoid parsing when everything is built, the ids come from the
  // bundled list (CAT-Seg's pascalcontext_val.txt, the same 5104 images) when all its outputs exist.
  const localList = join(p.datasetDir, "pascalcontext_val.txt");
  const listFile = existsSync(localList) ? localList : assetPath("classes", "pascalcontext_val.txt");
  const makeJob = (name: string, imageId: number | undefined): Job => ({
    name: `${json} (image ${name})`,
    inputs: [json],
    output: join(p.gtDir, `${name}.png`),
    build: async () => {
      const { images, annos } = load();
      const id = imageId ?? [...images.values()].find((im) => stem(im.file_name) === name)?.image_id;
      const im = id === undefined ? undefined : images.get(id);
      if (!im) throw new Error(`image ${name} not in the val phase of the json`);
      const mask = new Uint16Array(im.height * im.width);
      for (const a of annos.get(im.image_id) ?? []) {
        const [h, w] = a.segmentation.size as [number, number];
        if (h !== im.height || w !== im.width)
          throw new Error(`RLE size ${h}×${w} ≠ image ${im.height}×${im.width}`);
        const m = decodeCocoRle({ size: [h, w], counts: a.segmentation.counts });
        for (let i = 0; i < m.length; i++) if (m[i]) mask[i] = a.category_id;
      }
      return { data: mapPc59(mask), width: im.width, height: im.height };
    },
  });
  let jobs: Job[];
  const listed = existsSync(listFile) ? readNameList(listFile) : [];
  if (listed.length > 0 && listed.every((n) => existsSync(join(p.gtDir, `${n}.png`)))) {
    jobs = listed.map((n) => makeJob(n, undefined));
  } else {
    const { images } = load();
    jobs = [...images.values()]
      .sort((a, b) => (a.file_name < b.file_name ? -1 : 1))
      .map((im) => makeJob(stem(im.file_name), im.image_id));
  }
  for (const j of jobs) j.image = imagePath(p.imageDir, stem(j.output));
  return { outDir: p.gtDir, jobs };
}

/** PASCAL-Context-459: the val list's LabelMap .mat files → uint16(LabelMap − 1), as CAT-Seg writes them. */
function pc459Jobs(spec: BenchmarkSpec, root: string): { outDir: string; jobs: Job[] } {
  const p = benchmarkPaths(spec, root);
  const matDir = join(p.datasetDir, "trainval");
  if (!existsSync(matDir))
    throw new Error(`LabelMap folder not found: ${matDir} (unpack PASCAL-Context's trainval.tar.gz there)`);
  const localList = join(p.datasetDir, "pascalcontext_val.txt");
  const listFile = existsSync(localList) ? localList : assetPath("classes", "pascalcontext_val.txt");
  const names = readNameList(listFile);
  const jobs: Job[] = names.map((name) => {
    const mat = join(matDir, `${name}.mat`);
    return {
      name: mat,
      inputs: [mat],
      output: join(p.gtDir, `${name}.tif`),
      build: async () => pc459LabelMap(readFileSync(mat), mat),
    };
  });
  for (const j of jobs) j.image = imagePath(p.imageDir, stem(j.output));
  return { outDir: p.gtDir, jobs };
}

/** A LabelMap MAT-file → the prepared PC-459 label map: uint16(LabelMap − 1), 0 wrapping to 65535 as in numpy. */
export function pc459LabelMap(buf: Buffer, what: string): LabelMap {
  const m = readMatFile(buf, what).get("LabelMap");
  if (m?.dims.length !== 2) throw new Error(`${what}: no 2-d LabelMap matrix`);
  const [height, width] = m.dims as [number, number];
  const data = new Uint16Array(m.data.length);
  for (let i = 0; i < data.length; i++) data[i] = (m.data[i]! - 1) & 0xffff;
  return { data, width, height };
}

/** Every `ADE_val_*.jpg` under `dir` (recursively), sorted by file name. */
function walkAdeVal(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith(".")) continue;
      const f = join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith(".jpg") && e.name.split("_")[1] === "val") out.push(f);
    }
  };
  walk(dir);
  return out.sort((a, b) => (basename(a) < basename(b) ? -1 : basename(a) > basename(b) ? 1 : 0));
}

/**
 * ADE20K-847 (CAT-Seg's prepare_ade20k_full.py, validation split). CAT-Seg takes the images from
 * index_ade20k.pkl (folder + filename, the split given by the file name's "_val_"); the 2000 validation
 * entries of that index are exactly the ADE_val_*.jpg files under images/ADE/validation/, so this walks that
 * folder (no pickle needed) and the count check confirms the set. Each job writes the converted image to
 * images_detectron2/validation/<name>.jpg and the label to annotations_detectron2/validation/<name>.tif.
 */
function ade847Jobs(
  spec: BenchmarkSpec,
  root: string,
  pre: PrepareFailure[],
): { outDir: string; jobs: Job[] } {
  const p = benchmarkPaths(spec, root);
  // `root` may be the ADE20K_2021_17_01 folder itself, before any output folder exists.
  const datasetDir =
    !existsSync(join(p.datasetDir, "images", "ADE")) && existsSync(join(root, "images", "ADE"))
      ? root
      : p.datasetDir;
  const srcDir = join(datasetDir, "images", "ADE", "validation");
  if (!existsSync(srcDir))
    throw new Error(`folder not found: ${srcDir} (unpack ADE20K_2021_17_01 under the datasets root)`);
  const imageDir = join(datasetDir, spec.imageDir);
  const gtDir = join(datasetDir, spec.gtDir);
  mkdirSync(imageDir, { recursive: true });
  removeStaleTemps(imageDir);
  let lut: Uint16Array | undefined;
  const seen = new Map<string, string>();
  const jobs: Job[] = [];
  for (const jpg of walkAdeVal(srcDir)) {
    const name = stem(jpg);
    const seg = join(dirname(jpg), `${name}_seg.png`);
    const imageOut = join(imageDir, `${name}.jpg`);
    const first = seen.get(name);
    if (first) {
      pre.push({ file: jpg, error: `duplicate image name (also ${first})` });
      continue;
    }
    seen.set(name, jpg);
    jobs.push({
      name: jpg,
      inputs: [jpg, seg],
      output: join(gtDir, `${name}.tif`),
      extraOutputs: [imageOut],
      build: async () => {
        lut ??= ade847Lut();
        const r = await prepareAde847Pair(jpg, seg, lut);
        await writeFileAtomic(imageOut, r.image);
        return r.label;
      },
    });
  }
  return { outDir: gtDir, jobs };
}

/**
 * Prepares one split of a benchmark's ground truth under `o.root`. Throws only when the source layout is not
 * found or the split cannot be prepared for this benchmark.
 */
export async function prepareDataset(name: string, o: PrepareOptions): Promise<PrepareReport> {
  const spec = getBenchmark(name);
  const split = o.split ?? "val";
  try {
    resolvePrepareSplits(spec.name, split);
  } catch (e) {
    throw new Error(`prepare ${spec.name}: ${(e as Error).message}`);
  }
  const splitSize = split === "val" ? spec.splitSize : PREPARE_TRAIN_SIZES[spec.name]!;
  const pre: PrepareFailure[] = [];
  const { outDir, jobs } =
    spec.name === "ade150"
      ? pngFolderJobs(splitSpec(spec, split), o.root, mapAde150)
      : spec.name === "voc20" || spec.name === "voc20b"
        ? vocJobs(spec, o.root)
        : spec.name === "cocostuff171"
          ? pngFolderJobs(splitSpec(spec, split), o.root, mapCocoStuff171)
          : spec.name === "pc459"
            ? pc459Jobs(spec, o.root)
            : spec.name === "ade847"
              ? ade847Jobs(spec, o.root, pre)
              : pc59Jobs(spec, o.root);
  return runJobs(spec, split, splitSize, outDir, jobs, pre, o);
}
