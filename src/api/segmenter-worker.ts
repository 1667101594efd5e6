// The Segmenter's worker thread: it owns the engine and the model, so the caller's event loop keeps running
// while a model loads or an image is segmented. Messages (see segmenter.ts):
//   in:  { type: "segment", id, rgb, request }   out: { type: "progress", id, stage, done, total }
//                                                     { type: "result", id, result } | { type: "error", id, … }
// The model is built from workerData.spec at start (out: "ready" or "error" with id 0). Cancellation is a
// shared Int32 the caller sets to the id of the request to stop; it is checked between views.
import { parentPort, workerData } from "node:worker_threads";
import type { WindowPreset } from "../catseg/inference.js";
import type { RgbImage } from "../data/image-decode.js";
import { DedosModel } from "../dedos/model.js";
import { emptyCache } from "../torch/tensor.js";
import { buildSegmentationModel, type ModelSpec, type SegmentRequest, segmentRgb } from "./segment-core.js";

interface Init {
  spec: ModelSpec;
  window: WindowPreset;
  cancel: Int32Array;
}

/** Thrown from between views when the caller cancelled this request. */
class Cancelled extends Error {
  override name = "AbortError";
}

const port = parentPort!;
const { spec, window, cancel } = workerData as Init;
const device = spec.device ?? "cpu";

function fail(id: number, e: unknown): void {
  const err = e as Error;
  port.postMessage({ type: "error", id, name: err.name, message: err.message ?? String(e) });
}

let model: ReturnType<typeof buildSegmentationModel>;
try {
  model = buildSegmentationModel(spec);
  port.postMessage({ type: "ready", kind: model instanceof DedosModel ? "dedos" : "catseg" });
} catch (e) {
  fail(0, e);
  process.exit(0);
}

// Once no request came for this long, the allocator's idle blocks go back to the system: a library should not
// hold its largest working set while the app does something else (DEDOS_IDLE_RELEASE_MS, default 2000).
const idleReleaseMs = Number(process.env.DEDOS_IDLE_RELEASE_MS ?? 2000);
let idleTimer: NodeJS.Timeout | undefined;

port.on(
  "message",
  (m: { type: "segment"; id: number; rgb: RgbImage; request: SegmentRequest } | { type: "dispose" }) => {
    clearTimeout(idleTimer);
    if (m.type === "dispose") {
      model.dispose();
      port.close();
      return;
    }
    try {
      const result = segmentRgb(model, device, window, m.rgb, m.request, {
        progress: (stage, done, total) =>
          port.postMessage({ type: "progress", id: m.id, stage, done, total }),
        checkCancelled: () => {
          if (Atomics.load(cancel, 0) === m.id) throw new Cancelled("segment: cancelled");
        },
      });
      const transfer = [
        result.labels.buffer,
        ...(result.scores ? [result.scores.buffer] : []),
      ] as ArrayBuffer[];
      port.postMessage({ type: "result", id: m.id, result }, transfer);
    } catch (e) {
      fail(m.id, e);
    }
    // Armed after the work (the handler is synchronous), cleared by the next message.
    if (idleReleaseMs >= 0) {
      idleTimer = setTimeout(emptyCache, idleReleaseMs);
      idleTimer.unref();
    }
  },
);
