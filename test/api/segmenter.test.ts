// The library face (src/api/segmenter.ts): what a user of `Segmenter` gets, on a tiny random CAT-Seg.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { catsegStateDict } from "../../src/catseg/weights.js";
import { readImageRGB } from "../../src/data/image-decode.js";
import { createModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const TINY = TINY_CATSEG;

describe("Segmenter", () => {
  it("library: segment() returns labels, classes and scores whose argmax is the labels", async () => {
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 3 });
    const r = await seg.segment("assets/voc/114_image.png", ["cat", "dog, puppy", "sofa"], { scores: true });
    await seg.dispose();
    assert.equal(r.labels.length, r.width * r.height);
    assert.equal(r.scores!.length, 3 * r.width * r.height);
    const n = r.width * r.height;
    for (let i = 0; i < n; i += 997) {
      const s = [0, 1, 2].map((c) => r.scores![c * n + i]!);
      assert.equal(r.labels[i], s.indexOf(Math.max(...s)));
      assert.ok(s.every((v) => v >= 0 && v <= 1));
    }
  });

  it("Segmenter: a file, its bytes and its decoded pixels give the same labels", async () => {
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 3 });
    const file = "assets/coco/000000039769.png";
    const a = await seg.segment(file, "cat; sofa; remote");
    const b = await seg.segment(readFileSync(file), "cat; sofa; remote");
    const c = await seg.segment(await readImageRGB(file), "cat; sofa; remote");
    await seg.dispose();
    assert.deepEqual([a.width, a.height], [640, 480]);
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(c.labels, a.labels);
  });

  it("weights are required: random weights only when asked for by name", async () => {
    await assert.rejects(
      () => Segmenter.create({ config: TINY } as unknown as Parameters<typeof Segmenter.create>[0]),
      /weights is required: a weights file .*"random" for random weights/,
    );
    const seg = await Segmenter.create({ config: TINY, weights: "random" });
    assert.equal(seg.randomWeights, true);
    await assert.rejects(seg.segment("assets/images/chelsea.png", []), /the class list is empty/);
    await assert.rejects(
      seg.segment("assets/images/chelsea.png", ["cat", " ", "dog"]),
      /class 2 of 3 is empty/,
    );
    await seg.dispose();
  });

  it("does not block the event loop: it stays idle, and a 10 ms timer keeps ticking, during create and segment", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const elu = performance.eventLoopUtilization();
    const t0 = performance.now();
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 4 });
    const images = [
      "assets/coco/000000039769.png",
      "assets/images/astronaut.png",
      "assets/images/coffee.png",
    ];
    const results = await seg.segment([...images, ...images], "person; sky; cup; cat");
    const ms = performance.now() - t0;
    // The share of the time the main thread's loop was busy rather than waiting: the engine's work would make it
    // ≈ 1. Unlike the tick count it does not drop when other processes take the CPU (the loop then waits longer).
    const busy = performance.eventLoopUtilization(elu).utilization;
    clearInterval(timer);
    await seg.dispose();
    assert.equal(results.length, 6);
    const expected = ms / 10;
    assert.ok(ms > 300, `the run took only ${ms.toFixed(0)} ms: too short to measure`);
    assert.ok(busy < 0.3, `the event loop was busy ${(busy * 100).toFixed(0)} % of ${ms.toFixed(0)} ms`);
    assert.ok(
      ticks >= 0.5 * expected,
      `${ticks} ticks in ${ms.toFixed(0)} ms (expected ≥ ${(0.5 * expected).toFixed(0)})`,
    );
  });

  it("a batch returns results in order, equal to one call per image", async () => {
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 5 });
    const files = ["assets/images/coffee.png", "assets/voc/1_image.png"];
    const both = await seg.segment(files, ["cup", "table", "person"]);
    const one = await seg.segment(files[1]!, ["cup", "table", "person"]);
    // Concurrent calls on one Segmenter queue and each gets its own answer.
    const [x, y] = await Promise.all([
      seg.segment(files[0]!, ["cup", "table", "person"]),
      seg.segment(files[1]!, ["cup", "table", "person"]),
    ]);
    await seg.dispose();
    assert.deepEqual([both[0]!.width, both[1]!.width], [600, 513]);
    assert.deepEqual(both[1]!.labels, one.labels);
    assert.deepEqual(x.labels, both[0]!.labels);
    assert.deepEqual(y.labels, both[1]!.labels);
  });

  it("progress events are monotonic per stage and end at their total", async () => {
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 6 });
    const events: { stage: string; done: number; total: number; eta?: number }[] = [];
    await seg.segment("assets/images/chelsea.png", "cat; wall", {
      onProgress: (p) => events.push({ stage: p.stage, done: p.done, total: p.total, eta: p.etaSeconds }),
    });
    await seg.dispose();
    const views = events.filter((e) => e.stage === "view");
    assert.deepEqual(
      views.map((e) => e.done),
      [1, 2, 3, 4, 5],
    ); // CAT-Seg's 2×2 windows + the global view, one view at a time
    assert.ok(views.every((e) => e.total === 5 && e.eta !== undefined && e.eta >= 0));
    assert.deepEqual(events[0], { stage: "text", done: 1, total: 1, eta: undefined });
    assert.deepEqual(events.at(-1), { stage: "postprocess", done: 1, total: 1, eta: undefined });
  });

  it("an AbortSignal stops a multi-view run within one view; the Segmenter keeps working", async () => {
    const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 7 });
    const ac = new AbortController();
    let lastView = 0;
    await assert.rejects(
      seg.segment("assets/images/chelsea.png", "cat; wall", {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.stage !== "view") return;
          lastView = p.done;
          if (p.done === 1) ac.abort();
        },
      }),
      (e: Error) => e.name === "AbortError",
    );
    assert.ok(lastView <= 2, `views after the abort: ${lastView - 1}`);
    // An already aborted signal never starts; the next call still works (nothing cached was freed).
    await assert.rejects(seg.segment("assets/images/chelsea.png", "cat", { signal: ac.signal }), {
      name: "AbortError",
    });
    const r = await seg.segment("assets/images/chelsea.png", "cat; wall");
    assert.equal(r.labels.length, r.width * r.height);
    await seg.dispose();
  });

  it("weights by name: a registered weight is fetched into the cache once, with download progress", async () => {
    // A private registry entry (DEDOS_REGISTRY_EXTRA) served by a local HTTP server.
    const dir = tempDir("dedos-api-weights-");
    const model = createModel({ arch: "catseg", config: TINY, weights: "random", seed: 8 });
    const file = join(dir, "tiny.safetensors");
    saveSafetensors(file, catsegStateDict(model));
    model.dispose();
    const bytes = readFileSync(file);
    let requests = 0;
    const server = createServer((_, res) => {
      requests++;
      res.writeHead(200, { "content-length": bytes.length });
      res.end(bytes);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny.safetensors`;
    const registry = join(dir, "registry.json");
    writeFileSync(
      registry,
      JSON.stringify({ "tiny-catseg": { url, size: bytes.length, config: "vitb_384", licence: "test" } }),
    );
    const env = {
      DEDOS_REGISTRY_EXTRA: process.env.DEDOS_REGISTRY_EXTRA,
      DEDOS_CACHE: process.env.DEDOS_CACHE,
    };
    process.env.DEDOS_REGISTRY_EXTRA = registry;
    process.env.DEDOS_CACHE = join(dir, "cache");
    try {
      const stages: string[] = [];
      const seg = await Segmenter.create({
        weights: "tiny-catseg",
        config: TINY,
        onProgress: (p) => stages.push(`${p.stage}:${p.done}/${p.total}`),
      });
      const r = await seg.segment("assets/images/chelsea.png", "cat; wall");
      await seg.dispose();
      assert.equal(r.labels.length, r.width * r.height);
      assert.ok(stages.includes(`download:${bytes.length}/${bytes.length}`), stages.join(" "));
      assert.deepEqual(stages.slice(-2), ["loading:0/1", "loading:1/1"]);
      assert.ok(existsSync(join(dir, "cache", "tiny-catseg", "tiny.safetensors")));
      // Cached: a second Segmenter does not download again.
      const again = await Segmenter.create({ weights: "tiny-catseg", config: TINY });
      await again.dispose();
      assert.equal(requests, 1);
    } finally {
      for (const [k, v] of Object.entries(env)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      server.close();
    }
  });
});

describe("Segmenter memory", () => {
  it("returns the allocator's idle blocks once no request came for DEDOS_IDLE_RELEASE_MS", async () => {
    const { allocatorStats } = await import("../../src/torch/tensor.js");
    const was = process.env.DEDOS_IDLE_RELEASE_MS;
    process.env.DEDOS_IDLE_RELEASE_MS = "100"; // read by the worker at start
    try {
      const seg = await Segmenter.create({ config: TINY, weights: "random", seed: 3 });
      await seg.segment("assets/coco/000000039769.png", "cat; sofa");
      // The allocator is the process's: the worker's idle blocks show here.
      assert.ok(allocatorStats().idleBytes > 0, "nothing cached right after a call");
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(allocatorStats().idleBytes, 0);
      await seg.dispose();
    } finally {
      if (was === undefined) delete process.env.DEDOS_IDLE_RELEASE_MS;
      else process.env.DEDOS_IDLE_RELEASE_MS = was;
    }
  });
});
