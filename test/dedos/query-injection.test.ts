// DEDOS query injection: the zero-initialised fuse returns f bit for bit (also through a real CLIP forward),
// concat-project and gated-residual against hand computations, memory = Σ T_l, T_l = token_proj(MLP(Q)),
// lifetime of the query tokens, gradients.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ClipVisionEncoder } from "../../src/clip/vision.js";
import type { InjectionConfig } from "../../src/dedos/config.js";
import { QueryInjection } from "../../src/dedos/query-injection.js";
import { Generator, noGrad, randn, type Tensor, tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose, gradcheck, pseudoRandom } from "../helpers.js";
import { TINY_CLIP } from "../tiny-models.js";

const CP: InjectionConfig = { rule: "concat-project", mlpHidden: 5, gateInit: 1e-3 };
const GR: InjectionConfig = { rule: "gated-residual", mlpHidden: 5, gateInit: 1e-3 };
// C = 4 query width, D = 3 CLIP width, 2 CLIP blocks; N = 2 queries, L = 3 tokens, B = 2.
const C = 4;
const D = 3;
const LAYERS = 2;
const N = 2;
const L = 3;
const B = 2;

function t64(data: number[], shape: number[], requiresGrad = false): Tensor {
  return tensor(Float64Array.from(data), shape, { requiresGrad });
}
function setParam(p: Tensor, data: number[]): void {
  noGrad(() => p.copy_(tensor(Float64Array.from(data), p.shape).to(p.dtype)));
}

/**
 * The injection by hand for x (L, B, D) and T (B, N, D), plain JS: per token and image, softmax over the
 * queries of f·T/√D, a = Σ_n s_n·T_n, then `update(f, a)`.
 */
function byHand(x: number[], T: number[], update: (f: number[], a: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let l = 0; l < L; l++)
    for (let b = 0; b < B; b++) {
      const f = x.slice((l * B + b) * D, (l * B + b + 1) * D);
      const rows = [...Array(N).keys()].map((n) => T.slice((b * N + n) * D, (b * N + n + 1) * D));
      const sc = rows.map((t) => t.reduce((s, v, k) => s + v * f[k]!, 0) / Math.sqrt(D));
      const mx = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - mx));
      const z = e.reduce((s, v) => s + v, 0);
      const a = [...Array(D).keys()].map((k) => rows.reduce((s, t, n) => s + (e[n]! / z) * t[k]!, 0));
      out.push(...update(f, a));
    }
  return out;
}

/** erf in plain JS: Maclaurin series below 3, the erfc continued fraction above (≈1e-15). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = ax;
    let term = ax;
    for (let n = 1; n < 80; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc at large |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}
const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
/** W (out, in) row-major, b (out) applied to x (in). */
function linear(W: number[], b: number[], x: number[]): number[] {
  const inn = x.length;
  return b.map((bo, o) => x.reduce((s, v, k) => s + W[o * inn + k]! * v, bo));
}

describe("QueryInjection", () => {
  test("state-dict keys; concat-project fuse starts at zero, the gate at gateInit", () => {
    const cp = new QueryInjection(CP, C, D, LAYERS);
    assert.deepEqual(
      [...cp.stateDict()].map(([k, t]) => `${k}:${t.shape.join("x")}`),
      [
        "mlp.fc1.weight:5x4",
        "mlp.fc1.bias:5",
        "mlp.fc2.weight:4x5",
        "mlp.fc2.bias:4",
        "token_proj.0.weight:3x4",
        "token_proj.0.bias:3",
        "token_proj.1.weight:3x4",
        "token_proj.1.bias:3",
        "fuse.0.weight:3x6",
        "fuse.0.bias:3",
        "fuse.1.weight:3x6",
        "fuse.1.bias:3",
      ],
    );
    for (const l of [0, 1]) {
      assert.ok(
        cp.fuse
          .at(l)
          .parameters()
          .every((p) => p.toArray().every((v) => v === 0)),
      );
      assert.ok(
        cp.fuse
          .at(l)
          .parameters()
          .every((p) => p.requiresGrad),
      );
    }
    cp.dispose();
    const gr = new QueryInjection(GR, C, D, LAYERS);
    const keys = [...gr.stateDict()].map(([k, t]) => `${k}:${t.shape.join("x")}`);
    assert.deepEqual(keys.slice(8), [
      "fuse.0.scale:",
      "fuse.0.mlp.fc1.weight:3x3",
      "fuse.0.mlp.fc1.bias:3",
      "fuse.0.mlp.fc2.weight:3x3",
      "fuse.0.mlp.fc2.bias:3",
      "fuse.1.scale:",
      "fuse.1.mlp.fc1.weight:3x3",
      "fuse.1.mlp.fc1.bias:3",
      "fuse.1.mlp.fc2.weight:3x3",
      "fuse.1.mlp.fc2.bias:3",
    ]);
    assertClose([gr.stateDict().get("fuse.1.scale")!.item()], [1e-3], 1e-10);
    gr.dispose();
  });

  test("T_l = token_proj_l(fc2(GELU(fc1(Q)))) and memory = Σ_l T_l, by hand", () => {
    tidy(() => {
      const m = new QueryInjection(CP, C, D, LAYERS, { generator: new Generator(1) }).to("float64");
      const q = pseudoRandom(B * N * C, 3);
      const prep = m.prepare(t64(q, [B, N, C]));
      assert.equal(prep.tokens.length, LAYERS);
      const sd = m.stateDict();
      const v = (k: string) => sd.get(k)!.toArray();
      const want: number[][] = [[], []];
      for (let r = 0; r < B * N; r++) {
        const qr = q.slice(r * C, (r + 1) * C);
        const h = linear(v("mlp.fc1.weight"), v("mlp.fc1.bias"), qr).map(gelu);
        const qh = linear(v("mlp.fc2.weight"), v("mlp.fc2.bias"), h);
        for (const l of [0, 1])
          want[l]!.push(...linear(v(`token_proj.${l}.weight`), v(`token_proj.${l}.bias`), qh));
      }
      for (const l of [0, 1]) {
        assert.deepEqual(prep.tokens[l]!.shape, [B, N, D]);
        assertClose(prep.tokens[l]!.toArray(), want[l]!, 1e-12, 1e-12, `T_${l}`);
      }
      assert.deepEqual(prep.memory.shape, [B, N, D]);
      assertClose(
        prep.memory.toArray(),
        want[0]!.map((a, i) => a + want[1]![i]!),
        1e-12,
        1e-12,
        "memory",
      );
      m.dispose();
    });
  });

  test("zero-initialised concat-project: the hook returns f bit for bit", () => {
    tidy(() => {
      const m = new QueryInjection(CP, C, D, LAYERS, { generator: new Generator(2) });
      const { hook } = m.prepare(randn([B, N, C], { generator: new Generator(3) }));
      for (const l of [0, 1]) {
        const x = randn([L, B, D], { generator: new Generator(10 + l) }).mul(50);
        const y = hook(l, x);
        assert.deepEqual(y.shape, x.shape);
        assert.deepEqual(
          Array.from(y.toTypedArray() as Float32Array),
          Array.from(x.toTypedArray() as Float32Array),
        );
      }
      m.dispose();
    });
  });

  test("zero-initialised concat-project inside a real CLIP forward: the output is CLIP's bit for bit", () => {
    tidy(() => {
      const clip = new ClipVisionEncoder(TINY_CLIP.vision, { generator: new Generator(4) });
      const W = TINY_CLIP.vision.width;
      const m = new QueryInjection(CP, C, W, TINY_CLIP.vision.layers, { generator: new Generator(5) });
      const pixels = randn([2, 3, 32, 32], { generator: new Generator(6) });
      const Q = randn([2, N, C], { generator: new Generator(7) });
      const plain = clip.forward(pixels, { dense: true, taps: [0, 1] });
      const prep = m.prepare(Q);
      const calls: number[] = [];
      const hooked = clip.forward(pixels, {
        dense: true,
        taps: [0, 1],
        blockHook: (l, x) => {
          calls.push(l);
          return prep.hook(l, x);
        },
      });
      assert.deepEqual(calls, [0, 1, 2]);
      assert.ok(hooked.tokens.equal(plain.tokens));
      assert.ok(hooked.taps[1]!.equal(plain.taps[1]!));
      // With a non-zero fuse the hooked forward differs, and the query tokens survive the CLIP's scopes.
      setParam(m.fuse.at(1).parameters()[0]!, pseudoRandom(W * 2 * W, 8));
      const changed = clip.forward(pixels, { dense: true, blockHook: prep.hook });
      assert.ok(changed.tokens.sub(plain.tokens).abs().max().item() > 1e-4);
      assert.ok(prep.tokens.every((t) => !t.isDisposed));
      clip.dispose();
      m.dispose();
    });
  });

  test("query tokens belong to the caller's scope; dispose() frees them outside a scope", () => {
    const m = new QueryInjection(CP, C, D, LAYERS);
    const Q = randn([1, N, C]);
    const inner = tidy(() => {
      const p = m.prepare(Q);
      return { tokens: [...p.tokens], memory: p.memory };
    });
    assert.ok(inner.tokens.every((t) => !t.isDisposed) && !inner.memory.isDisposed);
    let leaked: Tensor[] = [];
    tidy(() => {
      leaked = m.prepare(Q).tokens;
    });
    assert.ok(
      leaked.every((t) => t.isDisposed),
      "a scope frees the tokens it did not return",
    );
    const p = m.prepare(Q);
    p.dispose();
    assert.ok(p.tokens.every((t) => t.isDisposed) && p.memory.isDisposed);
    assert.throws(() => p.hook(0, randn([L, 1, D])), /freed before the CLIP forward/);
    Q.dispose();
    m.dispose();
  });

  test("concat-project with known fuse weights: f + W·[f ; S·T] + b, by hand", () => {
    tidy(() => {
      const m = new QueryInjection(CP, C, D, LAYERS, { generator: new Generator(3) }).to("float64");
      const W = pseudoRandom(D * 2 * D, 21);
      const bias = pseudoRandom(D, 22);
      setParam(m.fuse.at(1).parameters()[0]!, W);
      setParam(m.fuse.at(1).parameters()[1]!, bias);
      const prep = m.prepare(t64(pseudoRandom(B * N * C, 23), [B, N, C]));
      const x = pseudoRandom(L * B * D, 24).map((v) => 2 * v);
      const y = prep.hook(1, t64(x, [L, B, D]));
      const T = prep.tokens[1]!.toArray();
      const want = byHand(x, T, (f, a) => linear(W, bias, [...f, ...a]).map((v, k) => f[k]! + v));
      assertClose(y.toArray(), want, 1e-12, 1e-12, "concat-project");
      // Layer 0 still has the zero fuse.
      assert.deepEqual(prep.hook(0, t64(x, [L, B, D])).toArray(), x);
      m.dispose();
    });
  });

  test("gated-residual: f + s·fc2(GELU(fc1(S·T + f))), by hand", () => {
    tidy(() => {
      const m = new QueryInjection(GR, C, D, LAYERS, { generator: new Generator(4) }).to("float64");
      const sd = m.stateDict();
      setParam(sd.get("fuse.0.scale")!, [0.7]);
      const v = (k: string) => sd.get(k)!.toArray();
      const prep = m.prepare(t64(pseudoRandom(B * N * C, 31), [B, N, C]));
      const x = pseudoRandom(L * B * D, 32);
      const y = prep.hook(0, t64(x, [L, B, D]));
      const T = prep.tokens[0]!.toArray();
      const want = byHand(x, T, (f, a) => {
        const h = linear(
          v("fuse.0.mlp.fc1.weight"),
          v("fuse.0.mlp.fc1.bias"),
          a.map((ai, k) => ai + f[k]!),
        );
        const o = linear(v("fuse.0.mlp.fc2.weight"), v("fuse.0.mlp.fc2.bias"), h.map(gelu));
        return f.map((fk, k) => fk + 0.7 * o[k]!);
      });
      assertClose(y.toArray(), want, 1e-12, 1e-12, "gated-residual");
      m.dispose();
    });
  });

  test("gradients reach Q, the MLP, token_proj and fuse; the hook is differentiable (finite differences)", () => {
    tidy(() => {
      const m = new QueryInjection(CP, C, D, LAYERS, { generator: new Generator(6) }).to("float64");
      const Q = t64(pseudoRandom(B * N * C, 41), [B, N, C], true);
      const x = t64(pseudoRandom(L * B * D, 42), [L, B, D], true);
      const prep = m.prepare(Q);
      const y0 = prep.hook(0, x);
      const y1 = prep.hook(1, y0);
      y1.mul(t64(pseudoRandom(L * B * D, 43), [L, B, D]))
        .sum()
        .add(prep.memory.mul(t64(pseudoRandom(B * N * D, 44), [B, N, D])).sum())
        .backward();
      const nonzero = (t: Tensor | null) => !!t && t.abs().sum().item() > 0;
      assert.ok(nonzero(Q.grad), "Q");
      assert.ok(nonzero(x.grad), "CLIP features");
      for (const [k, p] of m.namedParameters()) assert.ok(nonzero(p.grad), `${k} has no gradient`);
      m.dispose();
    });
    // Finite differences through the hook with a non-zero fuse, with respect to Q and x.
    for (const cfg of [CP, GR]) {
      const m = new QueryInjection(cfg, C, D, LAYERS, { generator: new Generator(7) }).to("float64");
      if (cfg.rule === "concat-project") setParam(m.fuse.at(0).parameters()[0]!, pseudoRandom(D * 2 * D, 51));
      else setParam(m.stateDict().get("fuse.0.scale")!, [0.9]);
      const w = pseudoRandom(L * B * D, 52);
      gradcheck(
        ([q, x]) => {
          const prep = m.prepare(q!);
          return prep
            .hook(0, x!)
            .mul(t64(w, [L, B, D]))
            .sum()
            .add(prep.memory.sum());
        },
        [
          { data: pseudoRandom(B * N * C, 53), shape: [B, N, C] },
          { data: pseudoRandom(L * B * D, 54), shape: [L, B, D] },
        ],
        { name: `QueryInjection ${cfg.rule}`, atol: 1e-7, rtol: 1e-5 },
      );
      m.dispose();
    }
  });

  test("validation names the wrong input", () => {
    tidy(() => {
      const m = new QueryInjection(CP, C, D, LAYERS);
      assert.throws(() => m.prepare(randn([B, N, C + 1])), /Q must be \(B, N, 4\).*\[2, 2, 5\]/);
      const { hook } = m.prepare(randn([B, N, C]));
      assert.throws(() => hook(2, randn([L, B, D])), /block 2 is outside 0…1/);
      assert.throws(
        () => hook(0, randn([L, B + 1, D])),
        /block 0 output is \[3, 3, 3\], expected \(L, 2, 3\)/,
      );
      assert.throws(() => hook(0, randn([L, B, D + 1])), /expected \(L, 2, 3\)/);
      assert.throws(
        () => new QueryInjection({ ...CP, rule: "other" as "concat-project" }, C, D, LAYERS),
        /unknown injection.rule "other"/,
      );
      assert.throws(() => new QueryInjection(CP, C, D, 0), /clipLayers must be a positive integer/);
      m.dispose();
    });
  });
});
