// The onnx backend's worker thread: opens an export folder on onnxruntime-node and runs the TypeScript half of
// segmentation (tokenizer, sliding window, stitching: seconds of array work for many classes) off the caller's
// event loop. Same messages as the libtorch worker (api/segmenter-worker.ts):
//   in:  { type: "segment", id, rgb, request } | { type: "dispose" }
//   out: "ready" { kind } | "progress" { id, stage, done, total } | "result" { id, result } | "error" { id, … }
// Cancellation is a shared Int32 the caller sets to the id of the request to stop; checked between views.
import { parentPort, workerData } from "node:worker_threads";
import type { RawSegmentation, SegmentRequest } from "../api/segment-core.js";
import type { WindowPreset, WindowSpec } from "../catseg/window.js";
import type { RgbImage } from "../data/rgb.js";
import { openExportFolder } from "./node.js";
import type { OnnxSegmentation } from "./segmentation.js";

/** What the worker is started with. */
export interface OnnxWorkerInit {
  folder: string;
  device?: string;
  sessionOptions?: Record<string, unknown>;
  window?: WindowPreset | WindowSpec;
  cancel: Int32Array;
}

class Cancelled extends Error {
  override name = "AbortError";
}

const port = parentPort!;
const init = workerData as OnnxWorkerInit;

function fail(id: number, e: unknown): void {
  const err = e as Error;
  port.postMessage({ type: "error", id, name: err.name, message: err.message ?? String(e) });
}

async function segment(
  model: OnnxSegmentation,
  id: number,
  rgb: RgbImage,
  req: SegmentRequest,
): Promise<void> {
  try {
    const r = await model.segment(rgb, req.classes, init.window, {
      synonyms: req.synonyms,
      output: req.scores ? "both" : "labels",
      progress: (stage, done, total) => port.postMessage({ type: "progress", id, stage, done, total }),
      checkCancelled: () => {
        if (Atomics.load(init.cancel, 0) === id) throw new Cancelled("segment: cancelled");
      },
    });
    const result: RawSegmentation = {
      width: rgb.width,
      height: rgb.height,
      labels: r.labels!,
      scores: r.scores,
    };
    const transfer = [
      result.labels.buffer,
      ...(result.scores ? [result.scores.buffer] : []),
    ] as ArrayBuffer[];
    port.postMessage({ type: "result", id, result }, transfer);
  } catch (e) {
    fail(id, e);
  }
}

try {
  const model = await openExportFolder(init.folder, {
    device: init.device,
    sessionOptions: init.sessionOptions,
  });
  try {
    model.windowFor(init.window); // a window that does not fit the graph fails at start, not at the first image
  } catch (e) {
    await model.release();
    throw e;
  }
  port.on(
    "message",
    (m: { type: "segment"; id: number; rgb: RgbImage; request: SegmentRequest } | { type: "dispose" }) => {
      if (m.type === "dispose") {
        void model.release().finally(() => port.close());
        return;
      }
      void segment(model, m.id, m.rgb, m.request);
    },
  );
  port.postMessage({ type: "ready", kind: model.kind });
} catch (e) {
  fail(0, e);
  process.exit(0);
}
