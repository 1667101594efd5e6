// The tracer's refusals: an op without a converter fails naming it and its caller, a forward that reads its
// input's data into JavaScript or branches on the dynamic size fails clearly, and the engine is untouched
// afterwards. Plus a small graph through the whole pipeline (affine shapes, folded constants).
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { exportGraph, type GraphExportOptions } from "../../src/export/graph-export.js";
import * as F from "../../src/torch/functional.js";
import { arange, Generator, randn, type Tensor, tidy } from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { tempDir } from "../temp-dir.js";

const dir = tempDir("dedos-trace-");

function options(forward: (x: Tensor) => Tensor, name: string): GraphExportOptions {
  const g = new Generator(1);
  const c = (n: number) => ({ size: n, inputs: { x: randn([n, 4], { generator: g }) } });
  return {
    name,
    forward: (i) => forward(i.x!),
    output: "y",
    params: [],
    symbol: { input: "x", dim: 0, name: "rows" },
    traced: [c(2), c(3)],
    checks: [c(6)],
    weightType: "float32",
    path: join(dir, `${name}.onnx`),
    producerVersion: "test",
  };
}

describe("export tracer", () => {
  it("fails on an op without a converter, naming the op and the calling line", async () => {
    randn([1]).dispose(); // loads the engine: its slots hold the addon's functions from now on
    const before = native.add;
    await assert.rejects(
      exportGraph(options((x) => tidy(() => x.cumprod(1).add(1)), "cumprod")),
      (e: Error) => {
        assert.match(e.message, /unsupported op "cumprod"/);
        assert.match(e.message, /called from .*trace\.test\.js/);
        return true;
      },
    );
    assert.equal(native.add, before, "the engine's slots are restored");
    const t = randn([2]).add(1);
    assert.deepEqual(t.shape, [2]);
  });

  it("fails on an op that has an engine spec but no converter when it touches the input", async () => {
    await assert.rejects(
      exportGraph(options((x) => tidy(() => x.repeatInterleave(2, 0)), "repeat-interleave")),
      /unsupported op "repeatInterleave" \(called from /,
    );
  });

  it("fails when the forward reads input data back to JavaScript", async () => {
    await assert.rejects(
      exportGraph(options((x) => tidy(() => x.mul(x.sum().item())), "item")),
      /reads input-dependent tensor data back to JavaScript \("item"/,
    );
  });

  it("fails when the forward branches on the dynamic size", async () => {
    await assert.rejects(
      exportGraph(options((x) => tidy(() => (x.size(0) > 2 ? x.exp() : x.neg())), "branch")),
      /branches on the rows count|op #0 is "neg" at size 2 but "exp" at 3/,
    );
  });

  it("exports affine shapes and folded constants: equal to libtorch at an untraced size", async () => {
    const f = (x: Tensor) =>
      tidy(() => {
        const n = x.size(0);
        const idx = arange(n).mul(2).float().unsqueeze(1); // follows the row count: a Range node
        const w = arange(4).float().reshape(1, 4).div(3); // constant: folded
        const y = x
          .mul(w)
          .add(idx)
          .reshape(n * 2, 2);
        return F.softmax(y.narrow(0, 1, 2 * n - 1), -1).sum(0, true);
      });
    const r = await exportGraph(options(f, "affine"));
    assert.ok(r.maxAbsError <= 1e-6, `${r.maxAbsError}`);
    assert.deepEqual(
      r.checks.map((c) => c.size),
      [2, 3, 6],
    );
  });
});
