import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdamW, F, Generator, liveTensorBytes, nn, randn, tidy } from "../../src/torch/index.js";

describe("memory", () => {
  it("10,000 forward/backward/step iterations (after 2,000 warm-up) keep RSS and tensor memory flat", async () => {
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
    // A training loop awaits its data; the event loop then runs the finalizers of the (already freed) handles.
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        step();
        if (i % 100 === 99) await new Promise(setImmediate);
      }
    };
    await run(2000);
    globalThis.gc?.();
    const rss0 = process.memoryUsage().rss;
    const bytes0 = liveTensorBytes();
    await run(10000);
    globalThis.gc?.();
    const rss1 = process.memoryUsage().rss;
    const bytes1 = liveTensorBytes();
    const growMB = (rss1 - rss0) / 2 ** 20;
    // Gradients are freed by zeroGrad and recreated, so tensor bytes may move by one set of gradients.
    assert.ok(
      Math.abs(bytes1 - bytes0) <= (64 * 128 + 128 + 128 * 10 + 10) * 4,
      `tensor bytes ${bytes0} → ${bytes1}`,
    );
    assert.ok(growMB < 8, `RSS grew by ${growMB.toFixed(1)} MB over 10,000 iterations`);
  });
});
