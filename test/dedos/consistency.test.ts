// DEDOS texture-separation loss: both similarity variants against a plain-JS computation on a tiny case
// (B = 1, hw = 4, D = 3, N = 2), the torch cosine eps convention, the SmoothL1 β and weight, gradients
// (into the projections and Q, never into the CLIP features), finite differences, validation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ConsistencyConfig } from "../../src/dedos/config.js";
import { cosineMatrix, cosineRows, TextureSeparationLoss } from "../../src/dedos/consistency.js";
import { Generator, noGrad, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";

const D = 3; // CLIP width
const C = 2; // query width
const N = 2; // queries
const P = 2; // projDim
const H = 2;
const W = 2; // hw = 4

function cfg(over: Partial<ConsistencyConfig> = {}): ConsistencyConfig {
  return {
    enabled: true,
    similarity: "matrix",
    weight: 10,
    reduction: "sum",
    beta: 1,
    projDim: P,
    timestep: 50,
    layers: [3, 7],
    ...over,
  };
}
function t64(data: number[], shape: number[], requiresGrad = false): Tensor {
  return tensor(Float64Array.from(data), shape, { requiresGrad });
}
function setParam(p: Tensor, data: number[]): void {
  noGrad(() => p.copy_(tensor(Float64Array.from(data), p.shape).to(p.dtype)));
}

// ---- plain JS reference ----
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));
const cos = (a: number[], b: number[]) => dot(a, b) / (Math.max(norm(a), 1e-8) * Math.max(norm(b), 1e-8));
const linear = (Wt: number[], b: number[], x: number[]) =>
  b.map((bo, o) => x.reduce((s, v, k) => s + Wt[o * x.length + k]! * v, bo));
/** (1, D, h, w) row-major → hw tokens of D. */
function tokensOf(f: number[]): number[][] {
  const hw = H * W;
  return [...Array(hw).keys()].map((i) => [...Array(D).keys()].map((d) => f[d * hw + i]!));
}
function smoothL1(x: number, y: number, beta: number): number {
  const d = Math.abs(x - y);
  return d < beta ? (0.5 * d * d) / beta : d - 0.5 * beta;
}
interface Params {
  Wc: number[];
  bc: number[];
  Wq: number[];
  bq: number[];
}
function lossByHand(fas: number[][], fbs: number[][], q: number[], p: Params, c: ConsistencyConfig): number {
  const pq = [...Array(N).keys()].map((n) => linear(p.Wq, p.bq, q.slice(n * C, (n + 1) * C))); // N × P
  const coords = (f: number[]) =>
    tokensOf(f).map((tok) => {
      const pc = linear(p.Wc, p.bc, tok); // P
      return pq.map((qn) => dot(pc, qn)); // N
    });
  let total = 0;
  fas.forEach((fa, l) => {
    const fb = fbs[l]!;
    const ta = tokensOf(fa);
    const tb = tokensOf(fb);
    const ha = coords(fa);
    const hb = coords(fb);
    const terms: number[] = [];
    if (c.similarity === "matrix") {
      for (let i = 0; i < H * W; i++)
        for (let j = 0; j < H * W; j++)
          terms.push(smoothL1(cos(ha[i]!, hb[j]!), cos(ta[i]!, tb[j]!), c.beta));
    } else {
      for (let i = 0; i < H * W; i++) terms.push(smoothL1(cos(ha[i]!, hb[i]!), cos(ta[i]!, tb[i]!), c.beta));
    }
    total += terms.reduce((s, v) => s + v, 0) / terms.length;
  });
  // The released code sums the per-layer terms (default); `mean` averages them.
  return c.reduction === "sum" ? c.weight * total : (c.weight * total) / fas.length;
}

function setup(c: ConsistencyConfig, seed = 1) {
  const m = new TextureSeparationLoss(c, D, C, { generator: new Generator(seed) }).to("float64");
  const p: Params = {
    Wc: pseudoRandom(P * D, seed + 1),
    bc: pseudoRandom(P, seed + 2),
    Wq: pseudoRandom(P * C, seed + 3),
    bq: pseudoRandom(P, seed + 4),
  };
  setParam(m.proj_clip.weight, p.Wc);
  setParam(m.proj_clip.bias!, p.bc);
  setParam(m.proj_query.weight, p.Wq);
  setParam(m.proj_query.bias!, p.bq);
  return { m, p };
}

describe("TextureSeparationLoss", () => {
  test("state-dict keys and shapes", () => {
    const m = new TextureSeparationLoss(cfg({ projDim: 5 }), D, C);
    assert.deepEqual(
      [...m.stateDict()].map(([k, t]) => `${k}:${t.shape.join("x")}`),
      ["proj_clip.weight:5x3", "proj_clip.bias:5", "proj_query.weight:5x2", "proj_query.bias:5"],
    );
    m.dispose();
  });

  for (const similarity of ["matrix", "per-pixel"] as const)
    for (const [beta, reduction] of [
      [1, "sum"],
      [0.05, "sum"],
      [1, "mean"],
    ] as const) {
      test(`${similarity}, β = ${beta}, ${reduction} over layers: two layers against a plain-JS computation`, () => {
        tidy(() => {
          const c = cfg({ similarity, beta, weight: 7, reduction });
          const { m, p } = setup(c, similarity === "matrix" ? 1 : 11);
          const fas = [pseudoRandom(D * H * W, 21), pseudoRandom(D * H * W, 22)];
          const fbs = [pseudoRandom(D * H * W, 23), pseudoRandom(D * H * W, 24)];
          const q = pseudoRandom(N * C, 25);
          const loss = m.forward(
            fas.map((f) => t64(f, [1, D, H, W])),
            fbs.map((f) => t64(f, [1, D, H, W])),
            t64(q, [1, N, C]),
          );
          assert.deepEqual(loss.shape, []);
          const want = lossByHand(fas, fbs, q, p, c);
          assert.ok(want > 1e-3, "the case is not trivial");
          assertClose([loss.item()], [want], 1e-12, 1e-10, "loss");
          if (reduction === "mean") {
            // The switch differs from the default by exactly the layer count.
            const sum = lossByHand(fas, fbs, q, p, { ...c, reduction: "sum" });
            assertClose([sum], [2 * want], 1e-12, 1e-12, "sum = 2 × mean for two layers");
          }
          m.dispose();
        });
      });
    }

  test("batch: the mean runs over images too (B = 2 equals the average of the two B = 1 losses)", () => {
    tidy(() => {
      const { m } = setup(cfg(), 5);
      const fa = t64(pseudoRandom(2 * D * H * W, 61), [2, D, H, W]);
      const fb = t64(pseudoRandom(2 * D * H * W, 62), [2, D, H, W]);
      const Q = t64(pseudoRandom(2 * N * C, 63), [2, N, C]);
      const both = m.forward([fa], [fb], Q).item();
      const one = (i: number) =>
        m.forward([fa.narrow(0, i, 1)], [fb.narrow(0, i, 1)], Q.narrow(0, i, 1)).item();
      assertClose([both], [(one(0) + one(1)) / 2], 1e-12, 1e-10);
      m.dispose();
    });
  });

  test("cosines follow torch: max(‖x‖, 1e-8) per factor, so a zero token gives 0, not NaN", () => {
    tidy(() => {
      const a = t64([0, 0, 0, 3, 4, 0], [1, 2, 3]);
      const b = t64([1, 0, 0, 0, 1, 0], [1, 2, 3]);
      assertClose(cosineMatrix(a, b).toArray(), [0, 0, 0.6, 0.8], 1e-15);
      assertClose(cosineRows(a, b).toArray(), [0, 0.8], 1e-15);
      // Tiny but non-zero norms are clamped at 1e-8 each: (1e-9·1e-9) / (1e-8·1e-8) = 0.01.
      assertClose(cosineRows(t64([1e-9, 0], [1, 2]), t64([1e-9, 0], [1, 2])).toArray(), [0.01], 1e-12);
    });
  });

  test("gradients reach proj_clip, proj_query and Q, never fa or fb", () => {
    for (const similarity of ["matrix", "per-pixel"] as const) {
      tidy(() => {
        const { m } = setup(cfg({ similarity }), 3);
        const fa = [t64(pseudoRandom(D * H * W, 71), [1, D, H, W], true)];
        const fb = [t64(pseudoRandom(D * H * W, 72), [1, D, H, W], true)];
        const Q = t64(pseudoRandom(N * C, 73), [1, N, C], true);
        m.forward(fa, fb, Q).backward();
        const nonzero = (t: Tensor | null) => !!t && t.abs().sum().item() > 0;
        for (const [k, p] of m.namedParameters()) assert.ok(nonzero(p.grad), `${similarity}: ${k}`);
        assert.ok(nonzero(Q.grad), `${similarity}: Q`);
        assert.equal(fa[0]!.grad, null, `${similarity}: fa got a gradient`);
        assert.equal(fb[0]!.grad, null, `${similarity}: fb got a gradient`);
        m.dispose();
      });
    }
  });

  test("finite differences with respect to Q and the projections (float64)", () => {
    for (const similarity of ["matrix", "per-pixel"] as const) {
      const { m } = setup(cfg({ similarity, beta: 0.3 }), 7);
      const fa = pseudoRandom(2 * D * H * W, 81);
      const fb = pseudoRandom(2 * D * H * W, 82);
      const run = (Q: Tensor) => m.forward([t64(fa, [2, D, H, W])], [t64(fb, [2, D, H, W])], Q);
      gradcheck(([q]) => run(q!), [{ data: pseudoRandom(2 * N * C, 83), shape: [2, N, C] }], {
        name: `consistency ${similarity} d/dQ`,
        atol: 1e-7,
        rtol: 1e-5,
      });
      // The projections: autograd against central differences of each parameter element.
      const q = pseudoRandom(2 * N * C, 84);
      m.zeroGrad();
      tidy(() => run(t64(q, [2, N, C])).backward());
      for (const [k, p] of m.namedParameters()) {
        const analytic = p.grad!.toArray();
        const base = p.toArray();
        const numeric = base.map((_, i) => {
          const at = (delta: number) => {
            setParam(
              p,
              base.map((v, j) => (j === i ? v + delta : v)),
            );
            return noGrad(() => tidy(() => run(t64(q, [2, N, C])).item()));
          };
          const d = (at(1e-6) - at(-1e-6)) / 2e-6;
          setParam(p, base);
          return d;
        });
        assertClose(analytic, numeric, 1e-7, 1e-5, `consistency ${similarity} d/d${k}`);
      }
      m.dispose();
    }
  });

  test("validation names the wrong input", () => {
    tidy(() => {
      const m = new TextureSeparationLoss(cfg(), D, C);
      const f = tensor(new Float32Array(D * 4), [1, D, 2, 2]);
      const Q = tensor(new Float32Array(N * C), [1, N, C]);
      assert.throws(() => m.forward([], [], Q), /no layers to compare/);
      assert.throws(() => m.forward([f], [f, f], Q), /1 original-image layers \(fa\) but 2 denoised/);
      assert.throws(
        () => m.forward([f], [f], tensor(new Float32Array(N * 3), [1, N, 3])),
        /Q must be \(B, N, 2\)/,
      );
      assert.throws(
        () => m.forward([tensor(new Float32Array(4 * 4), [1, 4, 2, 2])], [f], Q),
        /fa\[0\] is \[1, 4, 2, 2\], expected \(1, 3, h, w\)/,
      );
      assert.throws(
        () => m.forward([f], [tensor(new Float32Array(D * 6), [1, D, 2, 3])], Q),
        /fb\[0\] is \[1, 3, 2, 3\] but fa\[0\] is \[1, 3, 2, 2\]/,
      );
      assert.throws(
        () => new TextureSeparationLoss(cfg({ similarity: "x" as "matrix" }), D, C),
        /unknown consistency.similarity "x"/,
      );
      m.dispose();
    });
  });
});
