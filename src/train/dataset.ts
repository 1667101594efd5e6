// Training sets: the (image, ground truth) pairs of a prepared benchmark split, checked up front.
// Split folders follow CAT-Seg's registrations (`splitSpec`, src/data/benchmarks.ts), e.g. cocostuff171
// "train" → coco-stuff/images/train2017 + coco-stuff/annotations_detectron2/train2017.
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { benchmarkPaths, getBenchmark, splitSpec } from "../data/benchmarks.js";
import type { AugmentConfig, AugmentedSample } from "./augment.js";
import { type DatasetItem, loadRawSample, loadTrainingSample, type RawSample, sampleRng } from "./sample.js";

export type { DatasetItem, RawSample } from "./sample.js";

export interface DatasetOptions {
  /** Datasets root (DETECTRON2_DATASETS layout) or the benchmark's own folder. */
  root: string;
  /** A prepared benchmark (default cocostuff171). */
  benchmark?: string;
  /** Split name (default "train"). */
  split?: string;
}

export interface FolderDatasetOptions {
  imageDir: string;
  gtDir: string;
  /** Image extension without the dot (default "jpg"). */
  imageExt?: string;
  /** Ground-truth extension without the dot (default "png"). */
  gtExt?: string;
  ignoreLabel?: number;
  name?: string;
}

/** The (image, label) pairs of a training split; every image has its label (checked when opened). */
export class SegmentationDataset {
  private constructor(
    readonly name: string,
    readonly imageDir: string,
    readonly gtDir: string,
    readonly items: readonly DatasetItem[],
    /** The benchmark's ignore label (255 unless the ground truth says otherwise). */
    readonly ignoreLabel: number,
  ) {}

  /** A prepared benchmark split. Errors name a missing folder, an image without label, an empty split. */
  static open(o: DatasetOptions): SegmentationDataset {
    const base = getBenchmark(o.benchmark ?? "cocostuff171");
    const split = o.split ?? "train";
    const spec = splitSpec(base, split);
    const p = benchmarkPaths(spec, o.root);
    const hint = `(prepare it with: dedos prepare ${spec.name} --root ${o.root})`;
    return SegmentationDataset.fromFolders(
      {
        imageDir: p.imageDir,
        gtDir: p.gtDir,
        imageExt: spec.imageExt,
        gtExt: spec.gtExt,
        ignoreLabel: spec.ignoreLabel,
        name: `${spec.name}/${split}`,
      },
      hint,
    );
  }

  /** Any folder pair: images `<name>.<imageExt>` with labels `<name>.<gtExt>`. */
  static fromFolders(o: FolderDatasetOptions, hint = ""): SegmentationDataset {
    const imageExt = `.${o.imageExt ?? "jpg"}`;
    const gtExt = `.${o.gtExt ?? "png"}`;
    const name = o.name ?? o.imageDir;
    for (const [what, dir] of [
      ["image", o.imageDir],
      ["ground-truth", o.gtDir],
    ] as const) {
      if (!existsSync(dir) || !statSync(dir).isDirectory())
        throw new Error(`${name}: ${what} folder ${dir} does not exist${hint ? ` ${hint}` : ""}`);
    }
    const images = readdirSync(o.imageDir)
      .filter((f) => f.endsWith(imageExt))
      .sort();
    const labels = new Set(readdirSync(o.gtDir).filter((f) => f.endsWith(gtExt)));
    if (images.length === 0) throw new Error(`${name}: no *${imageExt} images in ${o.imageDir}`);
    const items: DatasetItem[] = [];
    const missing: string[] = [];
    for (const f of images) {
      const stem = basename(f, extname(f));
      const gt = `${stem}${gtExt}`;
      if (!labels.has(gt)) missing.push(join(o.imageDir, f));
      else {
        labels.delete(gt);
        items.push({ image: join(o.imageDir, f), gt: join(o.gtDir, gt) });
      }
    }
    if (missing.length > 0) {
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more image(s) without a label)` : "";
      throw new Error(
        `${name}: image ${missing[0]} has no label ${join(o.gtDir, `${basename(missing[0]!, imageExt)}${gtExt}`)}${more}`,
      );
    }
    if (labels.size > 0) {
      const first = [...labels].sort()[0]!;
      const more = labels.size > 1 ? ` (and ${labels.size - 1} more label(s) without an image)` : "";
      throw new Error(
        `${name}: label ${join(o.gtDir, first)} has no image ${join(o.imageDir, `${basename(first, gtExt)}${imageExt}`)}${more}`,
      );
    }
    return new SegmentationDataset(name, o.imageDir, o.gtDir, items, o.ignoreLabel ?? 255);
  }

  /** A dataset over explicit pairs (no checks beyond non-emptiness). */
  static fromItems(
    items: readonly DatasetItem[],
    o: { name?: string; ignoreLabel?: number } = {},
  ): SegmentationDataset {
    if (items.length === 0) throw new Error(`${o.name ?? "dataset"}: no samples`);
    return new SegmentationDataset(o.name ?? "dataset", "", "", items.slice(), o.ignoreLabel ?? 255);
  }

  get length(): number {
    return this.items.length;
  }

  private item(i: number): DatasetItem {
    const it = this.items[i];
    if (it === undefined)
      throw new Error(`${this.name}: index ${i} out of range (0..${this.items.length - 1})`);
    return it;
  }

  /** Decodes sample i (image through sharp, label via the exact PNG/TIFF readers). Errors name the file. */
  get(i: number): Promise<RawSample> {
    return loadRawSample(this.item(i));
  }

  /** Decodes and augments sample i as the loader does for (seed, epoch). */
  getAugmented(i: number, cfg: AugmentConfig, seed: number, epoch: number): Promise<AugmentedSample> {
    return loadTrainingSample({ item: this.item(i), index: i, epoch }, cfg, seed);
  }
}

export { sampleRng, splitSpec };
