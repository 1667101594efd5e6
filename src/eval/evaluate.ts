// Evaluation of a segmenter over a prepared benchmark split: sliding-window inference per image, one
// confusion matrix (detectron2 semantics), optionally sharded across processes.
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { basename, extname, join } from "node:path";
import type { Segmenter } from "../api/segmenter.js";
import { type BenchmarkSpec, benchmarkPaths, getBenchmark, loadClassNames } from "../data/benchmarks.js";
import { readImageRGB } from "../data/image-decode.js";
import { readLabelMap } from "../data/labels.js";
import { writeOverlay } from "../viz/overlay.js";
import { ConfusionMatrix, foldVocBackground } from "./semseg-metrics.js";

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
  // VOC-20b folds every background-like name into class 20: name it so in the legend.
  const legend = spec.foldBackground
    ? [...classNames.slice(0, spec.numClasses - 1), "background"]
    : classNames;
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
