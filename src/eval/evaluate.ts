// Evaluation of a segmenter over a prepared benchmark split: sliding-window inference per image, one
// confusion matrix (detectron2 semantics). `evaluateShard` runs one process's share of the images;
// `evaluate` is the whole evaluation: the shards of the process group, their matrices summed, the metrics
// and (optionally) the report files.
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { basename, extname, join } from "node:path";
import type { Segmenter } from "../api/segmenter.js";
import { type BenchmarkSpec, benchmarkPaths, getBenchmark, loadClassNames } from "../data/benchmarks.js";
import { readImageRGB } from "../data/image-decode.js";
import { readLabelMap } from "../data/labels.js";
import * as dist from "../torch/distributed.js";
import { writeOverlay } from "../viz/overlay.js";
import { type EvalReport, writeEvalReport } from "./report.js";
import {
  ConfusionMatrix,
  computeMetrics,
  foldVocBackground,
  type MiouDefinition,
  type SemsegMetrics,
} from "./semseg-metrics.js";

export interface EvaluateOptions {
  /** Only the first N images of the split (a quick look). */
  limit?: number;
  /** This process's shard: images i with i % worldSize === rank. */
  rank?: number;
  worldSize?: number;
  /** Write a colour overlay of every prediction here. */
  predictionsDir?: string;
  /** Called after each image (for progress). */
  onImage?: (ok: boolean) => void;
}

export interface EvaluationShard {
  spec: BenchmarkSpec;
  classNames: string[];
  conf: ConfusionMatrix;
  /** Images this shard evaluated. */
  images: number;
  /** Images of the whole (limited) split. */
  total: number;
  failed: { file: string; error: string }[];
}

/** The (image, ground truth) pairs of a prepared split, sorted by name. Errors name missing folders. */
export function listSplit(spec: BenchmarkSpec, root: string): { image: string; gt: string }[] {
  const p = benchmarkPaths(spec, root);
  for (const [what, dir] of [
    ["image", p.imageDir],
    ["ground-truth", p.gtDir],
  ] as const) {
    if (!existsSync(dir)) {
      throw new Error(
        `${spec.name}: ${what} folder ${dir} does not exist (prepare it with: dedos prepare ${spec.name} --root ${root})`,
      );
    }
  }
  return readdirSync(p.gtDir)
    .filter((f) => f.endsWith(`.${spec.gtExt}`))
    .sort()
    .map((f) => ({
      gt: join(p.gtDir, f),
      image: join(p.imageDir, `${basename(f, extname(f))}.${spec.imageExt}`),
    }));
}

export async function evaluateShard(
  segmenter: Segmenter,
  benchmark: string,
  root: string,
  o: EvaluateOptions = {},
): Promise<EvaluationShard> {
  const spec = getBenchmark(benchmark);
  const classNames = loadClassNames(spec);
  const all = listSplit(spec, root).slice(0, o.limit ?? Number.POSITIVE_INFINITY);
  const rank = o.rank ?? 0;
  const world = o.worldSize ?? 1;
  const mine = all.filter((_, i) => i % world === rank);
  const conf = new ConfusionMatrix(spec.numClasses, spec.ignoreLabel);
  const failed: { file: string; error: string }[] = [];
  if (o.predictionsDir) mkdirSync(o.predictionsDir, { recursive: true });
  const legend = spec.foldBackground ? evaluatedClassNames(spec, classNames) : classNames;
  let images = 0;
  for (const { image, gt } of mine) {
    try {
      const [rgb, label] = await Promise.all([readImageRGB(image), readLabelMap(gt)]);
      if (label.width !== rgb.width || label.height !== rgb.height) {
        throw new Error(
          `ground truth ${gt} is ${label.width}×${label.height} but the image is ${rgb.width}×${rgb.height}`,
        );
      }
      const r = await segmenter.segment(rgb, classNames);
      const pred = spec.foldBackground ? foldVocBackground(r.labels, spec.numClasses - 1) : r.labels;
      conf.add(pred, label.data);
      if (o.predictionsDir) {
        await writeOverlay(
          join(o.predictionsDir, `${basename(image, extname(image))}.png`),
          rgb,
          pred,
          legend,
        );
      }
      images++;
      o.onImage?.(true);
    } catch (e) {
      failed.push({ file: image, error: (e as Error).message });
      o.onImage?.(false);
    }
  }
  return { spec, classNames, conf, images, total: all.length, failed };
}

/** The names of the benchmark's N evaluated classes: VOC-20b folds every background-like name into class 20. */
function evaluatedClassNames(spec: BenchmarkSpec, classNames: readonly string[]): string[] {
  const N = spec.numClasses;
  return spec.foldBackground ? [...classNames.slice(0, N - 1), "background"] : classNames.slice(0, N);
}

export interface BenchmarkEvalOptions extends Omit<EvaluateOptions, "rank" | "worldSize"> {
  /**
   * Split the images over the process group, when one of several processes is initialised, and sum the
   * results (default true; every rank must call `evaluate` then). false: this process evaluates them all.
   */
  distributed?: boolean;
  /** The headline mIoU definition (default d2-main; both are in the report). */
  miou?: MiouDefinition;
  /** Write metrics.json, per_class_iou.csv and per_class_iou.md here (rank 0 only). */
  reportDir?: string;
  /** The weights named in metrics.json (default "random"). */
  weights?: string;
}

export interface BenchmarkEvaluation {
  spec: BenchmarkSpec;
  /** This process's rank and the number of processes the images were split over. */
  rank: number;
  worldSize: number;
  /** The whole split's confusion matrix (summed over the processes) and its metrics. */
  conf: ConfusionMatrix;
  metrics: SemsegMetrics;
  /** Images evaluated, and images that failed, over all processes. */
  images: number;
  failedImages: number;
  /** This process's failures. */
  failed: { file: string; error: string }[];
  /** The report files written (rank 0, with `reportDir`). */
  files: string[];
}

/**
 * The evaluation of `segmenter` on a prepared benchmark: this process's shard of the images, the confusion
 * matrices and counts summed over the process group (int64: the result equals one process's), the metrics,
 * and the report files on rank 0.
 */
export async function evaluate(
  segmenter: Segmenter,
  benchmark: string,
  root: string,
  o: BenchmarkEvalOptions = {},
): Promise<BenchmarkEvaluation> {
  const distributed = (o.distributed ?? true) && dist.isDistributed();
  const rank = distributed ? dist.getRank() : 0;
  const worldSize = distributed ? dist.getWorldSize() : 1;
  const shard = await evaluateShard(segmenter, benchmark, root, { ...o, rank, worldSize });
  const { spec } = shard;
  let conf = shard.conf;
  let images = shard.images;
  let failedImages = shard.failed.length;
  if (worldSize > 1) {
    const summed = dist.allReduceCounts(
      BigInt64Array.from([...conf.toBigInt64Array(), BigInt(images), BigInt(failedImages)]),
    );
    const n = summed.length - 2;
    conf = ConfusionMatrix.fromCounts(conf.numClasses, conf.ignoreLabel, summed.subarray(0, n));
    [images, failedImages] = [Number(summed[n]), Number(summed[n + 1])];
  }
  const metrics = computeMetrics(conf, { miou: o.miou });
  const report = o.reportDir !== undefined && rank === 0 ? o.reportDir : null;
  const files =
    report !== null
      ? writeReport(report, {
          benchmark: spec.name,
          images,
          weights: o.weights ?? "random",
          metrics,
          classNames: evaluatedClassNames(spec, shard.classNames),
          gtPixels: gtPixels(conf),
        })
      : [];
  return { spec, rank, worldSize, conf, metrics, images, failedImages, failed: shard.failed, files };
}

/** The report files in `dir` (created if needed). */
function writeReport(dir: string, r: EvalReport): string[] {
  mkdirSync(dir, { recursive: true });
  return writeEvalReport(dir, r);
}

/** Pixels of each class in the ground truth: the confusion matrix's column sums over the N + 1 rows. */
function gtPixels(conf: ConfusionMatrix): number[] {
  const N = conf.numClasses;
  return Array.from({ length: N }, (_, g) => {
    let s = 0;
    for (let p = 0; p <= N; p++) s += conf.get(p, g);
    return s;
  });
}
