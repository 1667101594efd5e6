// The evaluation benchmarks (DEDOS spec §8): class lists, prepared folder layouts (those of CAT-Seg's
// `register_*.py`), ground-truth formats, ignore labels and split sizes.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { assetPath } from "../util/assets.js";

export type BenchmarkName = "ade150" | "ade847" | "pc59" | "pc459" | "voc20" | "voc20b" | "cocostuff171";

export const BENCHMARK_NAMES: readonly BenchmarkName[] = [
  "ade150",
  "ade847",
  "pc59",
  "pc459",
  "voc20",
  "voc20b",
  "cocostuff171",
];

/** How the prepared ground truth is stored. */
export type GtFormat = "png-u8" | "tiff-u16";

export interface BenchmarkSpec {
  name: BenchmarkName;
  title: string;
  /** Class-name list, a file in `assets/classes/` (one JSON array of names; "a, b" lists synonyms). */
  classFile: string;
  /** Number of names in the class file (the vocabulary the model scores). */
  numNames: number;
  /** Number of classes of the ground truth / confusion matrix (21 for voc20b: 20 + background). */
  numClasses: number;
  /** Dataset folder under the datasets root (DETECTRON2_DATASETS layout). */
  datasetDir: string;
  /** Image folder and extension, relative to `datasetDir`. */
  imageDir: string;
  imageExt: "jpg";
  /** Prepared ground-truth folder and extension, relative to `datasetDir`. */
  gtDir: string;
  gtExt: "png" | "tif";
  gtFormat: GtFormat;
  ignoreLabel: number;
  /** Number of images in the evaluation split. */
  splitSize: number;
  /** VOC-20b: GT background is 20 and predictions ≥ 20 fold to 20 before counting. */
  foldBackground: boolean;
}

export const BENCHMARKS: Readonly<Record<BenchmarkName, BenchmarkSpec>> = {
  ade150: {
    name: "ade150",
    title: "ADE20K-150 (val)",
    classFile: "ade150.json",
    numNames: 150,
    numClasses: 150,
    datasetDir: "ADEChallengeData2016",
    imageDir: "images/validation",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/validation",
    gtExt: "png",
    gtFormat: "png-u8",
    ignoreLabel: 255,
    splitSize: 2000,
    foldBackground: false,
  },
  ade847: {
    name: "ade847",
    title: "ADE20K-847 (val)",
    classFile: "ade847.json",
    numNames: 847,
    numClasses: 847,
    datasetDir: "ADE20K_2021_17_01",
    imageDir: "images_detectron2/validation",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/validation",
    gtExt: "tif",
    gtFormat: "tiff-u16",
    ignoreLabel: 65535,
    splitSize: 2000,
    foldBackground: false,
  },
  pc59: {
    name: "pc59",
    title: "PASCAL Context-59 (val)",
    classFile: "pc59.json",
    numNames: 59,
    numClasses: 59,
    datasetDir: "VOCdevkit/VOC2010",
    imageDir: "JPEGImages",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/pc59_val",
    gtExt: "png",
    gtFormat: "png-u8",
    ignoreLabel: 255,
    splitSize: 5104,
    foldBackground: false,
  },
  pc459: {
    name: "pc459",
    title: "PASCAL Context-459 (val)",
    classFile: "pc459.json",
    numNames: 459,
    numClasses: 459,
    datasetDir: "VOCdevkit/VOC2010",
    imageDir: "JPEGImages",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/pc459_val",
    gtExt: "tif",
    gtFormat: "tiff-u16",
    ignoreLabel: 459,
    splitSize: 5104,
    foldBackground: false,
  },
  voc20: {
    name: "voc20",
    title: "PASCAL VOC-20 (val)",
    classFile: "voc20.json",
    numNames: 20,
    numClasses: 20,
    datasetDir: "VOCdevkit/VOC2012",
    imageDir: "JPEGImages",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/val",
    gtExt: "png",
    gtFormat: "png-u8",
    ignoreLabel: 255,
    splitSize: 1449,
    foldBackground: false,
  },
  voc20b: {
    name: "voc20b",
    title: "PASCAL VOC-20b (val, background as class 20)",
    classFile: "voc20b.json",
    numNames: 59,
    numClasses: 21,
    datasetDir: "VOCdevkit/VOC2012",
    imageDir: "JPEGImages",
    imageExt: "jpg",
    gtDir: "annotations_detectron2_bg/val",
    gtExt: "png",
    gtFormat: "png-u8",
    ignoreLabel: 255,
    splitSize: 1449,
    foldBackground: true,
  },
  cocostuff171: {
    name: "cocostuff171",
    title: "COCO-Stuff-171 (val2017)",
    classFile: "coco.json",
    numNames: 171,
    numClasses: 171,
    datasetDir: "coco-stuff",
    imageDir: "images/val2017",
    imageExt: "jpg",
    gtDir: "annotations_detectron2/val2017",
    gtExt: "png",
    gtFormat: "png-u8",
    ignoreLabel: 255,
    splitSize: 5000,
    foldBackground: false,
  },
};

export function isBenchmarkName(s: string): s is BenchmarkName {
  return (BENCHMARK_NAMES as readonly string[]).includes(s);
}

/** The spec of a benchmark; the error lists the known names. */
export function getBenchmark(name: string): BenchmarkSpec {
  if (!isBenchmarkName(name))
    throw new Error(`unknown benchmark '${name}' (known: ${BENCHMARK_NAMES.join(", ")})`);
  return BENCHMARKS[name];
}

/** Absolute path of a benchmark's class-list file. */
export function classFilePath(spec: BenchmarkSpec): string {
  return assetPath("classes", spec.classFile);
}

/** The class names of a benchmark, checked against the expected count. */
export function loadClassNames(spec: BenchmarkSpec): string[] {
  const file = classFilePath(spec);
  const names = JSON.parse(readFileSync(file, "utf8")) as unknown;
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string"))
    throw new Error(`${file}: expected a JSON array of strings`);
  if (names.length !== spec.numNames)
    throw new Error(`${file}: ${names.length} names, expected ${spec.numNames} for ${spec.name}`);
  return names;
}

// Other splits follow CAT-Seg's registrations: the evaluation split's folders with the split token replaced,
// e.g. cocostuff171 "train" → coco-stuff/images/train2017 + coco-stuff/annotations_detectron2/train2017,
// ade150 "train" → images/training + annotations_detectron2/training, voc20 "train" → annotations_detectron2/train.

/** The token naming the evaluation split in a benchmark's folders, and its spelling for another split. */
function splitToken(spec: BenchmarkSpec, split: string): { from: string; to: string } {
  switch (spec.name) {
    case "cocostuff171":
      return { from: "val2017", to: /\d{4}$/.test(split) ? split : `${split}2017` };
    case "ade150":
    case "ade847":
      return {
        from: "validation",
        to: split === "train" ? "training" : split === "val" ? "validation" : split,
      };
    default:
      return { from: "val", to: split };
  }
}

function replaceLast(dir: string, from: string, to: string): string {
  const parts = dir.split("/");
  const last = parts[parts.length - 1]!;
  if (last.endsWith(from)) parts[parts.length - 1] = last.slice(0, last.length - from.length) + to;
  return parts.join("/");
}

/** The benchmark spec with its image and ground-truth folders pointing at another split. */
export function splitSpec(spec: BenchmarkSpec, split: string): BenchmarkSpec {
  if (!/^[\w.-]+$/.test(split)) throw new Error(`bad split name '${split}'`);
  const { from, to } = splitToken(spec, split);
  return {
    ...spec,
    imageDir: replaceLast(spec.imageDir, from, to),
    gtDir: replaceLast(spec.gtDir, from, to),
  };
}

export interface BenchmarkPaths {
  datasetDir: string;
  imageDir: string;
  gtDir: string;
}

/**
 * Where a benchmark lives under `root`: either the datasets root (holding e.g. `ADEChallengeData2016/`) or
 * the dataset folder itself.
 */
export function benchmarkPaths(spec: BenchmarkSpec, root: string): BenchmarkPaths {
  const nested = join(root, spec.datasetDir);
  const datasetDir = existsSync(nested) || !looksLikeDatasetDir(spec, root) ? nested : root;
  return { datasetDir, imageDir: join(datasetDir, spec.imageDir), gtDir: join(datasetDir, spec.gtDir) };
}

function looksLikeDatasetDir(spec: BenchmarkSpec, dir: string): boolean {
  const first = spec.imageDir.split("/")[0]!;
  return existsSync(join(dir, first)) || existsSync(join(dir, spec.gtDir.split("/")[0]!));
}
