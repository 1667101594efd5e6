// ATen's float32 CPU mm/addmm/bmm/baddbmm routed onto oneDNN's sgemm (native/src/aten-gemm.cpp): every product
// built on them (matmul with broadcasting, einsum, linear on N-D inputs, their gradients) against ATen's own
// kernels (DEDOS_DNNL_GEMM off), including the layouts and edge cases BLAS calls have.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  autogradGrad,
  baddbmm,
  einsum,
  F,
  full,
  Generator,
  randn,
  type Tensor,
  tidy,
  zeros,
} from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { withAtenKernels as aten } from "../helpers.js";

const g = new Generator(11);
const rand = (shape: number[]) => randn(shape, { generator: g });
const maxAbs = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());
/** Same shape, equal to rounding (relative to the result's scale). */
function close(a: Tensor, b: Tensor, rel = 1e-5): void {
  assert.deepEqual(a.shape, b.shape);
  const scale = tidy(() => Math.max(b.abs().max().item(), 1e-30));
  const e = maxAbs(a, b) / scale;
  assert.ok(e <= rel, `relative error ${e} > ${rel}`);
}
const routed = native.atenGemmRouted();

describe("ATen matrix products on oneDNN sgemm", () => {
  it("is routed on this libtorch (Debian's shares libdnnl)", () => {
    assert.equal(routed, true);
  });

  it("mm: takes the sgemm path (rounding differs from OpenBLAS) and equals it to rounding", () => {
    tidy(() => {
      const a = rand([300, 257]);
      const b = rand([257, 190]);
      const ours = a.matmul(b);
      const theirs = aten(() => a.matmul(b));
      close(ours, theirs);
      // Any non-zero difference shows a different kernel ran (a 257-long dot product rounds differently).
      assert.ok(maxAbs(ours, theirs) > 0, "identical bits: the sgemm path did not run");
    });
  });

  it("mm: transposed, sliced and expanded operands", () => {
    tidy(() => {
      const a = rand([64, 48]);
      const b = rand([80, 64]);
      close(
        a.mT.matmul(b.mT),
        aten(() => a.mT.matmul(b.mT)),
      ); // both column-major
      const wide = rand([64, 100]).narrow(1, 10, 48); // row stride 100
      const w5 = rand([48, 5]);
      close(
        wide.matmul(w5),
        aten(() => wide.matmul(w5)),
      );
      const row = rand([1, 48]).expand(7, 48); // stride 0 rows: copied
      const w = rand([48, 9]);
      close(
        row.matmul(w),
        aten(() => row.matmul(w)),
      );
    });
  });

  it("addmm (ATen's linear on 2-D input with a (1, n) bias)", () => {
    tidy(() => {
      const x = rand([37, 16]);
      const w = rand([24, 16]);
      const b = rand([1, 24]);
      close(
        F.linear(x, w, b),
        aten(() => F.linear(x, w, b)),
      );
      close(
        F.linear(x, w, b),
        aten(() => x.matmul(w.mT).add(b)),
      );
    });
  });

  it("baddbmm: beta·input + alpha·a·b, beta = 0 ignores a NaN input", () => {
    tidy(() => {
      const input = rand([3, 5, 7]);
      const a = rand([3, 5, 4]);
      const b = rand([3, 4, 7]);
      close(
        baddbmm(input, a, b, 0.5, -2),
        aten(() => baddbmm(input, a, b, 0.5, -2)),
      );
      const nan = full([3, 5, 7], Number.NaN);
      const out = baddbmm(nan, a, b, 0, 1);
      assert.equal(Boolean(out.isnan().any().item()), false);
      close(
        out,
        aten(() => a.bmm(b)),
      );
      // Broadcast input (1, 1, 7).
      const row = rand([1, 1, 7]);
      close(
        baddbmm(row, a, b),
        aten(() => baddbmm(row, a, b)),
      );
    });
  });

  it("bmm: many small products (threads over the batch) and few large ones, transposed slices", () => {
    tidy(() => {
      const q = rand([2, 12, 77, 16]);
      const k = rand([2, 12, 77, 16]);
      close(
        q.matmul(k.mT),
        aten(() => q.matmul(k.mT)),
      );
      const big = rand([2, 300, 128]);
      const big2 = rand([2, 300, 128]);
      close(
        big.bmm(big2.mT),
        aten(() => big.bmm(big2.mT)),
      );
      // Broadcast batch: (4, 1, m, k) · (3, k, n) → (4, 3, m, n).
      const a = rand([4, 1, 6, 5]);
      const b = rand([3, 5, 2]);
      close(
        a.matmul(b),
        aten(() => a.matmul(b)),
      );
    });
  });

  it("empty and zero-depth products", () => {
    tidy(() => {
      assert.deepEqual(rand([0, 4]).matmul(rand([4, 3])).shape, [0, 3]);
      const z = rand([5, 0]).matmul(rand([0, 3]));
      assert.equal(z.abs().max().item(), 0);
      const zb = rand([2, 5, 0]).bmm(rand([2, 0, 3]));
      assert.equal(zb.abs().max().item(), 0);
      assert.deepEqual(zeros([2, 0, 4]).bmm(rand([2, 4, 3])).shape, [2, 0, 3]);
    });
  });

  it("einsum contractions (the aggregator's linear attention)", () => {
    tidy(() => {
      const K = rand([6, 50, 4, 8]);
      const v = rand([6, 50, 4, 8]);
      close(
        einsum("nshd,nshv->nhdv", K, v),
        aten(() => einsum("nshd,nshv->nhdv", K, v)),
      );
      const img = rand([1, 32, 6, 6]);
      const txt = rand([1, 5, 1, 32]);
      close(
        einsum("bchw,btpc->bpthw", img, txt),
        aten(() => einsum("bchw,btpc->bpthw", img, txt)),
      );
    });
  });

  it("gradients of matmul with broadcasting equal ATen's", () => {
    tidy(() => {
      const a = rand([3, 1, 9, 6]).requiresGrad_();
      const b = rand([4, 6, 5]).requiresGrad_();
      const w = rand([3, 4, 9, 5]);
      const grads = (fn: () => Tensor[]) => fn();
      const ours = grads(() => autogradGrad([a.matmul(b).mul(w).sum()], [a, b]) as Tensor[]);
      const theirs = aten(() => autogradGrad([a.matmul(b).mul(w).sum()], [a, b]) as Tensor[]);
      close(ours[0]!, theirs[0]!);
      close(ours[1]!, theirs[1]!);
    });
  });

  it("second order through the routed kernels", () => {
    tidy(() => {
      const a = rand([5, 4]).requiresGrad_();
      const b = rand([4, 3]);
      const [ga] = autogradGrad([a.matmul(b).pow(2).sum()], [a], {
        createGraph: true,
        retainGraph: true,
      }) as Tensor[];
      const [gga] = autogradGrad([ga!.sum()], [a]) as Tensor[];
      const [ga2] = aten(
        () =>
          autogradGrad([a.matmul(b).pow(2).sum()], [a], { createGraph: true, retainGraph: true }) as Tensor[],
      );
      const [gga2] = aten(() => autogradGrad([ga2!.sum()], [a]) as Tensor[]);
      close(gga!, gga2!);
    });
  });

  it("other dtypes keep ATen's kernels", () => {
    tidy(() => {
      const a = rand([8, 8]).to("float64");
      const b = rand([8, 8]).to("float64");
      assert.equal(
        maxAbs(
          a.matmul(b),
          aten(() => a.matmul(b)),
        ),
        0,
      );
    });
  });
});
