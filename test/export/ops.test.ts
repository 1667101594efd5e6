// Converters of the engine's fused inference ops, each through the whole pipeline (trace at two row counts,
// convert, onnxruntime at a third): linearAct with every activation and a residual, masked
// attentionInference, GroupNorm, bicubic and nearest resizing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { exportGraph } from "../../src/export/graph-export.js";
import * as F from "../../src/torch/functional.js";
import { full, Generator, randn, Tensor, tidy } from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { tempDir } from "../temp-dir.js";

const dir = tempDir("dedos-ops-");
const g = new Generator(4);

async function check(
  name: string,
  shape: (n: number) => number[],
  f: (x: Tensor) => Tensor,
  params: [string, Tensor][] = [],
) {
  const c = (n: number) => ({ size: n, inputs: { x: randn(shape(n), { generator: g }) } });
  const r = await exportGraph({
    name,
    forward: (i) => tidy(() => f(i.x!)),
    output: "y",
    params,
    symbol: { input: "x", dim: 0, name: "n" },
    traced: [c(2), c(3)],
    checks: [c(5)],
    weightType: "float32",
    path: join(dir, `${name}.onnx`),
    producerVersion: "test",
  });
  assert.ok(r.maxAbsError <= 1e-5, `${name}: ${r.maxAbsError}`);
}

describe("export converters of fused and layer ops", () => {
  const w = randn([8, 4], { generator: g });
  const b = randn([8], { generator: g });
  for (const act of ["none", "gelu", "geluTanh", "quickGelu", "silu"] as const) {
    it(`linearAct ${act} + residual`, () =>
      check(
        `linear-${act}`,
        (n) => [n, 3, 4],
        (x) => F.linearAct(x, w, b, act, F.linear(x, w, null)),
        [
          ["w", w],
          ["b", b],
        ],
      ));
  }
  it("attentionInference with an additive causal mask", () =>
    check(
      "attention",
      (n) => [n, 2, 6, 4],
      (x) =>
        F.attentionInference(x, x.mul(0.5), x, {
          mask: full([6, 6], Number.NEGATIVE_INFINITY).triu(1),
          scale: 0.5,
        }),
    ));
  // Engines with the fused GroupNorm + activation (native groupNormAct) and conv residual.
  const slots = native as unknown as Record<string, ((...a: unknown[]) => number) | undefined>;
  it("groupNormAct (silu, gelu) and conv2dInference with a residual, when the engine has them", async (t) => {
    randn([1]).dispose(); // loads the engine
    if (typeof slots.groupNormAct !== "function") return t.skip("this engine has no groupNormAct");
    for (const act of ["silu", "gelu"]) {
      await check(
        `gn-${act}`,
        (n) => [n, 8, 5, 5],
        (x) => new Tensor(slots.groupNormAct!(x.handle, 4, b.handle, b.handle, 1e-5, act)),
        [["b", b]],
      );
    }
    const k = randn([8, 8, 3, 3], { generator: g });
    await check(
      "conv-residual",
      (n) => [n, 8, 5, 5],
      (x) =>
        new Tensor(slots.conv2dInference!(x.handle, k.handle, b.handle, [1, 1], [1, 1], [1, 1], 1, x.handle)),
      [
        ["k", k],
        ["b", b],
      ],
    );
  });
  it("groupNorm, bicubic and nearest resizing", () =>
    check(
      "layers",
      (n) => [n, 8, 5, 5],
      (x) =>
        F.interpolate(F.interpolate(F.groupNorm(x, 4, b, b, 1e-5), { size: [7, 9], mode: "bicubic" }), {
          size: [4, 4],
          mode: "nearest",
        }),
    ));
});
