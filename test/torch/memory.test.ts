import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AdamW,
  allocatorStats,
  empty,
  emptyCache,
  F,
  Generator,
  liveTensorBytes,
  nn,
  randn,
  tidy,
} from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";

describe("memory", () => {
  it("10,000 synchronous forward/backward/step iterations keep RSS, tensor bytes and live handles flat", () => {
    const g = new Generator(0);
    const fc1 = new nn.Linear(64, 128, true, { generator: g });
    const fc2 = new nn.Linear(128, 10, true, { generator: g });
    const opt = new AdamW([{ params: [...fc1.parameters(), ...fc2.parameters()], lr: 1e-3 }]);
    const x = randn([32, 64], { generator: g });
    const y = randn([32, 10], { generator: g });
    const step = () =>
      tidy(() => {
        opt.zeroGrad();
        const loss = F.mseLoss(fc2.forward(F.gelu(fc1.forward(x))), y);
        loss.backward();
        opt.step();
      });
    // No await anywhere: scoped tensors need no finalizer, so nothing waits for the event loop.
    for (let i = 0; i < 1000; i++) step();
    const rss0 = process.memoryUsage().rss;
    const bytes0 = liveTensorBytes();
    const handles0 = native.liveHandles();
    for (let i = 0; i < 10000; i++) step();
    const growMB = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.equal(native.liveHandles(), handles0, "live tensor handles");
    assert.equal(liveTensorBytes(), bytes0, "reported tensor bytes");
    assert.ok(growMB < 8, `RSS grew by ${growMB.toFixed(1)} MB over 10,000 iterations`);
  });
  it("the CPU allocator hands a freed large block back to the next request of the same size", () => {
    // 4–8 MiB requests are rounded up to 2 MiB huge-page multiples, more than the cache's 25 % best-fit slack:
    // 6.33 MiB got an 8 MiB block that no later 6.33 MiB request would take (a new, zeroed block every time).
    for (const bytes of [1.5, 3, 4.22, 6.33, 7.9, 8.1, 12.6, 33].map((m) => Math.round(m * 2 ** 20))) {
      const numel = Math.ceil(bytes / 4);
      empty([numel]).dispose(); // may need a new block (nothing of this size idle yet)
      const before = allocatorStats();
      for (let i = 0; i < 10; i++) empty([numel]).dispose();
      const after = allocatorStats();
      assert.equal(after.misses - before.misses, 0, `new blocks for ${bytes} bytes`);
      assert.equal(after.hits - before.hits, 10, `cache hits for ${bytes} bytes`);
      assert.equal(after.largeBytes, before.largeBytes, `large-block bytes for ${bytes} bytes`);
    }
    const held = empty([(8 << 20) / 4]); // in use: emptyCache must leave it alone
    emptyCache();
    const stats = allocatorStats();
    assert.equal(stats.idleBytes, 0);
    assert.ok(stats.largeBytes >= 8 << 20);
    held.fill_(1);
    assert.equal(held.sum().item(), 2 ** 21);
    held.dispose();
  });
  it("tensors outside every scope are freed by the garbage collector when dropped", async () => {
    const before = native.liveHandles();
    for (let i = 0; i < 100; i++) randn([1000]);
    assert.ok(native.liveHandles() >= before + 100);
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) return; // needs --expose-gc; covered when the test runner passes it
    for (let k = 0; k < 50 && native.liveHandles() > before; k++) {
      await new Promise(setImmediate);
      gc();
      await new Promise(setImmediate);
    }
    assert.ok(native.liveHandles() <= before, `${native.liveHandles()} live handles, ${before} before`);
  });
});

describe("allocator trimming", () => {
  it("trimCache frees the blocks no request took since the previous trim and keeps the reused ones", () => {
    emptyCache();
    const { trimCache } = native;
    trimCache(); // start an epoch
    // Epoch 1: a 4 MiB and an 8 MiB block become idle.
    empty([1 << 20]).dispose();
    empty([2 << 20]).dispose();
    const idle = allocatorStats().idleBytes;
    assert.ok(idle >= 12 << 20, `idle ${idle}`);
    assert.equal(trimCache(), 0, "blocks released in this epoch are kept");
    // Epoch 2: only the 4 MiB size is requested again.
    empty([1 << 20]).dispose();
    const freed = trimCache();
    assert.ok(freed >= 8 << 20 && freed < 12 << 20, `freed ${freed}: the unused 8 MiB block only`);
    assert.ok(allocatorStats().idleBytes >= 4 << 20, "the reused block stays cached");
    emptyCache();
    assert.equal(allocatorStats().idleBytes, 0);
  });
});
