// The library face of segmentation: `await Segmenter.create({ config, weights })`, then
// `await seg.segment(image, classes)`. It runs CAT-Seg (its released checkpoints) or DEDOS (weights trained
// with `dedos train`; with diffusion conditioning it needs Stable Diffusion 2-base in diffusers layout too).
//
// A created Segmenter owns a worker thread that owns the engine and the model: loading and segmenting never
// block the caller's event loop. Calls on one Segmenter queue (one image at a time, in call order); each can
// report progress and be cancelled with an AbortSignal (between sliding-window views). `fromModel` wraps a
// model the caller already holds (training's evaluation) and runs in the caller's thread.
import { Worker } from "node:worker_threads";
import type { CatSegConfig } from "../catseg/config.js";
import type { CatSegModel } from "../catseg/model.js";
import type { WindowPreset, WindowSpec } from "../catseg/window.js";
import { parseClassList } from "../data/classes.js";
import { type ImageInput, type RgbImage, readImageRGB } from "../data/image-decode.js";
import type { DedosConfig } from "../dedos/config.js";
import { DedosModel } from "../dedos/model.js";
import { openExportFolder } from "../onnx/node.js";
import type { OrtModule } from "../onnx/runtime.js";
import type { OnnxSegmentation } from "../onnx/segmentation.js";
import type { OnnxWorkerInit } from "../onnx/worker.js";
import { type ClassShare, classShares } from "../viz/overlay.js";
import { configOfWeight, type FetchProgress, resolveWeights } from "../weights/index.js";
import {
  type ModelSpec,
  type RawSegmentation,
  type SegmentRequest,
  type SegmentStage,
  segmentRgb,
} from "./segment-core.js";

export interface SegmenterOptions {
  /** "torch" (default): libtorch through the native addon, from weights files. */
  backend?: "torch";
  /**
   * Which model when the weights do not say so: "catseg" (default) or "dedos". A DEDOS weights file (written
   * by `dedos train`) is recognised by its metadata and always gives DEDOS.
   */
  model?: "catseg" | "dedos";
  /**
   * Architecture: a preset name ("vitb_384", "vitl_336"), a config object (CatSegConfig or DedosConfig), or a
   * JSON file holding one. DEDOS weights files carry their own config.
   */
  config?: string | CatSegConfig | DedosConfig;
  /**
   * A registered weight name ("catseg-vitb", "catseg-vitl": fetched and cached on first use, see `dedos
   * weights list`), a CAT-Seg checkpoint (`model_base.pth`) or DEDOS weights (`model_final.safetensors`), or
   * "random" for random weights (they show the pipeline, they do not segment). Required.
   */
  weights: string;
  /** Stable Diffusion 2-base in diffusers layout, or "sd2-base" (DEDOS with diffusion conditioning). */
  sd?: string;
  /** "cpu" (default) or "cuda[:N]". */
  device?: string;
  /** Sliding-window geometry: "catseg" (kernel 384, overlap 1/3, default) or "dedos" (512, 0.75). */
  window?: WindowPreset;
  /** Seed of random weights. */
  seed?: number;
  /** Progress of fetching named weights (stage "download", bytes) and of loading (stage "loading"). */
  onProgress?: (p: SegmentProgress) => void;
  /** Cancels a download of named weights. */
  signal?: AbortSignal;
}

/**
 * A segmenter over an exported model (`dedos export` folder: manifest.json, text.onnx, view.onnx) run by
 * onnxruntime-node in a worker thread: no libtorch needed (install onnxruntime-node, an optional peer
 * dependency).
 */
export interface OnnxSegmenterOptions {
  backend: "onnx";
  /** The export folder. */
  model: string;
  /** "cpu" (default), "cuda[:N]", or another onnxruntime execution provider ("dml", "coreml", …). */
  device?: string;
  /** Sliding-window geometry (default: the preset whose kernel is the exported view size). */
  window?: WindowPreset | WindowSpec;
  /** More onnxruntime session options; intraOpNumThreads defaults to DEDOS_NUM_THREADS, else every core. */
  sessionOptions?: Record<string, unknown>;
  /** Another onnxruntime module than onnxruntime-node (e.g. onnxruntime-web, or a stand-in in tests). */
  runtime?: OrtModule;
  /** Progress of loading (stage "loading"). */
  onProgress?: (p: SegmentProgress) => void;
}

export interface SegmentProgress {
  stage: SegmentStage | "download";
  /** Steps done of `total` in this stage (views for "view"). */
  done: number;
  total: number;
  /** Estimated seconds left in this stage, when it can be estimated. */
  etaSeconds?: number;
  /** Which image of a batch (0-based), and how many. */
  image?: number;
  images?: number;
}

export interface SegmentCallOptions {
  /** Also return per-class probabilities (T·H·W floats). */
  scores?: boolean;
  /** Synonyms in a class name ("sofa, couch"): use the first (default, CAT-Seg) or average them. */
  synonyms?: "first" | "average";
  /** Called as the work advances: text embedding, each sliding-window view, post-processing. */
  onProgress?: (p: SegmentProgress) => void;
  /** Cancels the call (between views); the promise rejects with an AbortError and memory is freed. */
  signal?: AbortSignal;
}

export interface Segmentation {
  width: number;
  height: number;
  /** The classes, in the order the label values index. */
  classes: string[];
  /** Row-major class index per pixel. */
  labels: Uint16Array;
  /** (T, H, W) probabilities, when asked for. */
  scores?: Float32Array;
  /** Classes present, largest first, with pixel counts and shares. */
  present: ClassShare[];
}

/** Where a Segmenter's work runs. */
interface Backend {
  run(rgb: RgbImage, req: SegmentRequest, o: RunOptions): Promise<RawSegmentation>;
  close(): Promise<void>;
}

interface RunOptions {
  progress: (stage: SegmentStage, done: number, total: number) => void;
  signal?: AbortSignal;
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  const e = new Error("segment: cancelled");
  e.name = "AbortError";
  return e;
}

/** The worker thread (segmenter-worker.ts) that owns the engine and the model. */
class WorkerBackend implements Backend {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: RawSegmentation) => void; reject: (e: Error) => void; o: RunOptions }
  >();
  private constructor(
    private readonly worker: Worker,
    private readonly cancel: Int32Array,
  ) {
    worker.on("message", (m) => this.onMessage(m));
    worker.on("error", (e) => this.failAll(e));
    worker.on("exit", (code) => this.failAll(new Error(`segmenter worker exited (code ${code})`)));
  }

  /** Starts `script` (the libtorch worker, or the onnx one) with `data` plus the shared cancellation cell. */
  static start(script: URL, data: object): Promise<{ backend: WorkerBackend; kind: string }> {
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(script, { workerData: { ...data, cancel } });
    return new Promise((resolve, reject) => {
      const first = (m: { type: string; kind?: string; name?: string; message?: string }) => {
        worker.off("error", onError);
        if (m.type === "ready") {
          worker.unref(); // an idle segmenter does not keep the process alive
          resolve({ backend: new WorkerBackend(worker, cancel), kind: m.kind! });
        } else {
          void worker.terminate();
          reject(remoteError(m));
        }
      };
      const onError = (e: Error) => {
        worker.off("message", first);
        reject(e);
      };
      worker.once("message", first);
      worker.once("error", onError);
    });
  }

  run(rgb: RgbImage, req: SegmentRequest, o: RunOptions): Promise<RawSegmentation> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, o });
      this.worker.ref(); // work in flight keeps the process alive
      if (o.signal) {
        const stop = () => Atomics.store(this.cancel, 0, id);
        if (o.signal.aborted) stop();
        else o.signal.addEventListener("abort", stop, { once: true });
      }
      this.worker.postMessage({ type: "segment", id, rgb, request: req });
    });
  }

  private onMessage(m: {
    type: string;
    id: number;
    stage?: SegmentStage;
    done?: number;
    total?: number;
    result?: RawSegmentation;
    name?: string;
    message?: string;
  }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === "progress") {
      p.o.progress(m.stage!, m.done!, m.total!);
      return;
    }
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    if (m.type === "result") p.resolve(m.result!);
    else p.reject(m.name === "AbortError" && p.o.signal ? abortError(p.o.signal) : remoteError(m));
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.worker.postMessage({ type: "dispose" });
    await this.worker.terminate();
  }
}

function remoteError(m: { name?: string; message?: string }): Error {
  const e = new Error(m.message ?? "segmenter worker failed");
  if (m.name && m.name !== "Error") e.name = m.name;
  return e;
}

/** A model the caller holds, run in the caller's thread (blocking; for training's evaluation). */
class LocalBackend implements Backend {
  constructor(
    private readonly model: CatSegModel | DedosModel,
    private readonly device: string,
    private readonly window: WindowPreset,
  ) {}

  async run(rgb: RgbImage, req: SegmentRequest, o: RunOptions): Promise<RawSegmentation> {
    return segmentRgb(this.model, this.device, this.window, rgb, req, {
      progress: o.progress,
      checkCancelled: () => {
        if (o.signal?.aborted) throw abortError(o.signal);
      },
    });
  }

  async close(): Promise<void> {}
}

/** An exported model on a runtime the caller passed, in this thread (sessions run on the runtime's threads). */
class OnnxBackend implements Backend {
  constructor(
    private readonly model: OnnxSegmentation,
    private readonly window: WindowPreset | WindowSpec | undefined,
  ) {}

  async run(rgb: RgbImage, req: SegmentRequest, o: RunOptions): Promise<RawSegmentation> {
    const r = await this.model.segment(rgb, req.classes, this.window, {
      synonyms: req.synonyms,
      output: req.scores ? "both" : "labels",
      progress: o.progress,
      checkCancelled: () => {
        if (o.signal?.aborted) throw abortError(o.signal);
      },
    });
    return { width: rgb.width, height: rgb.height, labels: r.labels!, scores: r.scores };
  }

  close(): Promise<void> {
    return this.model.release();
  }
}

/**
 * Open-vocabulary segmentation with CAT-Seg or DEDOS weights.
 * @example
 *   const seg = await Segmenter.create({ config: "vitb_384", weights: "model_base.pth" });
 *   const r = await seg.segment("street.jpg", "road; sidewalk; car, truck; sky");
 *   await seg.dispose();
 * @example
 *   const dedos = await Segmenter.create({ weights: "runs/dedos-b/model_final.safetensors", sd: "sd-2-base/" });
 */
export class Segmenter {
  /** The tail of the queue: calls run one after another, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly backend: Backend,
    /** "catseg" or "dedos". */
    readonly kind: "catseg" | "dedos",
    /** Whether the weights are random (asked for with `weights: "random"`). */
    readonly randomWeights: boolean,
  ) {}

  /**
   * Loads the model in a worker thread (the event loop keeps running meanwhile); with `backend: "onnx"`, opens
   * an export folder on onnxruntime instead (no libtorch).
   * @example
   *   const seg = await Segmenter.create({ backend: "onnx", model: "exports/catseg-vitb", device: "cpu" });
   */
  static async create(o: SegmenterOptions | OnnxSegmenterOptions): Promise<Segmenter> {
    if (o?.backend === "onnx") return Segmenter.createOnnx(o);
    if (o?.backend !== undefined && o.backend !== "torch")
      throw new Error(`Segmenter.create: unknown backend "${String(o.backend)}" (torch or onnx)`);
    if (typeof o?.weights !== "string" || o.weights === "")
      throw new Error(
        'Segmenter.create: weights is required: a weights file (e.g. "model_base.pth"), or "random" for random weights that show the pipeline',
      );
    // Registered names ("catseg-vitb", "sd2-base") are fetched into the cache first (progress: "download").
    const download = (p: FetchProgress) =>
      o.onProgress?.({
        stage: "download",
        done: p.bytesDone,
        total: p.bytesTotal ?? p.bytesDone,
        etaSeconds: p.etaSeconds,
      });
    const fetchOptions = { onProgress: download, signal: o.signal };
    const spec: ModelSpec = {
      model: o.model,
      config: o.config ?? configOfWeight(o.weights),
      weights: o.weights === "random" ? "random" : await resolveWeights(o.weights, fetchOptions),
      sd: o.sd === undefined ? undefined : await resolveWeights(o.sd, fetchOptions),
      device: o.device,
      seed: o.seed,
    };
    o.onProgress?.({ stage: "loading", done: 0, total: 1 });
    const { backend, kind } = await WorkerBackend.start(new URL("./segmenter-worker.js", import.meta.url), {
      spec,
      window: o.window ?? "catseg",
    });
    o.onProgress?.({ stage: "loading", done: 1, total: 1 });
    return new Segmenter(backend, kind as "catseg" | "dedos", o.weights === "random");
  }

  private static async createOnnx(o: OnnxSegmenterOptions): Promise<Segmenter> {
    if (typeof o.model !== "string" || o.model === "")
      throw new Error('Segmenter.create: backend "onnx" needs model: the folder written by `dedos export`');
    o.onProgress?.({ stage: "loading", done: 0, total: 1 });
    let backend: Backend;
    let kind: string;
    if (o.runtime) {
      // A runtime object cannot cross to a worker thread: it runs here (sessions on the runtime's threads).
      const m = await openExportFolder(o.model, {
        device: o.device,
        runtime: o.runtime,
        sessionOptions: o.sessionOptions,
      });
      try {
        m.windowFor(o.window); // a window that does not fit the graph fails here, not at the first image
      } catch (e) {
        await m.release();
        throw e;
      }
      [backend, kind] = [new OnnxBackend(m, o.window), m.kind];
    } else {
      const init: Omit<OnnxWorkerInit, "cancel"> = {
        folder: o.model,
        device: o.device,
        sessionOptions: o.sessionOptions,
        window: o.window,
      };
      ({ backend, kind } = await WorkerBackend.start(new URL("../onnx/worker.js", import.meta.url), init));
    }
    o.onProgress?.({ stage: "loading", done: 1, total: 1 });
    return new Segmenter(backend, kind as "catseg" | "dedos", false);
  }

  /** A segmenter over a model you already hold (e.g. during training), in this thread; `dispose` leaves it. */
  static fromModel(
    model: CatSegModel | DedosModel,
    o: { window?: WindowPreset; device?: string } = {},
  ): Segmenter {
    const kind = model instanceof DedosModel ? "dedos" : "catseg";
    return new Segmenter(new LocalBackend(model, o.device ?? "cpu", o.window ?? "catseg"), kind, false);
  }

  /**
   * Labels every pixel of `image` with one of `classes` (an array, or "a; b, synonym; c"). An array of images
   * gives an array of results, in order.
   */
  segment(
    image: ImageInput,
    classes: readonly string[] | string,
    o?: SegmentCallOptions,
  ): Promise<Segmentation>;
  segment(
    images: readonly ImageInput[],
    classes: readonly string[] | string,
    o?: SegmentCallOptions,
  ): Promise<Segmentation[]>;
  async segment(
    image: ImageInput | readonly ImageInput[],
    classes: readonly string[] | string,
    o: SegmentCallOptions = {},
  ): Promise<Segmentation | Segmentation[]> {
    if (this.closed) throw new Error("segment: this Segmenter was disposed");
    const names = typeof classes === "string" ? parseClassList(classes) : [...classes];
    if (names.length === 0) throw new Error("segment: the class list is empty");
    names.forEach((c, i) => {
      if (typeof c !== "string" || c.split(",").every((s) => s.trim() === ""))
        throw new Error(
          `segment: class ${i + 1} of ${names.length} is empty (${JSON.stringify(c)}); every class needs a name`,
        );
    });
    const list = Array.isArray(image) ? (image as readonly ImageInput[]) : [image as ImageInput];
    const run = this.queue.then(async () => {
      const out: Segmentation[] = [];
      for (const [i, img] of list.entries()) {
        if (o.signal?.aborted) throw abortError(o.signal);
        out.push(await this.segmentOne(img, names, o, i, list.length));
      }
      return out;
    });
    this.queue = run.catch(() => {}); // a failed call does not block the next
    const results = await run;
    return Array.isArray(image) ? results : results[0]!;
  }

  private async segmentOne(
    image: ImageInput,
    classes: string[],
    o: SegmentCallOptions,
    index: number,
    count: number,
  ): Promise<Segmentation> {
    const rgb = await readImageRGB(image);
    const t0 = performance.now();
    const progress = (stage: SegmentStage, done: number, total: number) => {
      const elapsed = (performance.now() - t0) / 1e3;
      const etaSeconds = stage === "view" && done > 0 ? (elapsed / done) * (total - done) : undefined;
      o.onProgress?.({ stage, done, total, etaSeconds, image: index, images: count });
    };
    const raw = await this.backend.run(
      rgb,
      { classes, scores: o.scores, synonyms: o.synonyms },
      { progress, signal: o.signal },
    );
    return { ...raw, classes, present: classShares(raw.labels, classes) };
  }

  /** Frees the model and stops the worker (after the calls already queued); `fromModel` models stay. */
  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.backend.close();
  }
}
