// Decoding and augmenting training samples, and packing them into batch buffers. Free of libtorch (and of
// modules that load it), so that the loader's worker threads can import it: images are decoded by
// src/data/image-decode.ts and labels read by src/data/labels.ts, the decoders the rest of dedos uses.
import { type RgbImage, readImageFile } from "../data/image-decode.js";
import { type LabelMap, readLabelMap } from "../data/labels.js";
import { type AugmentConfig, type AugmentedSample, augmentSample, Rng } from "./augment.js";

/** One (image, ground truth) pair of a training set. */
export interface DatasetItem {
  image: string;
  gt: string;
}

export interface RawSample {
  image: RgbImage;
  label: LabelMap;
}

/** A sample to load into a batch: the file pair, its dataset index and the epoch it is drawn in. */
export interface SampleTask {
  item: DatasetItem;
  index: number;
  epoch: number;
}

/** Reads and decodes one pair. Errors name the file at fault. */
export async function loadRawSample(item: DatasetItem): Promise<RawSample> {
  const [image, label] = await Promise.all([readImageFile(item.image), readLabelMap(item.gt)]);
  if (image.width !== label.width || image.height !== label.height)
    throw new Error(
      `${item.gt}: label is ${label.width}×${label.height} but the image ${item.image} is ${image.width}×${image.height}`,
    );
  return { image, label };
}

/** The augmentation generator of one sample: a function of (seed, epoch, dataset index) only. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(seed, 0x53414d50 /* "SAMP" */, epoch, index);
}

/** Loads and augments one sample with its own generator. */
export async function loadTrainingSample(
  task: SampleTask,
  cfg: AugmentConfig,
  seed: number,
): Promise<AugmentedSample> {
  const raw = await loadRawSample(task.item);
  try {
    return augmentSample(raw.image, raw.label, cfg, sampleRng(seed, task.epoch, task.index));
  } catch (e) {
    throw new Error(`${task.item.image}: augmentation failed (${(e as Error).message})`);
  }
}

/** A batch as raw buffers: (B, 3, H, W) float32 0–255 images and (B, H, W) int64 labels (little-endian). */
export interface PackedBatch {
  images: ArrayBuffer;
  labels: ArrayBuffer;
  batch: number;
  height: number;
  width: number;
}

/** Packs augmented samples: HWC uint8 → CHW float32; labels widened to int64. */
export function packBatch(samples: AugmentedSample[], height: number, width: number): PackedBatch {
  const hw = height * width;
  const images = new Float32Array(samples.length * 3 * hw);
  const labels = new Int32Array(samples.length * hw * 2); // int64 = (low, high) int32 words, little-endian
  samples.forEach((s, b) => {
    if (s.height !== height || s.width !== width)
      throw new Error(`packBatch: sample ${b} is ${s.width}×${s.height}, expected ${width}×${height}`);
    const img = s.image;
    const base = b * 3 * hw;
    for (let p = 0, q = 0; p < hw; p++, q += 3) {
      images[base + p] = img[q]!;
      images[base + hw + p] = img[q + 1]!;
      images[base + 2 * hw + p] = img[q + 2]!;
    }
    const lab = s.label;
    const lbase = b * hw * 2;
    for (let p = 0; p < hw; p++) labels[lbase + 2 * p] = lab[p]!;
  });
  return { images: images.buffer, labels: labels.buffer, batch: samples.length, height, width };
}

/** Loads, augments and packs one batch (samples decoded concurrently, augmented in order). */
export async function loadBatch(tasks: SampleTask[], cfg: AugmentConfig, seed: number): Promise<PackedBatch> {
  const samples = await Promise.all(tasks.map((t) => loadTrainingSample(t, cfg, seed)));
  return packBatch(samples, cfg.crop[0], cfg.crop[1]);
}

/** A sample of a batch that could not be loaded: its place in the batch and the error (naming the file). */
export interface FailedSample {
  slot: number;
  error: string;
}

/**
 * {@link loadBatch} that does not fail on a bad sample: the batch is packed with the failed samples' places
 * left empty (zeros) and listed in `failed`, for the loader to fill with replacements. Only a failure of
 * the packing itself rejects.
 */
export async function loadBatchSettled(
  tasks: SampleTask[],
  cfg: AugmentConfig,
  seed: number,
): Promise<PackedBatch & { failed: FailedSample[] }> {
  const [height, width] = cfg.crop;
  const settled = await Promise.allSettled(tasks.map((t) => loadTrainingSample(t, cfg, seed)));
  const failed: FailedSample[] = [];
  const samples = settled.map((r, slot): AugmentedSample => {
    if (r.status === "fulfilled") return r.value;
    const e = r.reason as Error | undefined;
    failed.push({ slot, error: e instanceof Error ? e.message : String(e) });
    return {
      image: new Uint8Array(height * width * 3),
      label: new Uint8Array(height * width),
      height,
      width,
      validHeight: 0,
      validWidth: 0,
      resized: [0, 0],
      crop: { y0: 0, x0: 0, h: 0, w: 0 },
      flipped: false,
    };
  });
  return { ...packBatch(samples, height, width), failed };
}
