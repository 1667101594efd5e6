import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdamW, F, Generator, liveTensorBytes, nn, randn, tidy } from "../../src/torch/index.js";
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
