// F.linearInference / F.conv2dInference / F.attentionInference (oneDNN sgemm paths for gradient-free forwards)
// and F.linear (sgemm forward and backward) against the plain ATen ops (DEDOS_DNNL_GEMM off), including the
// layouts the diffusion models hand them, and their fallbacks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  autogradGrad,
  F,
  Generator,
  getNumThreads,
  noGrad,
  randn,
  setNumThreads,
  type Tensor,
  tidy,
} from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";
import { withAtenKernels as aten } from "../helpers.js";

const g = new Generator(7);
const rand = (shape: number[]) => randn(shape, { generator: g });
const linearAten = (x: Tensor, w: Tensor, b?: Tensor | null) => aten(() => F.linear(x, w, b));
/** max |a − b| / max |b| */
const relErr = (a: Tensor, b: Tensor) =>
  tidy(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-30));

describe("inference paths (oneDNN sgemm) match ATen", () => {
  it("reports whether the fast paths are available", () => {
    assert.equal(typeof native.inferenceGemmAvailable(), "boolean");
  });

  it("linearInference: shapes, biases, one row, token views of NCHW maps, weight row slices", () =>
    noGrad(() =>
      tidy(() => {
        for (const [m, k, n] of [
          [63, 32, 48],
          [1, 32, 64],
          [3, 1, 5],
          [144, 1280, 320],
          [300, 64, 48], // past the few-rows (yᵀ = W·xᵀ) path
        ] as const) {
          for (const withBias of [false, true]) {
            const x = rand([1, m, k]);
            const w = rand([n, k]);
            const b = withBias ? rand([n]) : null;
            const bBefore = b?.clone() ?? null;
            const y = F.linearInference(x, w, b);
            assert.deepEqual(y.shape, [1, m, n]);
            assert.ok(relErr(y, linearAten(x, w, b)) < 1e-5, `linear ${m}x${k}->${n}`);
            // The bias is read, never written (a one-row output once aliased it).
            if (b && bBefore) assert.equal(b.sub(bBefore).abs().max().item(), 0);
          }
        }
        // (B, h·w, C) tokens as a view of a (B, C, h, w) map, a 1-d input, and a slice of the weight's rows.
        const w = rand([40, 24]);
        const b = rand([40]);
        for (const [h, wd] of [
          [20, 20],
          [5, 7],
        ]) {
          const view = rand([1, 24, h!, wd!])
            .permute(0, 2, 3, 1)
            .reshape(1, h! * wd!, 24);
          assert.ok(
            relErr(F.linearInference(view, w, b), linearAten(view, w, b)) < 1e-5,
            `tokens of ${h}×${wd}`,
          );
          assert.ok(
            relErr(F.linearInference(view, w), linearAten(view, w)) < 1e-5,
            `tokens of ${h}×${wd}, no bias`,
          );
        }
        const tokens = rand([1, 24, 5, 7]).permute(0, 2, 3, 1).reshape(1, 35, 24);
        const v = rand([24]);
        assert.deepEqual(F.linearInference(v, w, b).shape, [40]);
        assert.ok(relErr(F.linearInference(v, w, b), linearAten(v, w, b)) < 1e-5);
        const rows = w.narrow(0, 10, 20);
        assert.ok(
          relErr(
            F.linearInference(tokens, rows, b.narrow(0, 10, 20)),
            linearAten(tokens, rows, b.narrow(0, 10, 20)),
          ) < 1e-5,
        );
      }),
    ));

  it("conv2dInference: pointwise, small maps (im2col), stride 2, batches, no bias, large maps", () =>
    noGrad(() =>
      tidy(() => {
        for (const [batch, cin, cout, h, w, k, stride, pad, withBias] of [
          [1, 32, 32, 7, 9, 3, 1, 1, true],
          [1, 32, 16, 7, 9, 3, 2, 1, false],
          [2, 16, 24, 6, 6, 3, 1, 1, true],
          [2, 48, 24, 7, 9, 1, 1, 0, true],
          [1, 64, 32, 12, 12, 1, 1, 0, false],
          [1, 4, 8, 20, 20, 3, 1, 1, true], // 400 pixels: ATen
          [1, 8, 8, 5, 5, 3, 1, 0, true],
        ] as const) {
          const x = rand([batch, cin, h, w]);
          const wt = rand([cout, cin, k, k]);
          const b = withBias ? rand([cout]) : null;
          const o = { stride, padding: pad };
          const y = F.conv2dInference(x, wt, b, o);
          const ref = F.conv2d(x, wt, b, o);
          assert.deepEqual(y.shape, ref.shape);
          assert.ok(relErr(y, ref) < 1e-5, `conv ${cin}->${cout} ${h}x${w} k${k} s${stride}`);
        }
        // Groups and dilation go to ATen unchanged.
        const x = rand([1, 8, 6, 6]);
        const wg = rand([8, 4, 3, 3]);
        assert.ok(
          relErr(
            F.conv2dInference(x, wg, null, { groups: 2, padding: 1 }),
            F.conv2d(x, wg, null, { groups: 2, padding: 1 }),
          ) < 1e-6,
        );
      }),
    ));

  it("attentionInference: head views, cross-attention, batches; (B, L, H·d) reshape is a view", () =>
    noGrad(() =>
      tidy(() => {
        // scale: 0.3 for moderate logits; 4 for rows dominated by one score, others underflowing exp to 0.
        for (const [batch, heads, lq, lk, d, scale] of [
          [1, 2, 63, 3, 16, 0.3],
          [1, 5, 300, 300, 8, 0.3],
          [2, 3, 17, 5, 8, 0.3],
          [1, 1, 1, 4, 8, 0.3],
          [1, 2, 40, 1027, 16, 4], // long rows with a tail past the 8-wide vectors
        ] as const) {
          const view = (n: number) =>
            rand([batch, n, heads * d])
              .view(batch, n, heads, d)
              .transpose(1, 2);
          const [q, k, v] = [view(lq), view(lk), view(lk)];
          const o = F.attentionInference(q, k, v, { scale });
          assert.deepEqual(o.shape, [batch, heads, lq, d]);
          assert.ok(relErr(o, F.attention(q, k, v, { scale })) < 1e-5, `attention ${heads}x${lq}x${lk}`);
          if (native.inferenceGemmAvailable()) assert.ok(o.transpose(1, 2).isContiguous());
        }
      }),
    ));

  it("leaves the thread count as it was", () => {
    const before = getNumThreads();
    setNumThreads(2);
    noGrad(() =>
      tidy(() => {
        const q = rand([1, 1, 4, 8]); // one task: the parallel loop runs inline on the caller
        F.attentionInference(q, q, q);
      }),
    );
    assert.equal(getNumThreads(), 2);
    setNumThreads(before);
  });

  it("F.linear with gradients: output and the gradients of x, W and b match ATen's", () =>
    tidy(() => {
      const leaf = (t: Tensor) => t.detach().requiresGrad_(true);
      // [x shape, features out, bias, which of x / W / b need a gradient, x as a token view of an NCHW map]
      for (const [xShape, n, withBias, needs, tokensOfMap] of [
        [[2, 5, 24], 40, true, [true, true, true], false],
        [[300, 24], 16, true, [true, true, true], false], // past the few-rows path
        [[1, 35, 24], 40, false, [true, true, false], true],
        [[7, 24], 12, true, [false, true, true], false], // input without a gradient (the first linear)
        [[3, 7, 24], 12, true, [true, false, false], false], // frozen layer inside a trained network
        [[24], 8, true, [true, true, true], false],
      ] as const) {
        const k = 24;
        const xData = tokensOfMap
          ? rand([1, k, 5, 7]).permute(0, 2, 3, 1).reshape(1, 35, k)
          : rand([...xShape]);
        const wData = rand([n, k]);
        const bData = withBias ? rand([n]) : null;
        const up = rand([...xShape.slice(0, -1), n]); // upstream gradient
        const run = (linear: typeof F.linear) => {
          const x = needs[0] ? leaf(xData) : xData;
          const w = needs[1] ? leaf(wData) : wData;
          const b = bData && needs[2] ? leaf(bData) : bData;
          const y = linear(x, w, b);
          y.mul(up).sum().backward();
          return { y, grads: [x, w, b].map((t) => (t?.requiresGrad ? t.grad : null)) };
        };
        const ours = run(F.linear);
        const ref = run(linearAten);
        const what = `x [${xShape.join(", ")}] → ${n}`;
        assert.equal(ours.y.requiresGrad, true, what);
        assert.ok(relErr(ours.y, ref.y) < 1e-5, `${what}: y`);
        ["x", "W", "b"].forEach((name, i) => {
          const [a, r] = [ours.grads[i], ref.grads[i]];
          assert.equal(a === null, r === null, `${what}: d${name} presence`);
          if (a && r) assert.ok(relErr(a, r) < 1e-5, `${what}: d${name}`);
        });
      }
      // Second order (a gradient penalty): d/dW of |dL/dx|² through the backward.
      const x0 = rand([6, 24]);
      const w0 = rand([10, 24]);
      const up = rand([6, 10]);
      const penaltyGrad = (linear: typeof F.linear) => {
        const x = leaf(x0);
        const w = leaf(w0);
        const [dx] = autogradGrad([linear(x, w, null).mul(up).sum()], [x], { createGraph: true });
        dx!.pow(2).sum().backward();
        return w.grad!;
      };
      assert.ok(relErr(penaltyGrad(F.linear), penaltyGrad(linearAten)) < 1e-5, "second order");
    }));

  it("falls back to ATen (with autograd) when a gradient is needed", () => {
    const x = rand([4, 8]).requiresGrad_(true);
    const w = rand([3, 8]);
    const y = F.linearInference(x, w, null);
    assert.equal(y.requiresGrad, true);
    const xc = rand([1, 2, 5, 5]).requiresGrad_(true);
    assert.equal(F.conv2dInference(xc, rand([3, 2, 3, 3]), null, { padding: 1 }).requiresGrad, true);
    const q = rand([1, 2, 6, 4]).requiresGrad_(true);
    const o = F.attentionInference(q, q, q);
    assert.equal(o.requiresGrad, true);
    o.sum().backward();
    assert.ok(q.grad);
  });

  it("attentionInference with an additive mask: causal (L, L) and per head (B·H, L, L), as F.attention", () =>
    noGrad(() =>
      tidy(() => {
        const [B, H, L, d] = [2, 3, 40, 16];
        const q = rand([B, H, L, d]);
        const k = rand([B, H, L, d]);
        const v = rand([B, H, L, d]);
        const causal = tidy(() => {
          const m = rand([L, L]).mul(0);
          for (let i = 0; i < L; i++)
            m.narrow(0, i, 1)
              .narrow(1, i + 1, L - i - 1)
              .fill_(-1e9);
          return m;
        });
        const perHead = rand([B * H, L, L]).reshape(B, H, L, L);
        for (const mask of [causal, perHead]) {
          const h = native.attentionInference(q.handle, k.handle, v.handle, d ** -0.5, mask.handle);
          assert.notEqual(h, null, "the fast kernel took the mask");
          if (h !== null) native.free(h);
          const fast = F.attentionInference(q, k, v, { mask });
          const ref = aten(() => F.attention(q, k, v, { mask }));
          assert.ok(relErr(fast, ref) <= 1e-5, `${relErr(fast, ref)}`);
        }
        // A mask that does not broadcast to (B, H, L, S) is F.attention's to reject.
        assert.throws(() => F.attentionInference(q, k, v, { mask: rand([L + 1, L]) }));
      }),
    ));

  it("conv2dInference with a residual: pointwise, im2col and ATen paths equal conv + residual", () =>
    noGrad(() =>
      tidy(() => {
        for (const [cin, cout, k, hw] of [
          [32, 16, 1, 20], // pointwise
          [16, 24, 3, 12], // im2col (≤ 256 output pixels)
          [8, 8, 3, 24], // ATen (576 pixels), residual added in place
        ] as const) {
          const x = rand([2, cin, hw, hw]);
          const w = rand([cout, cin, k, k]);
          const b = rand([cout]);
          const o = { padding: (k - 1) / 2 };
          const r = rand([2, cout, hw, hw]);
          const ref = aten(() => F.conv2d(x, w, b, o).add(r));
          assert.ok(relErr(F.conv2dInference(x, w, b, o, r), ref) <= 1e-5, `${cin}→${cout} k${k} ${hw}²`);
          assert.ok(
            relErr(
              F.conv2dInference(x, w, null, o, r),
              aten(() => F.conv2d(x, w, null, o).add(r)),
            ) <= 1e-5,
          );
        }
      }),
    ));

  it("groupNorm with SiLU / GELU: in place at inference, the same values and gradients as norm then act", () => {
    tidy(() => {
      const x = rand([2, 8, 5, 5]);
      const w = rand([8]);
      const b = rand([8]);
      for (const act of ["silu", "gelu"] as const) {
        const ref = tidy(() => {
          const y = F.groupNorm(x, 4, w, b, 1e-5);
          return act === "silu" ? F.silu(y) : F.gelu(y);
        });
        const fast = noGrad(() => F.groupNorm(x, 4, w, b, 1e-5, act));
        assert.equal(fast.sub(ref).abs().max().item(), 0);
        const xg = x.detach().requiresGrad_();
        const [g1] = autogradGrad([F.groupNorm(xg, 4, w, b, 1e-5, act).sum()], [xg]) as Tensor[];
        const [g2] = autogradGrad(
          [(act === "silu" ? F.silu : (t: Tensor) => F.gelu(t))(F.groupNorm(xg, 4, w, b, 1e-5)).sum()],
          [xg],
        ) as Tensor[];
        assert.equal(g1!.sub(g2!).abs().max().item(), 0);
      }
    });
  });
});
