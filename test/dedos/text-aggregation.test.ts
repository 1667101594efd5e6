// DEDOS text aggregation: the linear cross-attention layer against a hand re-computation, zero-initialised
// layers as the exact identity, and the order of the two compositions.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  LinearCrossAttention,
  TextMemoryAggregation,
  TextQueryAggregation,
} from "../../src/dedos/text-aggregation.js";
import { dispose, Generator, noGrad, randn, type Tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose } from "../helpers.js";

function values(t: Tensor): number[] {
  return Array.from(t.toTypedArray() as ArrayLike<number>);
}
/** Same float32 bit patterns. */
function bitwiseEqual(a: Tensor, b: Tensor): boolean {
  const x = new Uint32Array((a.contiguous().toTypedArray() as Float32Array).slice().buffer);
  const y = new Uint32Array((b.contiguous().toTypedArray() as Float32Array).slice().buffer);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** y = x·Wᵀ + b on a (L, in) row-major array. */
function linear(x: number[], L: number, W: number[], b: number[], inF: number, outF: number): number[] {
  const y: number[] = [];
  for (let l = 0; l < L; l++)
    for (let o = 0; o < outF; o++) {
      let s = b[o]!;
      for (let i = 0; i < inF; i++) s += x[l * inF + i]! * W[o * inF + i]!;
      y.push(s);
    }
  return y;
}
const phi = (v: number) => (v > 0 ? v + 1 : Math.exp(v)); // elu(v) + 1

/** The layer written out with plain numbers, for one batch element: x (L, dim), mem (S, memDim). */
function handLinearCrossAttention(
  layer: LinearCrossAttention,
  x: number[],
  L: number,
  mem: number[],
  S: number,
): number[] {
  const { dim, memoryDim, heads, innerDim } = layer;
  const p = (m: { weight: Tensor; bias: Tensor | null }) => [values(m.weight), values(m.bias!)] as const;
  const [wq, bq] = p(layer.q_proj);
  const [wk, bk] = p(layer.k_proj);
  const [wv, bv] = p(layer.v_proj);
  const [wo, bo] = p(layer.out_proj);
  const q = linear(x, L, wq, bq, dim, innerDim);
  const k = linear(mem, S, wk, bk, memoryDim, innerDim);
  const v = linear(mem, S, wv, bv, memoryDim, innerDim);
  const d = innerDim / heads;
  const att = new Array<number>(L * innerDim).fill(0);
  for (let h = 0; h < heads; h++) {
    for (let l = 0; l < L; l++) {
      // Σ_s φ(q)·φ(k_s) v_s / Σ_s φ(q)·φ(k_s)  (+ eps in the denominator)
      let den = 0;
      const num = new Array<number>(d).fill(0);
      for (let s = 0; s < S; s++) {
        let a = 0;
        for (let j = 0; j < d; j++)
          a += phi(q[l * innerDim + h * d + j]!) * phi(k[s * innerDim + h * d + j]!);
        den += a;
        for (let e = 0; e < d; e++) num[e]! += a * v[s * innerDim + h * d + e]!;
      }
      // the reference divides v by S and multiplies back, and adds eps = 1e-6 to the per-query normaliser
      for (let e = 0; e < d; e++) att[l * innerDim + h * d + e] = (num[e]! / S / (den + 1e-6)) * S;
    }
  }
  const out = linear(att, L, wo, bo, innerDim, dim);
  return out.map((o, i) => o + x[i]!);
}

describe("LinearCrossAttention", () => {
  test("matches a hand re-computation (two heads, x and memory of different widths, batch of 2)", () => {
    const g = new Generator(3);
    const layer = new LinearCrossAttention(4, 3, 2, { innerDim: 6 }, { generator: g });
    const [B, L, S] = [2, 2, 3];
    const x = randn([B, L, 4], { generator: g });
    const mem = randn([B, S, 3], { generator: g });
    const y = noGrad(() => layer.forward(x, mem));
    assert.deepEqual(y.shape, [B, L, 4]);
    const xv = values(x);
    const mv = values(mem);
    const expected: number[] = [];
    for (let b = 0; b < B; b++)
      expected.push(
        ...handLinearCrossAttention(
          layer,
          xv.slice(b * L * 4, (b + 1) * L * 4),
          L,
          mv.slice(b * S * 3, (b + 1) * S * 3),
          S,
        ),
      );
    assertClose(values(y), expected, 1e-5, 1e-5);
    dispose([x, mem, y]);
    layer.dispose();
  });

  test("zeroInit starts as the exact identity, and is not the identity once trained", () => {
    const g = new Generator(5);
    const layer = new LinearCrossAttention(8, 6, 2, { zeroInit: true }, { generator: g });
    assert.equal(
      values(layer.out_proj.weight).every((v) => v === 0),
      true,
    );
    assert.equal(
      values(layer.out_proj.bias!).every((v) => v === 0),
      true,
    );
    const x = randn([2, 5, 8], { generator: g });
    const mem = randn([2, 7, 6], { generator: g });
    const y = noGrad(() => layer.forward(x, mem));
    assert.ok(bitwiseEqual(y, x), "fresh zero-initialised layer must return x bit for bit");
    noGrad(() => layer.out_proj.weight.normal_(0, 0.1, g));
    const z = noGrad(() => layer.forward(x, mem));
    assert.ok(!z.equal(x));
    dispose([x, mem, y, z]);
    layer.dispose();
  });

  test("width not divisible by the heads is refused", () => {
    assert.throws(() => new LinearCrossAttention(6, 4, 4), /not divisible by 4 heads/);
  });
});

describe("TextQueryAggregation", () => {
  test("each round: text attends to the queries, then the queries to the updated text", () => {
    const g = new Generator(7);
    const agg = new TextQueryAggregation(8, { layers: 2, heads: 2 }, { generator: g });
    assert.deepEqual(
      [...agg.stateDict().keys()].filter((k) => k.endsWith("weight")),
      [0, 1].flatMap((i) =>
        ["text_to_query", "query_to_text"].flatMap((n) =>
          ["q_proj", "k_proj", "v_proj", "out_proj"].map((p) => `layers.${i}.${n}.${p}.weight`),
        ),
      ),
    );
    const text = randn([2, 3, 8], { generator: g });
    const queries = randn([2, 5, 8], { generator: g });
    noGrad(() =>
      tidy(() => {
        const r = agg.forward(text, queries);
        assert.deepEqual(r.text.shape, [2, 3, 8]);
        assert.deepEqual(r.queries.shape, [2, 5, 8]);
        let t = text;
        let q = queries;
        for (const l of agg.layers) {
          // plain residual updates written out with the sub-layers' attention terms
          t = t.add(l.text_to_query.attend(t, q));
          q = q.add(l.query_to_text.attend(q, t));
        }
        assertClose(values(r.text), values(t), 1e-6, 1e-6, "text");
        assertClose(values(r.queries), values(q), 1e-6, 1e-6, "queries");
        // the text and the queries both changed
        assert.ok(!r.text.equal(text) && !r.queries.equal(queries));
      }),
    );
    dispose([text, queries]);
    agg.dispose();
  });
});

describe("TextMemoryAggregation", () => {
  test("fresh: the exact identity on (B, T, P, E)", () => {
    const g = new Generator(11);
    const agg = new TextMemoryAggregation(8, 12, { layers: 2, heads: 4 }, { generator: g });
    const text = randn([2, 5, 3, 8], { generator: g });
    const memory = randn([2, 10, 12], { generator: g });
    const y = noGrad(() => agg.forward(text, memory));
    assert.deepEqual(y.shape, [2, 5, 3, 8]);
    assert.ok(bitwiseEqual(y, text));
    dispose([text, memory, y]);
    agg.dispose();
  });

  test("trained: each prompt embedding attends on its own through the layers in order", () => {
    const g = new Generator(13);
    const agg = new TextMemoryAggregation(8, 12, { layers: 2, heads: 4 }, { generator: g });
    noGrad(() => {
      for (const l of agg.layers) l.out_proj.weight.normal_(0, 0.2, g);
    });
    const text = randn([2, 5, 3, 8], { generator: g });
    const memory = randn([2, 10, 12], { generator: g });
    noGrad(() =>
      tidy(() => {
        const y = agg.forward(text, memory);
        // one (b, t, p) row alone through the two layers
        for (const [b, t, p] of [
          [0, 0, 0],
          [1, 4, 2],
          [1, 2, 1],
        ] as const) {
          let x = text.select(0, b).select(0, t).select(0, p).reshape(1, 1, 8);
          for (const l of agg.layers) x = l.forward(x, memory.narrow(0, b, 1));
          const got = y.select(0, b).select(0, t).select(0, p);
          assertClose(values(got), values(x.flatten()), 1e-5, 1e-5, `row ${b},${t},${p}`);
        }
        assert.ok(!y.equal(text));
      }),
    );
    dispose([text, memory]);
    agg.dispose();
  });
});
