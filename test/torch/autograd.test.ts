import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { autogradGrad, F, noGrad, ones, type Tensor, tensor, tidy } from "../../src/torch/index.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";

const inp = (shape: number[], seed: number) => ({
  data: pseudoRandom(
    shape.reduce((a, b) => a * b, 1),
    seed,
  ),
  shape,
});
const wsum = (y: Tensor) => y.mul(tensor(Float64Array.from(pseudoRandom(y.numel, 99)), y.shape)).sum();

describe("autograd against finite differences (float64)", () => {
  const checks: [string, (xs: Tensor[]) => Tensor, { data: number[]; shape: number[] }[]][] = [
    ["linear", ([x, w, b]) => wsum(F.linear(x!, w!, b!)), [inp([3, 4], 1), inp([5, 4], 2), inp([5], 3)]],
    [
      "conv2d stride 2 pad 1",
      ([x, w, b]) => wsum(F.conv2d(x!, w!, b!, { stride: 2, padding: 1 })),
      [inp([1, 2, 5, 5], 4), inp([3, 2, 3, 3], 5), inp([3], 6)],
    ],
    [
      "conv2d groups",
      ([x, w]) => wsum(F.conv2d(x!, w!, null, { groups: 2, padding: 1 })),
      [inp([1, 4, 4, 4], 7), inp([2, 2, 3, 3], 8)],
    ],
    [
      "convTranspose2d",
      ([x, w, b]) => wsum(F.convTranspose2d(x!, w!, b!, { stride: 2 })),
      [inp([1, 2, 3, 3], 9), inp([2, 3, 2, 2], 10), inp([3], 11)],
    ],
    [
      "layerNorm",
      ([x, w, b]) => wsum(F.layerNorm(x!, [6], w!, b!)),
      [inp([3, 6], 12), inp([6], 13), inp([6], 14)],
    ],
    [
      "groupNorm",
      ([x, w, b]) => wsum(F.groupNorm(x!, 2, w!, b!)),
      [inp([2, 4, 3, 3], 15), inp([4], 16), inp([4], 17)],
    ],
    [
      "batchNorm train",
      ([x, w, b]) => wsum(F.batchNorm(x!, null, null, w!, b!, true)),
      [inp([4, 3, 2, 2], 18), inp([3], 19), inp([3], 20)],
    ],
    ["softmax", ([x]) => wsum(F.softmax(x!, -1)), [inp([3, 5], 21)]],
    ["logSoftmax", ([x]) => wsum(F.logSoftmax(x!, 0)), [inp([3, 5], 22)]],
    ["gelu erf", ([x]) => wsum(F.gelu(x!)), [inp([10], 23)]],
    ["gelu tanh", ([x]) => wsum(F.gelu(x!, "tanh")), [inp([10], 24)]],
    ["quickGelu", ([x]) => wsum(F.quickGelu(x!)), [inp([10], 25)]],
    ["silu", ([x]) => wsum(F.silu(x!)), [inp([10], 26)]],
    ["elu", ([x]) => wsum(F.elu(x!)), [inp([10], 27)]],
    [
      "interpolate bilinear",
      ([x]) => wsum(F.interpolate(x!, { size: [5, 7], mode: "bilinear" })),
      [inp([1, 2, 3, 4], 28)],
    ],
    [
      "interpolate bilinear alignCorners",
      ([x]) => wsum(F.interpolate(x!, { size: [5, 7], mode: "bilinear", alignCorners: true })),
      [inp([1, 1, 3, 4], 29)],
    ],
    [
      "interpolate bicubic",
      ([x]) => wsum(F.interpolate(x!, { size: [6, 6], mode: "bicubic" })),
      [inp([1, 1, 4, 4], 30)],
    ],
    [
      "interpolate nearest",
      ([x]) => wsum(F.interpolate(x!, { size: [6, 8], mode: "nearest" })),
      [inp([1, 1, 3, 4], 31)],
    ],
    ["avgPool2d", ([x]) => wsum(F.avgPool2d(x!, 2)), [inp([1, 2, 4, 4], 32)]],
    ["maxPool2d", ([x]) => wsum(F.maxPool2d(x!, 2)), [inp([1, 2, 4, 4], 33)]],
    ["adaptiveAvgPool2d", ([x]) => wsum(F.adaptiveAvgPool2d(x!, [2, 3])), [inp([1, 2, 5, 7], 34)]],
    [
      "attention with mask",
      ([q, k, v]) =>
        wsum(
          F.attention(q!, k!, v!, {
            mask: tensor(Float64Array.from([0, -1e9, 0, 0, 0, -1e9, 0, 0, 0]), [3, 3]),
          }),
        ),
      [inp([2, 3, 4], 35), inp([2, 3, 4], 36), inp([2, 3, 4], 37)],
    ],
    [
      "bce with logits",
      ([x, t]) => F.binaryCrossEntropyWithLogits(x!, t!.sigmoid()),
      [inp([4, 3], 38), inp([4, 3], 39)],
    ],
    [
      "cross entropy with ignore",
      ([x]) => F.crossEntropy(x!, tensor(new BigInt64Array([1n, 255n, 0n, 2n]), [4]), { ignoreIndex: 255 }),
      [inp([4, 3], 40)],
    ],
    [
      "cross entropy 2-d targets",
      ([x]) => F.crossEntropy(x!, tensor(new BigInt64Array([0n, 1n, 2n, 1n]), [1, 2, 2])),
      [inp([1, 3, 2, 2], 41)],
    ],
    ["smooth L1", ([x, y]) => F.smoothL1Loss(x!, y!, { beta: 0.5 }), [inp([8], 42), inp([8], 43)]],
    [
      "sigmoid focal",
      ([x]) =>
        F.sigmoidFocalLoss(x!, tensor(Float64Array.from([1, 0, 1, 0, 0, 1]), [2, 3]), { reduction: "mean" }),
      [inp([2, 3], 44)],
    ],
    [
      "dice",
      ([x]) => F.diceLoss(x!, tensor(Float64Array.from([1, 0, 1, 0, 0, 1]), [2, 3]), "mean"),
      [inp([2, 3], 45)],
    ],
    ["matmul broadcast", ([a, b]) => wsum(a!.matmul(b!)), [inp([2, 3, 4], 46), inp([4, 2], 47)]],
    [
      "einsum",
      ([a, b]) => wsum(F.softmax(a!, -1).mul(1).sum(-1).add(b!.sum())),
      [inp([2, 3], 48), inp([3], 49)],
    ],
    [
      "gather/scatter path",
      ([a]) => wsum(a!.gather(1, tensor(new BigInt64Array([2n, 0n, 1n, 1n]), [2, 2]))),
      [inp([2, 3], 50)],
    ],
    ["pad reflect", ([a]) => wsum(F.pad(a!, [1, 1, 1, 1], "reflect")), [inp([1, 1, 3, 3], 51)]],
    ["norm, var, logsumexp", ([a]) => a!.norm().add(a!.var()).add(a!.logsumexp(1).sum()), [inp([3, 4], 52)]],
  ];
  for (const [name, fn, inputs] of checks) {
    it(name, () => gradcheck(fn, inputs, { name }));
  }
});

describe("autograd mechanics", () => {
  it("backward accumulates into .grad; detach and noGrad stop gradients", () => {
    const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
    x.mul(x).sum().backward();
    assertClose(x.grad!.toArray(), [2, 4, 6]);
    x.mul(3).sum().backward();
    assertClose(x.grad!.toArray(), [5, 7, 9]);
    x.grad = null;
    assert.equal(x.grad, null);
    assert.equal(x.detach().requiresGrad, false);
    assert.equal(noGrad(() => x.mul(2)).requiresGrad, false);
  });
  it("autogradGrad returns gradients without touching .grad", () => {
    const x = tensor([1, 2], undefined, { requiresGrad: true });
    const [g] = autogradGrad([x.pow(3).sum()], [x]);
    assertClose(g!.toArray(), [3, 12]);
    assert.equal(x.grad, null);
  });
  it("tidy inside a training step does not break backward", () => {
    const w = ones([3], { requiresGrad: true });
    const loss = tidy(() =>
      w
        .mul(tensor([1, 2, 3]))
        .square()
        .sum(),
    );
    loss.backward();
    assertClose(w.grad!.toArray(), [2, 8, 18]);
  });
});
