// DEDOS proxy queries: kron, stage queries, the static merge recomputed by hand from the parameters, the
// interaction module against an op-by-op recomputation, input validation, seeding and gradients.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ProxyConfig } from "../../src/dedos/config.js";
import { kron2d, ProxyQueries, proxyKernelInitBound } from "../../src/dedos/proxy-queries.js";
import type { UNetTap } from "../../src/diffusion/unet.js";
import { cat, Generator, kron, noGrad, stack, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";

/** n1 = 2, c1 = 3, n2 = 2, c2 = 2 → N = 4, C = 6; two heads; taps of 3 and 5 channels. */
function tinyCfg(over: Partial<ProxyConfig> = {}): ProxyConfig {
  return {
    conditioning: "diffusion",
    basicQueries: 2,
    basicDim: 3,
    diffusionQueries: 2,
    diffusionDim: 2,
    heads: 2,
    mlpRatio: 2,
    tapChannels: [3, 5],
    normEps: 1e-6,
    ...over,
  };
}
const SIZES: [number, number][] = [
  [2, 2],
  [1, 3],
];

function f64(x: Tensor): number[] {
  return x.toArray();
}

/** Random taps for T timesteps (float64), tokens (B, h·w, C_i). */
function makeTaps(T: number, B: number, chans: number[], seed = 7, requiresGrad = false): UNetTap[][] {
  return Array.from({ length: T }, (_, t) =>
    chans.map((c, i) => {
      const [h, w] = SIZES[i]!;
      const data = pseudoRandom(B * h * w * c, seed + 10 * t + i);
      return {
        path: `tap${i}`,
        tokens: tensor(Float64Array.from(data), [B, h * w, c], { requiresGrad }),
        size: [h, w] as [number, number],
      };
    }),
  );
}

/** Overwrites every parameter with deterministic values (so LayerNorm affine and biases matter too). */
function randomize(m: ProxyQueries, seed = 3): void {
  noGrad(() => {
    let s = seed;
    for (const [, p] of m.namedParameters()) {
      const v = pseudoRandom(p.numel, s++).map((x) => x * 0.8);
      p.copy_(tensor(Float64Array.from(v), p.shape).to(p.dtype));
    }
  });
}

describe("kron", () => {
  test("kron2d matches a hand-computed torch.kron", () => {
    tidy(() => {
      const a = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]); // (2, 3)
      const b = tensor([[10], [-1]]); // (2, 1)
      const k = kron2d(a, b); // (4, 3)
      assert.deepEqual(k.shape, [4, 3]);
      assert.deepEqual(f64(k), [10, 20, 30, -1, -2, -3, 40, 50, 60, -4, -5, -6]);
      const c = tensor([[1, -2]]); // (1, 2)
      const d = tensor([
        [1, 2],
        [3, 4],
      ]);
      // [[1·D, −2·D]] = [[1, 2, −2, −4], [3, 4, −6, −8]]
      assert.deepEqual(f64(kron2d(c, d)), [1, 2, -2, -4, 3, 4, -6, -8]);
      assert.throws(() => kron2d(tensor([1, 2]), d), /two matrices/);
    });
  });

  test("stage queries: (T, n1·n2, c1·c2), q_t[i1·n2+i2, j1·c2+j2] = basic[i1,j1]·diffusion[t,i2,j2]", () => {
    tidy(() => {
      const cfg = tinyCfg();
      const m = new ProxyQueries(cfg, 3, { generator: new Generator(1) });
      const q = m.stageQueries();
      assert.deepEqual(q.shape, [3, 4, 6]);
      const b = f64(m.basicKernel);
      const d = f64(m.diffusionKernel);
      const got = f64(q);
      const want: number[] = [];
      for (let t = 0; t < 3; t++)
        for (let i1 = 0; i1 < 2; i1++)
          for (let i2 = 0; i2 < 2; i2++)
            for (let j1 = 0; j1 < 3; j1++)
              for (let j2 = 0; j2 < 2; j2++)
                want.push(Math.fround(b[i1 * 3 + j1]! * d[t * 4 + i2 * 2 + j2]!));
      assertClose(got, want, 0, 0, "stage queries");
      for (let t = 0; t < 3; t++)
        assert.ok(q.select(0, t).equal(kron(m.basicKernel, m.diffusionKernel.select(0, t))), `t=${t}`);
      m.dispose();
    });
  });
});

describe("ProxyQueries", () => {
  test("state-dict keys and shapes; the static model has no interaction module", () => {
    const m = new ProxyQueries(tinyCfg(), 3);
    const keys = [...m.stateDict()].map(([k, t]) => `${k}:${t.shape.join("x")}`);
    assert.deepEqual(keys, [
      "basic_kernel:2x3",
      "diffusion_kernel:3x2x2",
      "interaction.tap_proj.0.weight:6x3",
      "interaction.tap_proj.0.bias:6",
      "interaction.tap_proj.1.weight:6x5",
      "interaction.tap_proj.1.bias:6",
      "interaction.tap_norm.weight:6",
      "interaction.tap_norm.bias:6",
      "interaction.norm1.weight:6",
      "interaction.norm1.bias:6",
      "interaction.attn.q_proj.weight:6x6",
      "interaction.attn.q_proj.bias:6",
      "interaction.attn.k_proj.weight:6x6",
      "interaction.attn.k_proj.bias:6",
      "interaction.attn.v_proj.weight:6x6",
      "interaction.attn.v_proj.bias:6",
      "interaction.attn.out_proj.weight:6x6",
      "interaction.attn.out_proj.bias:6",
      "interaction.norm2.weight:6",
      "interaction.norm2.bias:6",
      "interaction.mlp.fc1.weight:12x6",
      "interaction.mlp.fc1.bias:12",
      "interaction.mlp.fc2.weight:6x12",
      "interaction.mlp.fc2.bias:6",
      "merge.weight:6x18",
      "merge.bias:6",
    ]);
    m.dispose();
    const s = new ProxyQueries(tinyCfg({ conditioning: "static", tapChannels: [] }), 3);
    assert.deepEqual(
      [...s.stateDict().keys()],
      ["basic_kernel", "diffusion_kernel", "merge.weight", "merge.bias"],
    );
    s.dispose();
  });

  test("kernels are U(−v, v) with the reference's bound and reproducible through the generator", () => {
    const cfg = tinyCfg({
      basicQueries: 10,
      basicDim: 16,
      diffusionQueries: 10,
      diffusionDim: 16,
      tapChannels: [4],
    });
    const a = new ProxyQueries(cfg, 3, { generator: new Generator(5) });
    const b = new ProxyQueries(cfg, 3, { generator: new Generator(5) });
    const v = proxyKernelInitBound(256);
    assertClose([v], [Math.sqrt(6 / (3 * 16 * 16 + 256))], 1e-15);
    for (const [k, t] of a.stateDict())
      assert.ok(t.equal(b.stateDict().get(k)!), `${k} differs across seeds`);
    for (const t of [a.basicKernel, a.diffusionKernel]) {
      const x = t.toArray();
      assert.ok(
        x.every((e) => Math.abs(e) <= v),
        "kernel outside [−v, v]",
      );
      // A uniform sample of 160 / 4800 numbers spans most of the interval.
      assert.ok(Math.max(...x) > 0.8 * v && Math.min(...x) < -0.8 * v, "kernel does not fill [−v, v]");
    }
    a.dispose();
    b.dispose();
  });

  for (const conditioning of ["static", "diffusion"] as const) {
    test(`${conditioning}${conditioning === "diffusion" ? " without taps" : ""}: Q = merge(max, mean, last) of the raw kernels, by hand`, () => {
      tidy(() => {
        const cfg = tinyCfg({ conditioning });
        const T = 3;
        const B = 2;
        const m = new ProxyQueries(cfg, T, { generator: new Generator(2) }).to("float64");
        randomize(m);
        const Q = m.forward(conditioning === "static" ? makeTaps(T, B, [3, 5]) : null, B);
        assert.deepEqual(Q.shape, [B, 4, 6]);
        const bk = f64(m.basicKernel);
        const dk = f64(m.diffusionKernel);
        const W = f64(m.merge.weight); // (6, 18)
        const bias = f64(m.merge.bias!);
        const want: number[] = [];
        for (let i1 = 0; i1 < 2; i1++)
          for (let i2 = 0; i2 < 2; i2++) {
            const feat: number[] = []; // 18 = [max(6), mean(6), last(6)]
            const per: number[][] = [];
            for (let j1 = 0; j1 < 3; j1++)
              for (let j2 = 0; j2 < 2; j2++) {
                per.push([0, 1, 2].map((t) => bk[i1 * 3 + j1]! * dk[t * 4 + i2 * 2 + j2]!));
              }
            for (const p of per) feat.push(Math.max(...p));
            for (const p of per) feat.push((p[0]! + p[1]! + p[2]!) / 3);
            for (const p of per) feat.push(p[2]!);
            for (let o = 0; o < 6; o++) {
              let s = bias[o]!;
              for (let k = 0; k < 18; k++) s += W[o * 18 + k]! * feat[k]!;
              want.push(s);
            }
          }
        const got = f64(Q);
        assertClose(got.slice(0, 24), want, 1e-12, 0, "batch 0");
        assertClose(got.slice(24), want, 1e-12, 0, "batch 1");
        m.dispose();
      });
    });
  }

  test("interaction and merge match an op-by-op recomputation", () => {
    tidy(() => {
      const cfg = tinyCfg();
      const T = 2;
      const B = 2;
      const m = new ProxyQueries(cfg, T, { generator: new Generator(4) }).to("float64");
      randomize(m, 11);
      const taps = makeTaps(T, B, cfg.tapChannels);
      const Q = m.forward(taps, B);

      const P = new Map(m.namedParameters());
      const p = (k: string) => P.get(k)!;
      const lin = (x: Tensor, k: string) => x.matmul(p(`${k}.weight`).mT).add(p(`${k}.bias`));
      const ln = (x: Tensor, k: string) => {
        const mu = x.mean(-1, true);
        const xc = x.sub(mu);
        const v = xc.square().mean(-1, true);
        return xc
          .div(v.add(cfg.normEps).sqrt())
          .mul(p(`${k}.weight`))
          .add(p(`${k}.bias`));
      };
      const gelu = (x: Tensor) => x.mul(x.div(Math.SQRT2).erf().add(1)).mul(0.5);
      const stages: Tensor[] = [];
      for (let t = 0; t < T; t++) {
        // q_t = kron(basic, diffusion[t]), one copy per image
        let q = stack([0, 1].map(() => kron(m.basicKernel, m.diffusionKernel.select(0, t))));
        const kv = ln(
          cat(
            taps[t]!.map((tap, i) => lin(tap.tokens, `interaction.tap_proj.${i}`)),
            1,
          ),
          "interaction.tap_norm",
        );
        const x = ln(q, "interaction.norm1");
        const qp = lin(x, "interaction.attn.q_proj");
        const kp = lin(kv, "interaction.attn.k_proj");
        const vp = lin(kv, "interaction.attn.v_proj");
        const heads: Tensor[] = [];
        for (let h = 0; h < 2; h++) {
          const qh = qp.narrow(-1, 3 * h, 3);
          const kh = kp.narrow(-1, 3 * h, 3);
          const vh = vp.narrow(-1, 3 * h, 3);
          const s = qh.matmul(kh.mT).div(Math.sqrt(3));
          const e = s.sub(s.amax(-1, true)).exp();
          heads.push(e.div(e.sum(-1, true)).matmul(vh));
        }
        q = q.add(lin(cat(heads, -1), "interaction.attn.out_proj"));
        const hdn = gelu(lin(ln(q, "interaction.norm2"), "interaction.mlp.fc1"));
        q = q.add(lin(hdn, "interaction.mlp.fc2"));
        stages.push(q);
      }
      const st = stack(stages);
      const merged = cat([st.amax(0), st.mean(0), stages[T - 1]!], -1);
      const want = lin(merged, "merge");
      assert.deepEqual(Q.shape, [B, 4, 6]);
      assertClose(f64(Q), f64(want), 1e-12, 1e-10, "Q");
      // The taps matter: the result differs from the static merge.
      assert.ok(Q.sub(m.forward(null, B)).abs().max().item() > 1e-3);
      m.dispose();
    });
  });

  test("each image's Q depends only on its own taps", () => {
    tidy(() => {
      const cfg = tinyCfg();
      const m = new ProxyQueries(cfg, 2, { generator: new Generator(9) }).to("float64");
      randomize(m, 21);
      const taps = makeTaps(2, 2, cfg.tapChannels, 31);
      const both = m.forward(taps, 2);
      const first = m.forward(
        taps.map((ts) => ts.map((tap) => ({ ...tap, tokens: tap.tokens.narrow(0, 0, 1) }))),
        1,
      );
      assertClose(f64(both.narrow(0, 0, 1)), f64(first), 1e-12, 0, "image 0");
      m.dispose();
    });
  });

  test("input validation names what is wrong", () => {
    tidy(() => {
      const cfg = tinyCfg();
      const m = new ProxyQueries(cfg, 2).to("float64");
      const taps = makeTaps(2, 2, cfg.tapChannels);
      assert.throws(() => m.forward(taps.slice(0, 1), 2), /taps for 1 timesteps.*2 diffusion kernels/);
      assert.throws(
        () => m.forward([taps[0]!, taps[1]!.slice(0, 1)], 2),
        /tapsPerTimestep\[1\] has 1 UNet taps.*lists 2/,
      );
      const wrongCh = makeTaps(2, 2, [3, 4]);
      assert.throws(
        () => m.forward(wrongCh, 2),
        /tapsPerTimestep\[0\]\[1\] \(tap1\).*proxy\.tapChannels\[1\]/,
      );
      assert.throws(() => m.forward(taps, 3), /expected \[3, 4, 3\]/);
      assert.throws(() => m.forward(taps, 0), /batch must be a positive integer/);
      assert.throws(() => new ProxyQueries(cfg, 0), /timesteps must be a positive integer/);
      assert.throws(() => new ProxyQueries(tinyCfg({ tapChannels: [] }), 2), /tapChannels is empty/);
      m.dispose();
    });
  });

  test("gradients: finite differences through the taps (float64), and every parameter is reached", () => {
    const cfg = tinyCfg({ tapChannels: [3] });
    const m = new ProxyQueries(cfg, 2, { generator: new Generator(13) }).to("float64");
    randomize(m, 41);
    const w = pseudoRandom(2 * 4 * 6, 99);
    gradcheck(
      ([t0, t1]) => {
        const taps: UNetTap[][] = [t0!, t1!].map((x) => [{ path: "t", tokens: x, size: [2, 2] }]);
        return m
          .forward(taps, 2)
          .mul(tensor(Float64Array.from(w), [2, 4, 6]))
          .sum();
      },
      [
        { data: pseudoRandom(2 * 4 * 3, 50), shape: [2, 4, 3] },
        { data: pseudoRandom(2 * 4 * 3, 51), shape: [2, 4, 3] },
      ],
      { name: "ProxyQueries", atol: 1e-7, rtol: 1e-5 },
    );
    // Every parameter gets a gradient from one backward pass.
    tidy(() => {
      m.zeroGrad();
      const taps = makeTaps(2, 2, [3]);
      m.forward(taps, 2)
        .mul(tensor(Float64Array.from(w), [2, 4, 6]))
        .sum()
        .backward();
      for (const [k, p] of m.namedParameters()) {
        const g = p.grad;
        assert.ok(g && g.abs().sum().item() > 0, `${k} has no gradient`);
      }
    });
    m.dispose();
  });
});
