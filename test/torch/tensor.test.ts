import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  arange,
  cat,
  type DType,
  einsum,
  F,
  Generator,
  kron,
  ones,
  rand,
  randint,
  randn,
  randperm,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
  zeros,
} from "../../src/torch/index.js";

const vals = (t: Tensor) => t.toArray();

describe("typed array round trips", () => {
  const cases: [DType, ArrayBufferView & ArrayLike<number | bigint>][] = [
    ["float32", new Float32Array([1.5, -2.25, 3e-8, 1e30])],
    ["float64", new Float64Array([1.5, -2.25, 1e-300, Math.PI])],
    ["int64", new BigInt64Array([1n, -2n, 9007199254740993n, -(2n ** 62n)])],
    ["int32", new Int32Array([1, -2, 2147483647, -2147483648])],
    ["int16", new Int16Array([1, -2, 32767, -32768])],
    ["int8", new Int8Array([1, -2, 127, -128])],
    ["uint8", new Uint8Array([0, 1, 200, 255])],
    ["bool", new Uint8Array([0, 1, 1, 0])],
    ["float16", new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001])], // 1, −2, 65504, smallest subnormal
    ["bfloat16", new Uint16Array([0x3f80, 0xc000, 0x7f7f, 0x0001])],
  ];
  for (const [dtype, data] of cases) {
    it(`${dtype}: bytes survive typed array → tensor → typed array`, () => {
      const t = tensor(data as never, [2, 2], { dtype });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 2]);
      assert.deepEqual(
        Array.from(t.toTypedArray() as ArrayLike<unknown>),
        Array.from(data as ArrayLike<unknown>),
      );
      t.dispose();
    });
  }
  it("float16 and bfloat16 decode to the right float32 values", () => {
    assert.deepEqual(
      tensor(new Uint16Array([0x3c00, 0xc000, 0x7bff]), [3], { dtype: "float16" }).toArray(),
      [1, -2, 65504],
    );
    assert.deepEqual(
      tensor(new Uint16Array([0x3f80, 0x4049]), [2], { dtype: "bfloat16" }).toArray(),
      [1, 3.140625],
    );
  });
  it("intoTypedArray consumes the tensor; shared memory is copied, sole memory adopted", () => {
    const t = arange(6).float();
    const view = t.view(2, 3);
    const a = t.intoTypedArray() as Float32Array; // storage shared with `view`: copied
    assert.equal(t.isDisposed, true);
    a[0] = 99;
    assert.deepEqual(view.toArray(), [0, 1, 2, 3, 4, 5]);
    const b = arange(4).float().mul(2).intoTypedArray() as Float32Array; // sole owner: adopted
    assert.deepEqual(Array.from(b), [0, 2, 4, 6]);
    assert.deepEqual(Array.from(arange(3).float().slice(0, 1).intoTypedArray() as Float32Array), [1, 2]);
  });
  it("a byte-count mismatch is an error naming both sizes", () => {
    assert.throws(() => tensor(new Float32Array(5), [2, 3]), /needs 24 bytes but the array holds 20/);
  });
  it("nested arrays infer the shape", () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(vals(t), [1, 2, 3, 4, 5, 6]);
  });
});

describe("shape and indexing ops", () => {
  const x = tensor(
    Float32Array.from({ length: 24 }, (_, i) => i),
    [2, 3, 4],
  );
  it("view / reshape / permute / transpose / contiguous", () => {
    assert.deepEqual(x.view(6, 4).shape, [6, 4]);
    const p = x.permute(2, 0, 1);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.equal(p.isContiguous(), false);
    assert.deepEqual(vals(p.contiguous()).slice(0, 6), [0, 4, 8, 12, 16, 20]);
    assert.deepEqual(vals(x.transpose(0, 2)).slice(0, 3), [0, 12, 4]);
  });
  it("contiguous('channelsLast'): NHWC strides, the same values, a conv keeps the layout and its values", () =>
    tidy(() => {
      const g = new Generator(3);
      const t = randn([2, 5, 4, 3], { generator: g }); // (N, C, H, W)
      const cl = t.contiguous("channelsLast");
      assert.deepEqual(cl.strides, [60, 1, 15, 5], "(N, H, W, C) in memory");
      assert.equal(cl.isContiguous(), false);
      assert.deepEqual(vals(cl), vals(t));
      assert.equal(cl.contiguous().isContiguous(), true);
      const w = randn([6, 5, 3, 3], { generator: g });
      const y = F.conv2d(cl, w.contiguous("channelsLast"), null, { padding: 1 });
      assert.deepEqual(y.strides, [72, 1, 18, 6], "the output stays channels-last");
      const ref = F.conv2d(t, w, null, { padding: 1 });
      assert.ok(y.sub(ref).abs().max().item() <= 1e-5);
    }));
  it("slice, narrow, select, indexSelect, gather, index", () => {
    assert.deepEqual(vals(x.slice(2, 1, 3)), [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    assert.deepEqual(vals(x.slice(2, -1)), [3, 7, 11, 15, 19, 23]);
    assert.deepEqual(vals(x.select(1, 2)), [8, 9, 10, 11, 20, 21, 22, 23]);
    const idx = tensor(new BigInt64Array([2n, 0n]), [2]);
    assert.deepEqual(vals(x.select(0, 0).indexSelect(0, idx)), [8, 9, 10, 11, 0, 1, 2, 3]);
    const g = tensor(new BigInt64Array([3n, 0n, 1n]), [3, 1]);
    assert.deepEqual(vals(x.select(0, 1).gather(1, g)), [15, 16, 21]);
    assert.deepEqual(vals(x.index([null, idx])), vals(cat([x.slice(1, 2, 3), x.slice(1, 0, 1)], 1)));
  });
  it("cat, stack, split, chunk", () => {
    const a = arange(4).float();
    const b = arange(4, 8).float();
    assert.deepEqual(vals(cat([a, b])), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(stack([a, b], 1).shape, [4, 2]);
    assert.deepEqual(
      cat([a, b])
        .split([3, 5])
        .map((t) => t.numel),
      [3, 5],
    );
    assert.deepEqual(
      cat([a, b])
        .chunk(3)
        .map((t) => vals(t)),
      [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7],
      ],
    );
  });
  it("scatter, where, maskedFill, expand, repeat, flip, roll", () => {
    const z = zeros([2, 3]);
    const i = tensor(new BigInt64Array([2n, 0n]), [2, 1]);
    assert.deepEqual(vals(z.scatter(1, i, 5)), [0, 0, 5, 5, 0, 0]);
    const m = arange(6).view(2, 3).gt(2);
    assert.deepEqual(vals(where(m, 1, -1)), [-1, -1, -1, 1, 1, 1]);
    assert.deepEqual(vals(arange(6).float().view(2, 3).maskedFill(m, -7)), [0, 1, 2, -7, -7, -7]);
    assert.deepEqual(arange(3).view(3, 1).expand(3, 4).shape, [3, 4]);
    assert.deepEqual(vals(arange(2).repeat(3)), [0, 1, 0, 1, 0, 1]);
    assert.deepEqual(vals(arange(4).flip(0)), [3, 2, 1, 0]);
    assert.deepEqual(vals(arange(4).roll(1, 0)), [3, 0, 1, 2]);
  });
  it("unfold / fold (im2col) and Tensor.unfold", async () => {
    const F = (await import("../../src/torch/index.js")).F;
    const img = arange(16).float().view(1, 1, 4, 4);
    const cols = F.unfold(img, 2, { stride: 2 });
    assert.deepEqual(cols.shape, [1, 4, 4]);
    assert.deepEqual(vals(cols.select(2, 0)), [0, 1, 4, 5]);
    assert.deepEqual(vals(F.fold(cols, 4, 2, { stride: 2 })), vals(img));
    assert.deepEqual(vals(arange(5).unfold(0, 2, 1)), [0, 1, 1, 2, 2, 3, 3, 4]);
  });
  it("F.pad constant / reflect / replicate", async () => {
    const F = (await import("../../src/torch/index.js")).F;
    const t = arange(3).float().view(1, 1, 1, 3);
    assert.deepEqual(vals(F.pad(t, [1, 2, 0, 0], "constant", 9)), [9, 0, 1, 2, 9, 9]);
    assert.deepEqual(vals(F.pad(t, [1, 1, 0, 0], "reflect")), [1, 0, 1, 2, 1]);
    assert.deepEqual(vals(F.pad(t, [1, 1, 0, 0], "replicate")), [0, 0, 1, 2, 2]);
  });
});

describe("math and reductions", () => {
  const a = tensor([
    [1, -2, 3],
    [4, 5, -6],
  ]);
  it("broadcast arithmetic", () => {
    const r = tensor([10, 20, 30]);
    assert.deepEqual(vals(a.add(r)), [11, 18, 33, 14, 25, 24]);
    assert.deepEqual(vals(a.mul(2).sub(1)), [1, -5, 5, 7, 9, -13]);
    assert.deepEqual(vals(a.div(tensor([[2], [4]]))), [0.5, -1, 1.5, 1, 1.25, -1.5]);
    assert.deepEqual(vals(a.abs().pow(2)), [1, 4, 9, 16, 25, 36]);
    assert.deepEqual(vals(a.clamp(-1, 4)), [1, -1, 3, 4, 4, -1]);
    assert.deepEqual(vals(tensor([4, 9]).sqrt()), [2, 3]);
    assert.deepEqual(vals(tensor([4, 16]).rsqrt()), [0.5, 0.25]);
    assert.ok(Math.abs(tensor([1]).exp().log().item() - 1) < 1e-7);
  });
  it("integer tensors stay integer with integer scalars", () => {
    const i = arange(4);
    assert.equal(i.add(1).dtype, "int64");
    assert.equal(i.mul(0.5).dtype, "float32");
  });
  it("sum / mean / var / max / min / argmax", () => {
    assert.equal(a.sum().item(), 5);
    assert.deepEqual(vals(a.sum(0)), [5, 3, -3]);
    assert.deepEqual(a.sum(1, true).shape, [2, 1]);
    assert.deepEqual(
      vals(a.mean(1)),
      [2 / 3, 1].map((v) => Math.fround(v)),
    );
    assert.ok(Math.abs(tensor([1, 2, 3, 4]).var().item() - 5 / 3) < 1e-6);
    assert.ok(Math.abs(tensor([1, 2, 3, 4]).var(0, { correction: 0 }).item() - 1.25) < 1e-6);
    assert.equal(a.max().item(), 5);
    const [v, i] = a.maxDim(1);
    assert.deepEqual(vals(v), [3, 5]);
    assert.deepEqual(vals(i), [2, 1]);
    assert.deepEqual(vals(a.argmax(0)), [1, 1, 0]);
    assert.deepEqual(vals(a.amin(1)), [-2, -6]);
  });
  it("topk, sort, cumsum", () => {
    const t = tensor([3, 1, 4, 1, 5, 9, 2, 6]);
    const [v, i] = t.topk(3);
    assert.deepEqual(vals(v), [9, 6, 5]);
    assert.deepEqual(vals(i), [5, 7, 4]);
    assert.deepEqual(vals(t.sort(0, true, true)[0]), [9, 6, 5, 4, 3, 2, 1, 1]);
    assert.deepEqual(vals(t.cumsum(0)), [3, 4, 8, 9, 14, 23, 25, 31]);
  });
  it("matmul, bmm, einsum, kron", () => {
    const m = tensor([
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(vals(m.matmul(m)), [7, 10, 15, 22]);
    assert.deepEqual(vals(m.unsqueeze(0).bmm(m.unsqueeze(0))), [7, 10, 15, 22]);
    assert.deepEqual(vals(einsum("ij,jk->ik", m, m)), [7, 10, 15, 22]);
    assert.deepEqual(vals(einsum("ij->j", m)), [4, 6]);
    assert.deepEqual(vals(kron(tensor([[1, 2]]), tensor([[1], [10]]))), [1, 2, 10, 20]);
  });
});

describe("random numbers", () => {
  it("a seeded generator reproduces draws and its state round-trips", () => {
    const g1 = new Generator(42);
    const g2 = new Generator(42);
    assert.deepEqual(vals(randn([5], { generator: g1 })), vals(randn([5], { generator: g2 })));
    const s = g1.getState();
    const a = vals(rand([4], { generator: g1 }));
    g1.setState(s);
    assert.deepEqual(vals(rand([4], { generator: g1 })), a);
  });
  it("randint range, randperm is a permutation, bernoulli rate", () => {
    const g = new Generator(7);
    const r = vals(randint(3, 6, [1000], { generator: g }));
    assert.ok(r.every((v) => v >= 3 && v < 6));
    assert.deepEqual(
      vals(randperm(10, { generator: g })).sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    const u = rand([10000], { generator: g });
    const m = u.mean().item();
    assert.ok(m > 0.48 && m < 0.52, `uniform mean ${m}`);
  });
  it("dropout with a generator is reproducible, keeps scale and is identity in eval", async () => {
    const { F } = await import("../../src/torch/index.js");
    const x = ones([1000]);
    const a = vals(F.dropout(x, 0.25, true, new Generator(3)));
    const b = vals(F.dropout(x, 0.25, true, new Generator(3)));
    assert.deepEqual(a, b);
    assert.ok(a.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-6));
    assert.deepEqual(vals(F.dropout(x, 0.25, false)), vals(x));
  });
});

describe("scopes and disposal", () => {
  it("tidy frees temporaries and keeps the result", () => {
    let inner: Tensor | undefined;
    const out = tidy(() => {
      inner = ones([3]).add(1);
      return inner.mul(2);
    });
    assert.equal(inner!.isDisposed, true);
    assert.deepEqual(vals(out), [4, 4, 4]);
    out.dispose();
    assert.equal(out.isDisposed, true);
  });
  it("a tidy body that throws frees its temporaries but never a kept tensor (a cache made inside it)", () => {
    let temp: Tensor | undefined;
    let cache: Tensor | undefined;
    assert.throws(
      () =>
        tidy(() => {
          cache = ones([2]).mul(3).keep();
          temp = ones([2]).add(1);
          throw new Error("bad image");
        }),
      /bad image/,
    );
    assert.equal(temp!.isDisposed, true);
    assert.equal(cache!.isDisposed, false);
    assert.deepEqual(vals(cache!), [3, 3]); // still usable by the next call
    cache!.dispose();
  });
  it("using a disposed tensor is an error that says so", () => {
    const t = ones([2]);
    t.dispose();
    assert.throws(() => t.add(1), /already disposed/);
  });
  it("errors are JavaScript errors naming the op, and the process survives", () => {
    assert.throws(() => ones([2, 3]).matmul(ones([2, 3])), /matmul: .*cannot be multiplied/);
    assert.throws(() => ones([3]).select(0, 5), /select: .*index 5 out of range/);
    assert.throws(() => ones([3]).to("cuda"), /CUDA/);
    assert.throws(() => ones([2]).view(3), /view: shape '\[3\]' is invalid/);
    assert.throws(() => arange(3).indexSelect(0, tensor([0.5])), /indexSelect:/);
  });
});
