// The training DataLoader: batches of augmented samples, decoded in background worker threads ahead of use.
//
// Order. The sample stream is the concatenation of per-epoch permutations of the dataset (epoch e's
// permutation is a function of (seed, e) only); it runs across epoch boundaries without dropping anything
// (detectron2's infinite training sampler). Global batch k is stream positions [k·G, (k+1)·G) with
// G = batchSize·worldSize; rank r takes positions [r·batchSize, (r+1)·batchSize) of each global batch, so
// worldSize processes with batch b see, batch by batch, exactly the samples of one process with batch
// b·worldSize, split contiguously in rank order.
// Determinism. Each sample's augmentation generator is a function of (seed, epoch, dataset index) only, so
// batches do not depend on the number of workers, the prefetch depth or timing; batches are delivered in
// order.
// Resume. state() is the stream position {epoch, position} of the next global batch (the same on every
// rank); a loader started with `start: state` delivers exactly the batches an uninterrupted one would.
// Waiting. stats() reports how long next() kept the caller waiting (the "model idle" time).
// Bad samples. A sample that fails to load (a corrupt image or label) is skipped when `maxBadSamples`
// allows it: its place in the batch is taken by the next good sample of the dataset (index + 1, + 2, …,
// with the augmentation of that sample in the same epoch), so batches stay full and stay a function of the
// data only. Each skip is reported through `onSkip`; more distinct bad samples than allowed fail the loader
// with an error naming the last one. Decoding failures never stop the workers.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { type Tensor, tensor } from "../torch/tensor.js";
import {
  type AugmentConfig,
  defaultAugmentConfig,
  permutation,
  Rng,
  validateAugmentConfig,
} from "./augment.js";
import type { SegmentationDataset } from "./dataset.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./loader-worker.js";
import {
  type DatasetItem,
  type FailedSample,
  loadBatchSettled,
  type PackedBatch,
  type SampleTask,
} from "./sample.js";

/** A decoded batch, with the places of the samples that failed to load. */
type SettledBatch = PackedBatch & { failed: FailedSample[] };

/** Where the loader is in the sample stream: the next global batch starts at `position` of epoch `epoch`. */
export interface LoaderState {
  epoch: number;
  position: number;
}

export interface Batch {
  /** (B, 3, H, W) float32, 0–255 RGB. */
  images: Tensor;
  /** (B, H, W) int64, the ignore label in padding. */
  labels: Tensor;
  /** Dataset index of each sample. */
  indices: number[];
  /** Epoch each sample was drawn in. */
  epochs: number[];
  /** The loader state after this batch (what to checkpoint with the step that consumed it). */
  state: LoaderState;
}

export interface DataLoaderOptions {
  /** Samples per batch of this process. */
  batchSize: number;
  augment?: AugmentConfig;
  seed?: number;
  /** Worker threads (0: decode on the calling thread). Default: min(4, cores − 1), at least 1. */
  workers?: number;
  /** Batches prepared ahead of the consumer. Default: max(2, 2·workers). */
  prefetch?: number;
  /** Data-parallel shard: this process's rank among worldSize. */
  rank?: number;
  worldSize?: number;
  /** Start here (from {@link DataLoader.state}) instead of epoch 0, position 0. */
  start?: LoaderState;
  /**
   * Distinct samples that may fail to load before next() fails: a count (integer ≥ 1) or a fraction of the
   * dataset (between 0 and 1). Default 0: the first failure is an error (with the decoder's message).
   */
  maxBadSamples?: number;
  /** Told of every skipped sample (default: nothing). */
  onSkip?: (s: SkippedSample) => void;
}

/** A sample that failed to load and was replaced in its batch. */
export interface SkippedSample {
  /** Its dataset index and files, the epoch it was drawn in, and the error (naming the file). */
  index: number;
  epoch: number;
  item: DatasetItem;
  error: string;
  /** Distinct bad samples met so far, and how many are allowed. */
  bad: number;
  limit: number;
}

/** The loader gave up: more samples failed to load than allowed. */
export class TooManyBadSamplesError extends Error {}

export interface LoaderStats {
  /** Batches delivered. */
  batches: number;
  /** Total time next() kept the caller waiting, ms. */
  waitMs: number;
  /** The same without the first batch (the pipeline filling up). */
  steadyWaitMs: number;
  /** Time from the first delivered batch to the last, ms. */
  steadyMs: number;
  /** steadyWaitMs / steadyMs: the share of time the consumer sat idle waiting for data (0 when unknown). */
  idleShare: number;
  /** Samples skipped because they failed to load (each time one was met), and the distinct ones. */
  skipped: number;
  badSamples: number;
}

/** The sample order: per-epoch seeded permutations, cut into global batches, sliced by rank. */
export class BatchPlan {
  private readonly perms = new Map<number, Int32Array>();

  constructor(
    readonly size: number,
    readonly seed: number,
    readonly batchSize: number,
    readonly rank = 0,
    readonly worldSize = 1,
  ) {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`BatchPlan: bad dataset size ${size}`);
    if (!Number.isInteger(batchSize) || batchSize <= 0)
      throw new Error(`BatchPlan: bad batch size ${batchSize}`);
    if (!Number.isInteger(worldSize) || worldSize <= 0)
      throw new Error(`BatchPlan: bad worldSize ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new Error(`BatchPlan: rank ${rank} is not in 0..${worldSize - 1}`);
  }

  /** The dataset order of an epoch. */
  permutation(epoch: number): Int32Array {
    let p = this.perms.get(epoch);
    if (!p) {
      p = permutation(this.size, new Rng(this.seed, 0x5045524d /* "PERM" */, epoch));
      this.perms.set(epoch, p);
      for (const e of this.perms.keys()) if (e < epoch - 1 || e > epoch + 1) this.perms.delete(e);
    }
    return p;
  }

  /** This rank's samples of the global batch starting at `at`, and the state after that batch. */
  take(at: LoaderState): { samples: { index: number; epoch: number }[]; next: LoaderState } {
    checkState(at, this.size);
    let { epoch, position } = at;
    const lo = this.rank * this.batchSize;
    const hi = lo + this.batchSize;
    const samples: { index: number; epoch: number }[] = [];
    for (let k = 0; k < this.batchSize * this.worldSize; k++) {
      if (position >= this.size) {
        epoch++;
        position = 0;
      }
      if (k >= lo && k < hi) samples.push({ index: this.permutation(epoch)[position]!, epoch });
      position++;
    }
    if (position >= this.size) {
      epoch++;
      position = 0;
    }
    return { samples, next: { epoch, position } };
  }
}

function checkState(s: LoaderState, size: number): void {
  if (
    !Number.isInteger(s.epoch) ||
    s.epoch < 0 ||
    !Number.isInteger(s.position) ||
    s.position < 0 ||
    s.position >= size
  )
    throw new Error(`loader state ${JSON.stringify(s)} is not valid for a dataset of ${size} samples`);
}

interface Job {
  id: number;
  tasks: SampleTask[];
  resolve: (b: SettledBatch) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job?: Job;
  exited: boolean;
}

/** N worker threads, one batch each at a time, jobs queued in order. */
class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(n: number, init: WorkerInit) {
    const url = new URL("./loader-worker.js", import.meta.url);
    for (let i = 0; i < n; i++) {
      const worker = new Worker(url, { workerData: init });
      const slot: Slot = { worker, exited: false };
      worker.unref();
      worker.on("message", (m: WorkerReply) => this.onReply(slot, m));
      worker.on("error", (e) => this.onFailure(slot, new Error(`data loader worker failed: ${e.message}`)));
      worker.on("exit", (code) => {
        slot.exited = true;
        if (!this.closed) this.onFailure(slot, new Error(`data loader worker exited (code ${code})`));
      });
      this.slots.push(slot);
    }
  }

  /** Queues a batch; an `urgent` one (a replacement the consumer waits for) goes before the prefetched ones. */
  run(tasks: SampleTask[], urgent = false): Promise<SettledBatch> {
    if (this.closed) return Promise.reject(new Error("data loader is closed"));
    return new Promise((resolve, reject) => {
      const job = { id: this.nextId++, tasks, resolve, reject };
      if (urgent) this.queue.unshift(job);
      else this.queue.push(job);
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.job || slot.exited) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      const req: WorkerRequest = { type: "batch", id: job.id, tasks: job.tasks };
      slot.worker.postMessage(req);
    }
  }

  private onReply(slot: Slot, m: WorkerReply): void {
    const job = slot.job;
    if (!job || job.id !== m.id) return;
    slot.job = undefined;
    slot.worker.unref();
    if (m.ok)
      job.resolve({
        images: m.images,
        labels: m.labels,
        batch: m.batch,
        height: m.height,
        width: m.width,
        failed: m.failed,
      });
    else job.reject(new Error(m.error));
    this.pump();
  }

  private onFailure(slot: Slot, e: Error): void {
    slot.exited = true;
    const job = slot.job;
    slot.job = undefined;
    if (job) job.reject(e);
    if (this.slots.every((s) => s.exited)) for (const j of this.queue.splice(0)) j.reject(e);
    else this.pump();
  }

  /** Lets running batches finish, then stops the threads (terminated after `timeoutMs`). */
  async close(timeoutMs = 30000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new Error("data loader is closed"));
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.exited) return;
        const exited = new Promise<void>((res) => slot.worker.once("exit", () => res()));
        slot.worker.ref();
        slot.worker.postMessage({ type: "close" } satisfies WorkerRequest);
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((res) => {
          timer = setTimeout(() => res("timeout"), timeoutMs);
        });
        const r = await Promise.race([exited, timeout]);
        clearTimeout(timer);
        if (r === "timeout") await slot.worker.terminate();
        if (slot.job) slot.job.reject(new Error("data loader is closed"));
        slot.job = undefined;
      }),
    );
  }
}

interface Pending {
  promise: Promise<SettledBatch>;
  samples: { index: number; epoch: number }[];
  next: LoaderState;
}

/** Batches of a training set: augmented in background threads, ordered, seeded, sharded and resumable. */
export class DataLoader {
  readonly batchSize: number;
  readonly worldSize: number;
  readonly rank: number;
  readonly seed: number;
  readonly workers: number;
  readonly prefetch: number;
  readonly augment: AugmentConfig;
  private readonly items: readonly DatasetItem[];
  private readonly plan: BatchPlan;
  private readonly pool?: WorkerPool;
  private readonly pending: Pending[] = [];
  /** Distinct samples that failed to load (dataset indices), and how many may. */
  private readonly bad = new Set<number>();
  private readonly badLimit: number;
  private readonly maxBadSamples: number;
  private readonly onSkip?: (s: SkippedSample) => void;
  private skipped = 0;
  /** Position of the next batch to plan (ahead of the consumer by the prefetched batches). */
  private cursor: LoaderState;
  /** Position of the next batch to deliver. */
  private delivered: LoaderState;
  private failure?: Error;
  private closed = false;
  private busy = false;
  private nBatches = 0;
  private waitMs = 0;
  private firstWaitMs = 0;
  private firstAt = 0;
  private lastAt = 0;

  constructor(dataset: SegmentationDataset | readonly DatasetItem[], o: DataLoaderOptions) {
    this.items = Array.isArray(dataset) ? dataset : (dataset as SegmentationDataset).items;
    this.batchSize = o.batchSize;
    this.worldSize = o.worldSize ?? 1;
    this.rank = o.rank ?? 0;
    this.seed = o.seed ?? 0;
    if (!Number.isSafeInteger(this.seed)) throw new Error(`DataLoader: seed ${this.seed} is not an integer`);
    this.augment = o.augment ?? defaultAugmentConfig();
    validateAugmentConfig(this.augment);
    this.plan = new BatchPlan(this.items.length, this.seed, this.batchSize, this.rank, this.worldSize);
    this.workers = o.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    if (!Number.isInteger(this.workers) || this.workers < 0)
      throw new Error(`DataLoader: workers must be a non-negative integer, got ${this.workers}`);
    this.prefetch = o.prefetch ?? Math.max(2, 2 * this.workers);
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1)
      throw new Error(`DataLoader: prefetch must be a positive integer, got ${this.prefetch}`);
    this.maxBadSamples = o.maxBadSamples ?? 0;
    const m = this.maxBadSamples;
    if (!(Number.isFinite(m) && m >= 0 && (m < 1 || Number.isInteger(m))))
      throw new Error(`DataLoader: maxBadSamples must be a count or a fraction between 0 and 1, got ${m}`);
    this.badLimit = m < 1 ? Math.floor(m * this.items.length) : m;
    this.onSkip = o.onSkip;
    const start = o.start ?? { epoch: 0, position: 0 };
    checkState(start, this.items.length);
    this.cursor = { ...start };
    this.delivered = { ...start };
    if (this.workers > 0) this.pool = new WorkerPool(this.workers, { cfg: this.augment, seed: this.seed });
    this.fill();
  }

  /** Samples in the dataset. */
  get size(): number {
    return this.items.length;
  }

  /** The state to save: where the next batch returned by next() starts. */
  state(): LoaderState {
    return { ...this.delivered };
  }

  private fill(): void {
    while (this.pending.length < this.prefetch) {
      const { samples, next } = this.plan.take(this.cursor);
      this.cursor = next;
      const tasks: SampleTask[] = samples.map((s) => ({
        item: this.items[s.index]!,
        index: s.index,
        epoch: s.epoch,
      }));
      const promise = this.load(tasks);
      promise.catch(() => {}); // a failure is reported by next() when this batch is due
      this.pending.push({ promise, samples, next });
    }
  }

  /** The next batch (in order; waits only when the workers have fallen behind). */
  async next(): Promise<Batch> {
    if (this.closed) throw new Error("data loader is closed");
    if (this.failure) throw this.failure;
    if (this.busy) throw new Error("DataLoader.next(): the previous call has not finished (await it first)");
    this.busy = true;
    const t0 = performance.now();
    try {
      const p = this.pending.shift()!;
      this.fill();
      let packed: SettledBatch;
      try {
        packed = await p.promise;
        if (packed.failed.length > 0) await this.replaceFailed(packed, p.samples);
      } catch (e) {
        this.failure = e as Error;
        throw e;
      }
      const { batch: B, height: H, width: W } = packed;
      const images = tensor(new Float32Array(packed.images), [B, 3, H, W]);
      const labels = tensor(new BigInt64Array(packed.labels), [B, H, W]);
      this.delivered = { ...p.next };
      const t1 = performance.now();
      const waited = t1 - t0;
      this.waitMs += waited;
      if (this.nBatches === 0) {
        this.firstWaitMs = waited;
        this.firstAt = t1;
      }
      this.lastAt = t1;
      this.nBatches++;
      return {
        images,
        labels,
        indices: p.samples.map((s) => s.index),
        epochs: p.samples.map((s) => s.epoch),
        state: { ...p.next },
      };
    } finally {
      this.busy = false;
    }
  }

  private load(tasks: SampleTask[], urgent = false): Promise<SettledBatch> {
    return this.pool ? this.pool.run(tasks, urgent) : loadBatchSettled(tasks, this.augment, this.seed);
  }

  /**
   * Fills the places of the samples that failed with the next good samples of the dataset (same epoch);
   * throws once more distinct samples failed than allowed.
   */
  private async replaceFailed(packed: SettledBatch, samples: readonly { index: number; epoch: number }[]) {
    const hw = packed.height * packed.width;
    const images = new Float32Array(packed.images);
    const labels = new Int32Array(packed.labels);
    for (const f of packed.failed) {
      let { index } = samples[f.slot]!;
      const { epoch } = samples[f.slot]!;
      let error = f.error;
      for (;;) {
        this.skip(index, epoch, error);
        index = this.nextCandidate(index, error);
        const r = await this.load([{ item: this.items[index]!, index, epoch }], true);
        if (r.failed.length === 0) {
          images.set(new Float32Array(r.images), f.slot * 3 * hw);
          labels.set(new Int32Array(r.labels), f.slot * 2 * hw);
          break;
        }
        error = r.failed[0]!.error;
      }
    }
  }

  /** Counts a skipped sample; throws when it makes too many distinct bad ones. */
  private skip(index: number, epoch: number, error: string): void {
    this.bad.add(index);
    this.skipped++;
    const item = this.items[index]!;
    if (this.bad.size > this.badLimit) {
      if (this.maxBadSamples === 0) throw new Error(error);
      const setting =
        this.maxBadSamples < 1
          ? `${this.maxBadSamples} of ${this.items.length} = ${this.badLimit}`
          : this.badLimit;
      throw new TooManyBadSamplesError(
        `too many bad training samples: ${this.bad.size} failed to load, more than maxBadSamples ` +
          `(${setting}); the last: ${describeFailure(item, error)}. Repair or remove them, or allow more ` +
          `with --set data.maxBadSamples=N (a count, or a fraction of the training set)`,
      );
    }
    this.onSkip?.({ index, epoch, item, error, bad: this.bad.size, limit: this.badLimit });
  }

  /** The next dataset index after `index` not known to be bad. */
  private nextCandidate(index: number, error: string): number {
    const n = this.items.length;
    for (let k = 1; k <= n; k++) {
      const j = (index + k) % n;
      if (!this.bad.has(j)) return j;
    }
    throw new TooManyBadSamplesError(
      `every one of the ${n} training samples failed to load; the last: ${describeFailure(this.items[index]!, error)}`,
    );
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    for (;;) yield await this.next();
  }

  stats(): LoaderStats {
    const steadyWaitMs = this.waitMs - this.firstWaitMs;
    const steadyMs = this.lastAt - this.firstAt;
    return {
      batches: this.nBatches,
      waitMs: this.waitMs,
      steadyWaitMs,
      steadyMs,
      idleShare: steadyMs > 0 ? steadyWaitMs / steadyMs : 0,
      skipped: this.skipped,
      badSamples: this.bad.size,
    };
  }

  /** Stops the workers (after the batches they are on). Pending and later next() calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool?.close();
    await Promise.allSettled(this.pending.splice(0).map((p) => p.promise));
  }
}

/** A failed sample's error, with its files named when the error does not name them. */
export function describeFailure(item: DatasetItem, error: string): string {
  return error.includes(item.image) || error.includes(item.gt)
    ? error
    : `${item.image} (label ${item.gt}): ${error}`;
}
