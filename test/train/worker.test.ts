// The loader's worker module runs in a worker thread without loading the libtorch addon: its import graph
// stays out of src/torch/, and a worker running it decodes a batch exactly as the main thread does while no
// native module but sharp's is opened in it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker } from "node:worker_threads";
import type { AugmentConfig } from "../../src/train/augment.js";
import { SegmentationDataset } from "../../src/train/dataset.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "../../src/train/loader-worker.js";
import { loadBatch, type SampleTask } from "../../src/train/sample.js";
import { writeCocoFixture } from "./data-fixture.js";

const TMP = mkdtempSync(join(tmpdir(), "dedos-train-worker-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

const WORKER_URL = new URL("../../src/train/loader-worker.js", import.meta.url);
const DIST_SRC = fileURLToPath(new URL("../../src/", import.meta.url));

const CFG: AugmentConfig = {
  minSize: [12, 14],
  maxSize: 1333,
  crop: [12, 12],
  singleCategoryMaxArea: 0.9,
  colorAug: true,
  flip: true,
  padImage: 128,
  ignoreLabel: 255,
};

/** The compiled modules a module imports statically or dynamically, following relative specifiers. */
function importGraph(entry: string): { parent: Map<string, string | null>; packages: Set<string> } {
  const parent = new Map<string, string | null>([[entry, null]]);
  const packages = new Set<string>();
  const todo = [entry];
  const specifier = /(?:\bfrom\s*|\bimport\s*\(?\s*)"([^"]+)"/g;
  while (todo.length > 0) {
    const file = todo.pop()!;
    for (const m of readFileSync(file, "utf8").matchAll(specifier)) {
      const spec = m[1]!;
      if (!spec.startsWith(".")) {
        packages.add(spec);
        continue;
      }
      const dep = resolve(dirname(file), spec);
      if (parent.has(dep)) continue;
      parent.set(dep, file);
      todo.push(dep);
    }
  }
  return { parent, packages };
}

function chain(parent: Map<string, string | null>, file: string): string {
  const out: string[] = [];
  for (let f: string | null | undefined = file; f; f = parent.get(f)) out.unshift(f.slice(DIST_SRC.length));
  return out.join(" → ");
}

describe("loader worker thread", () => {
  it("imports nothing under src/torch/ (the modules that load the addon)", () => {
    const entry = fileURLToPath(WORKER_URL);
    const { parent, packages } = importGraph(entry);
    const files = [...parent.keys()];
    // the decoders it shares with the rest of dedos
    for (const m of ["data/image-decode.js", "data/labels.js", "train/sample.js", "train/augment.js"])
      assert.ok(files.includes(join(DIST_SRC, m)), `${m} is not in the worker's import graph`);
    const torch = files.filter((f) => f.startsWith(join(DIST_SRC, "torch") + sep));
    assert.deepEqual(
      torch.map((f) => chain(parent, f)),
      [],
      "the worker's imports reach src/torch/",
    );
    assert.ok(!files.includes(join(DIST_SRC, "data", "image-tensor.js")));
    assert.ok(
      [...packages].every((p) => p.startsWith("node:") || p === "sharp"),
      `packages: ${[...packages].join(", ")}`,
    );
  });

  it("runs in a Worker, loads no native module but sharp's, and packs the batch the main thread packs", async () => {
    const root = join(TMP, "fixture");
    await writeCocoFixture(root, 3);
    const ds = SegmentationDataset.open({ root });
    const tasks: SampleTask[] = ds.items.map((item, index) => ({ item, index, epoch: 2 }));
    const seed = 5;

    // A wrapper records every native module the worker thread opens, then runs the worker module.
    const probeFile = join(TMP, "probe.mjs");
    writeFileSync(
      probeFile,
      [
        'import { workerData } from "node:worker_threads";',
        "const opened = [];",
        "const dlopen = process.dlopen;",
        "process.dlopen = function (...args) {",
        "  opened.push(String(args[1]));",
        "  return dlopen.apply(this, args);",
        "};",
        "workerData.probe.on('message', () => workerData.probe.postMessage(opened));",
        "await import(workerData.workerUrl);",
      ].join("\n"),
    );
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit = { cfg: CFG, seed };
    const worker = new Worker(probeFile, {
      workerData: { ...init, probe: port2, workerUrl: WORKER_URL.href },
      transferList: [port2],
    });
    try {
      const errored = new Promise<never>((_, reject) => worker.once("error", reject));
      const replied = new Promise<WorkerReply>((res) => worker.once("message", res));
      worker.postMessage({ type: "batch", id: 7, tasks } satisfies WorkerRequest);
      const reply = await Promise.race([replied, errored]);
      assert.ok(reply.ok, reply.ok ? "" : reply.error);
      assert.equal(reply.id, 7);
      assert.deepEqual([reply.batch, reply.height, reply.width], [3, 12, 12]);
      const direct = await loadBatch(tasks, CFG, seed);
      assert.deepEqual(new Float32Array(reply.images), new Float32Array(direct.images));
      assert.deepEqual(new Int32Array(reply.labels), new Int32Array(direct.labels));

      const answered = new Promise<string[]>((res) => port1.once("message", res));
      port1.postMessage("opened?");
      const opened = await Promise.race([answered, errored]);
      assert.ok(
        opened.some((f) => /sharp/.test(f)),
        `sharp's addon not seen (the probe sees nothing?): ${opened}`,
      );
      assert.deepEqual(
        opened.filter((f) => /dedos_native/.test(f)),
        [],
      );
      assert.deepEqual(
        opened.filter((f) => !/sharp/.test(f)),
        [],
      );
    } finally {
      port1.close();
      await worker.terminate();
    }
  });
});
