// Worker thread of the DataLoader: decodes, augments and packs batches, and hands the pixel buffers back
// (transferred, not copied). A sample that fails to load (a corrupt image or label) does not fail the batch
// nor the worker: its place is reported in `failed` for the loader to fill. Imports nothing that loads
// libtorch.
import { parentPort, workerData } from "node:worker_threads";
import type { AugmentConfig } from "./augment.js";
import { type FailedSample, loadBatchSettled, type SampleTask } from "./sample.js";

export interface WorkerInit {
  cfg: AugmentConfig;
  seed: number;
}

export type WorkerRequest = { type: "batch"; id: number; tasks: SampleTask[] } | { type: "close" };

export type WorkerReply =
  | {
      id: number;
      ok: true;
      images: ArrayBuffer;
      labels: ArrayBuffer;
      batch: number;
      height: number;
      width: number;
      /** Samples that could not be loaded (their places are zeros). */
      failed: FailedSample[];
    }
  | { id: number; ok: false; error: string };

const port = parentPort;
if (port) {
  const { cfg, seed } = workerData as WorkerInit;
  // Requests are handled one after another; "close" waits for the one running (never interrupt sharp).
  let chain: Promise<void> = Promise.resolve();
  port.on("message", (m: WorkerRequest) => {
    chain = chain.then(async () => {
      if (m.type === "close") {
        port.close();
        return;
      }
      try {
        const b = await loadBatchSettled(m.tasks, cfg, seed);
        const reply: WorkerReply = { id: m.id, ok: true, ...b };
        port.postMessage(reply, [b.images, b.labels]);
      } catch (e) {
        const reply: WorkerReply = { id: m.id, ok: false, error: (e as Error).message };
        port.postMessage(reply);
      }
    });
  });
}
