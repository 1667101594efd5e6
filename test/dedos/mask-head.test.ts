// DEDOS mask-decoder head: sine position encoding, the pixel decoder (shapes, hand-computed levels), masked
// attention, the decoder's wiring (prediction 0 → mask → layer 0 → prediction 1), semantic inference, and the
// whole tiny head (shapes, finite, gradients reaching every parameter, determinism, no leaks).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MaskHeadConfig, TextAggregationConfig } from "../../src/dedos/config.js";
import { MaskDecoderHead, semanticInference } from "../../src/dedos/mask-head.js";
import { PixelDecoder } from "../../src/dedos/pixel-decoder.js";
import {
  MaskTransformerDecoder,
  MultiheadCrossAttention,
  maskedAttentionMask,
  sinePositionEncoding,
  sinePositionValues,
} from "../../src/dedos/transformer-decoder.js";
import * as F from "../../src/torch/functional.js";
import {
  dispose,
  Generator,
  liveTensorBytes,
  noGrad,
  randn,
  type Tensor,
  tensor,
  tidy,
} from "../../src/torch/tensor.js";
import { assertClose } from "../helpers.js";

const HEAD: MaskHeadConfig = {
  hiddenDim: 16,
  maskDim: 16,
  decoderLayers: 3,
  heads: 4,
  ffnDim: 32,
  memoryLevels: 3,
  normGroups: 4,
  fuse: "mean",
};
const TEXT_AGG: TextAggregationConfig = { layers: 2, heads: 4 };
const [D, E, N, G, B, T] = [16, 8, 4, 4, 2, 3];

function values(t: Tensor): number[] {
  return Array.from(t.contiguous().toTypedArray() as ArrayLike<number>);
}
function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}
function sd(m: { stateDict(): Map<string, Tensor> }, k: string): Tensor {
  const t = m.stateDict().get(k);
  assert.ok(t, `no state-dict entry ${k}`);
  return t;
}

function headInputs(seed: number) {
  const g = new Generator(seed);
  return {
    taps: [randn([B, D, G, G], { generator: g }), randn([B, D, G, G], { generator: g })] as [Tensor, Tensor],
    final: randn([B, D, G, G], { generator: g }),
    queryPos: randn([B, N, D], { generator: g }),
    text: randn([B, T, E], { generator: g }),
  };
}
function tinyHead(seed: number): MaskDecoderHead {
  return new MaskDecoderHead(
    { clipWidth: D, textDim: E, numQueries: N, head: HEAD, textAggregation: TEXT_AGG },
    { generator: new Generator(seed) },
  );
}

describe("sine position encoding", () => {
  test("2×3 map, 4 features per axis, against a hand computation", () => {
    const eps = 1e-6;
    const ys = [1, 2].map((v) => (v / (2 + eps)) * 2 * Math.PI);
    const xs = [1, 2, 3].map((v) => (v / (3 + eps)) * 2 * Math.PI);
    // dim_t = 10000^(2⌊k/2⌋/4) = [1, 1, 100, 100]; even k → sin, odd k → cos; y channels then x channels
    const chan = [
      (a: number) => Math.sin(a),
      (a: number) => Math.cos(a),
      (a: number) => Math.sin(a / 100),
      (a: number) => Math.cos(a / 100),
    ];
    const expected: number[] = [];
    for (const f of chan) for (const y of ys) for (let j = 0; j < 3; j++) expected.push(f(y));
    for (const f of chan) for (let i = 0; i < 2; i++) for (const x of xs) expected.push(f(x));
    assertClose(sinePositionValues(2, 3, 4), expected, 1e-6);
    const t = sinePositionEncoding(2, 3, 4);
    assert.deepEqual(t.shape, [1, 8, 2, 3]);
    assertClose(values(t), expected, 1e-6);
    // spot values: y = π at row 0 → sin 0-ish, cos −1; x = 2π at the last column → cos 1
    assertClose([expected[0]!, expected[6]!, expected[24 + 6 + 2]!], [0, -1, 1], 1e-5);
    t.dispose();
  });
});

describe("PixelDecoder", () => {
  test("pyramid and output shapes, state-dict names", () => {
    const pd = new PixelDecoder(D, HEAD, { generator: new Generator(1) });
    const x = headInputs(2);
    noGrad(() =>
      tidy(() => {
        const d = pd.forwardDetailed(x);
        assert.deepEqual(
          d.pyramid.map((t) => t.shape),
          [
            [B, D, 2, 2],
            [B, D, 4, 4],
            [B, D / 2, 8, 8],
            [B, D / 4, 16, 16],
          ],
        );
        assert.deepEqual(
          d.outputs.map((t) => t.shape),
          [2, 4, 8, 16].map((s) => [B, HEAD.hiddenDim, s, s]),
        );
        assert.deepEqual(d.maskFeatures.shape, [B, HEAD.maskDim, 16, 16]);
        assert.equal(d.memory.length, 3);
        for (const [i, m] of d.memory.entries()) assert.equal(m, d.outputs[i]);
        const out = pd.forward(x);
        assert.deepEqual(
          out.memory.map((t) => t.shape),
          [2, 4, 8].map((s) => [B, HEAD.hiddenDim, s, s]),
        );
        assert.equal(maxDiff(out.maskFeatures, d.maskFeatures), 0);
      }),
    );
    assert.deepEqual(
      [...pd.stateDict().keys()],
      [
        "scale4.0.weight",
        "scale4.0.bias",
        "scale4.1.weight",
        "scale4.1.bias",
        "scale4.3.weight",
        "scale4.3.bias",
        "scale2.weight",
        "scale2.bias",
        ...[0, 1, 2, 3].flatMap((i) => [
          `lateral_convs.${i}.conv.weight`,
          `lateral_convs.${i}.norm.weight`,
          `lateral_convs.${i}.norm.bias`,
        ]),
        ...[0, 1, 2, 3].flatMap((i) => [
          `output_convs.${i}.conv.weight`,
          `output_convs.${i}.norm.weight`,
          `output_convs.${i}.norm.bias`,
        ]),
        "mask_features.weight",
        "mask_features.bias",
      ],
    );
    dispose(x);
    pd.dispose();
  });

  test("levels re-computed by hand: max-pool, transposed conv, the two coarsest FPN outputs, mask features", () => {
    const pd = new PixelDecoder(D, HEAD, { generator: new Generator(3) });
    const x = headInputs(4);
    noGrad(() =>
      tidy(() => {
        const d = pd.forwardDetailed(x);
        // g/2 level: the max over each 2×2 block of `final`
        const f = values(x.final);
        const pooled: number[] = [];
        for (let bc = 0; bc < B * D; bc++)
          for (let i = 0; i < 2; i++)
            for (let j = 0; j < 2; j++) {
              const at = (di: number, dj: number) => f[bc * 16 + (2 * i + di) * 4 + 2 * j + dj]!;
              pooled.push(Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1)));
            }
        assert.deepEqual(values(d.pyramid[0]!), pooled);
        // 2g level: kernel = stride = 2, so each input pixel writes its own 2×2 output block
        const w = values(sd(pd, "scale2.weight")); // (D, D/2, 2, 2)
        const bias = values(sd(pd, "scale2.bias"));
        const t1 = values(x.taps[1]);
        const Co = D / 2;
        const up = new Array<number>(B * Co * 64).fill(0);
        for (let b = 0; b < B; b++)
          for (let o = 0; o < Co; o++)
            for (let i = 0; i < 8; i++)
              for (let j = 0; j < 8; j++) {
                let s = bias[o]!;
                for (let c = 0; c < D; c++)
                  s +=
                    t1[((b * D + c) * 4 + (i >> 1)) * 4 + (j >> 1)]! *
                    w[((c * Co + o) * 2 + (i & 1)) * 2 + (j & 1)]!;
                up[((b * Co + o) * 8 + i) * 8 + j] = s;
              }
        assertClose(values(d.pyramid[2]!), up, 1e-5, 1e-5, "2g level");
        // FPN: lateral = GN(1×1 conv), output = ReLU(GN(3×3 conv)), top-down nearest ×2 + add
        const gn = (t: Tensor, p: string) =>
          F.groupNorm(t, HEAD.normGroups, sd(pd, `${p}.weight`), sd(pd, `${p}.bias`));
        const lateral = (t: Tensor, i: number) =>
          gn(F.conv2d(t, sd(pd, `lateral_convs.${i}.conv.weight`)), `lateral_convs.${i}.norm`);
        const output = (t: Tensor, i: number) =>
          F.relu(
            gn(
              F.conv2d(t, sd(pd, `output_convs.${i}.conv.weight`), null, { padding: 1 }),
              `output_convs.${i}.norm`,
            ),
          );
        const y0 = lateral(d.pyramid[0]!, 0);
        assert.ok(maxDiff(d.outputs[0]!, output(y0, 0)) < 1e-5);
        const y1 = lateral(x.final, 1).add(y0.repeatInterleave(2, 2).repeatInterleave(2, 3));
        assert.ok(maxDiff(d.outputs[1]!, output(y1, 1)) < 1e-5);
        const mf = F.conv2d(d.outputs[3]!, sd(pd, "mask_features.weight"), sd(pd, "mask_features.bias"));
        assert.ok(maxDiff(d.maskFeatures, mf) < 1e-5);
        // ReLU outputs
        assert.ok(d.outputs[0]!.min().item() >= 0);
      }),
    );
    dispose(x);
    pd.dispose();
  });

  test("GroupNorm groups must divide D/2 and hiddenDim", () => {
    assert.throws(() => new PixelDecoder(20, HEAD), /normGroups 4 must divide/);
  });
});

describe("masked attention", () => {
  test("the mask from the previous prediction: bilinear resize, sigmoid < 0.5 excluded, full rows included", () => {
    // mask logits (1, 3, 4, 4) → level 2×2; query 0 is positive only on the top-right 2×2 block (pixel 1),
    // query 1 is negative everywhere (would exclude every key → all included), query 2 positive everywhere.
    const logits = new Float32Array(3 * 16).fill(-5);
    for (const [i, j] of [
      [0, 2],
      [0, 3],
      [1, 2],
      [1, 3],
    ])
      logits[i * 4 + j] = 5;
    logits.fill(5, 32, 48);
    const m = tensor(logits, [1, 3, 4, 4]);
    const mask = maskedAttentionMask(m, [2, 2]);
    assert.deepEqual(mask.shape, [1, 1, 3, 4]);
    const inf = Number.NEGATIVE_INFINITY;
    assert.deepEqual(values(mask), [inf, 0, inf, inf, 0, 0, 0, 0, 0, 0, 0, 0]);

    const E4 = 8;
    const g = new Generator(21);
    const mha = new MultiheadCrossAttention(E4, 2, { generator: g });
    const q = randn([1, 3, E4], { generator: g });
    const k = randn([1, 4, E4], { generator: g });
    const v = randn([1, 4, E4], { generator: g });
    noGrad(() =>
      tidy(() => {
        const out = mha.forward(q, k, v, mask);
        const free = mha.forward(q, k, v);
        // query 0 sees only key 1: its output is out_proj(v_proj(v[1])) whatever the scores
        const W = values(sd(mha, "in_proj_weight"));
        const bIn = values(sd(mha, "in_proj_bias"));
        const Wo = values(sd(mha, "out_proj.weight"));
        const bo = values(sd(mha, "out_proj.bias"));
        const v1 = values(v).slice(E4, 2 * E4);
        const vp = Array.from({ length: E4 }, (_, r) => {
          let s = bIn[2 * E4 + r]!;
          for (let c = 0; c < E4; c++) s += W[(2 * E4 + r) * E4 + c]! * v1[c]!;
          return s;
        });
        const expected0 = Array.from({ length: E4 }, (_, r) => {
          let s = bo[r]!;
          for (let c = 0; c < E4; c++) s += Wo[r * E4 + c]! * vp[c]!;
          return s;
        });
        assertClose(values(out.select(1, 0)), expected0, 1e-5, 1e-5, "query 0");
        assert.ok(maxDiff(free.select(1, 0), out.select(1, 0)) > 1e-3, "the mask changed query 0");
        // queries 1 and 2 attend to every key
        assert.ok(maxDiff(out.narrow(1, 1, 2), free.narrow(1, 1, 2)) < 1e-6);
      }),
    );
    dispose([m, mask, q, k, v]);
    mha.dispose();
  });
});

describe("MaskTransformerDecoder", () => {
  test("wiring: prediction 0 from the content queries, its mask restricts layer 0, prediction 1", () => {
    const g = new Generator(31);
    const C = HEAD.hiddenDim;
    const dec = new MaskTransformerDecoder(N, HEAD, TEXT_AGG, { generator: g });
    const memory = [2, 4, 8].map((s) => randn([B, C, s, s], { generator: g }));
    const maskFeatures = randn([B, HEAD.maskDim, 16, 16], { generator: g });
    const queryPos = randn([B, N, C], { generator: g });
    const text = randn([B, T, C], { generator: g });
    noGrad(() =>
      tidy(() => {
        const preds = dec.forward({ memory, maskFeatures, queryPos, text });
        assert.equal(preds.length, HEAD.decoderLayers + 1);
        for (const p of preds) {
          assert.deepEqual(p.classLogits.shape, [B, N, T + 1]);
          assert.deepEqual(p.masks.shape, [B, N, 16, 16]);
        }
        // prediction 0
        const q0 = dec.query_feat.weight.unsqueeze(0).expand(B, N, C);
        const n0 = dec.decoder_norm.forward(q0);
        const l = dec.mask_embed.layers;
        const me = l.at(2).forward(F.relu(l.at(1).forward(F.relu(l.at(0).forward(n0))))); // (B, N, maskDim)
        const masks0 = me.matmul(maskFeatures.flatten(2)).reshape(B, N, 16, 16);
        assert.ok(maxDiff(preds[0]!.masks, masks0) < 1e-4);
        const agg = dec.text_aggregation.forward(text, n0);
        const e = dec.class_embed.forward(agg.queries);
        const cls0 = e.matmul(agg.text.mT);
        const other0 = e.matmul(dec.otherEmbed.reshape(C, 1));
        assert.ok(maxDiff(preds[0]!.classLogits.narrow(2, 0, T), cls0) < 1e-4);
        assert.ok(maxDiff(preds[0]!.classLogits.narrow(2, T, 1), other0) < 1e-4);
        // layer 0 on level 0 (2×2) with prediction 0's mask
        const mask = maskedAttentionMask(masks0, [2, 2]);
        const mv = values(mask);
        assert.ok(mv.some((v) => v === 0) && mv.some((v) => v === Number.NEGATIVE_INFINITY));
        const mem0 = memory[0]!.flatten(2).transpose(1, 2).add(dec.level_embed.weight.select(0, 0));
        const pe0 = sinePositionEncoding(2, 2, C / 2)
          .flatten(2)
          .transpose(1, 2);
        let q1 = dec.transformer_cross_attention_layers.at(0).forward(q0, mem0, queryPos, pe0, mask);
        q1 = dec.transformer_self_attention_layers.at(0).forward(q1, queryPos);
        q1 = dec.transformer_ffn_layers.at(0).forward(q1);
        const n1 = dec.decoder_norm.forward(q1);
        assert.ok(maxDiff(preds[1]!.masks, dec.predictMasks(n1, maskFeatures)) < 1e-4);
        assert.ok(maxDiff(preds[1]!.classLogits, dec.predictClasses(n1, text)) < 1e-4);
        // without the mask, layer 0 gives something else
        const unmasked = dec.transformer_cross_attention_layers.at(0).forward(q0, mem0, queryPos, pe0, null);
        assert.ok(
          maxDiff(
            unmasked,
            dec.transformer_cross_attention_layers.at(0).forward(q0, mem0, queryPos, pe0, mask),
          ) > 1e-4,
        );
        // finalOnly: one prediction, the same as the last of the full run
        const fin = dec.forward({ memory, maskFeatures, queryPos, text }, { finalOnly: true });
        assert.equal(fin.length, 1);
        assert.equal(maxDiff(fin[0]!.masks, preds[3]!.masks), 0);
        assert.equal(maxDiff(fin[0]!.classLogits, preds[3]!.classLogits), 0);
      }),
    );
    dispose([memory, maskFeatures, queryPos, text]);
    dec.dispose();
  });
});

describe("semanticInference", () => {
  test("Σ_q softmax(class)_q[:T] · sigmoid(mask)_q against a hand computation", () => {
    // B = 1, N = 2 queries, T = 2 classes (+ other), 1×2 masks
    const cls = [
      [1, 0, -1],
      [0.5, 2, 0],
    ];
    const msk = [
      [0.3, -2],
      [1.5, 0],
    ];
    const logits = tensor([cls]);
    const masks = tensor(Float32Array.from(msk.flat()), [1, 2, 1, 2]);
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const soft = cls.map((r) => {
      const z = r.reduce((a, v) => a + Math.exp(v), 0);
      return r.map((v) => Math.exp(v) / z);
    });
    const expected: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let p = 0; p < 2; p++)
        expected.push(soft[0]![c]! * sig(msk[0]![p]!) + soft[1]![c]! * sig(msk[1]![p]!));
    const out = semanticInference(logits, masks);
    assert.deepEqual(out.shape, [1, 2, 1, 2]);
    assertClose(values(out), expected, 1e-6);
    dispose([logits, masks, out]);
  });
});

describe("MaskDecoderHead", () => {
  test("tiny head: shapes, finite, state-dict names, gradients reach every parameter", () => {
    const head = tinyHead(41);
    const keys = [...head.stateDict().keys()];
    for (const k of [
      "pixel_decoder.scale4.0.weight",
      "pixel_decoder.mask_features.weight",
      "predictor.query_feat.weight",
      "predictor.level_embed.weight",
      "predictor.transformer_cross_attention_layers.2.multihead_attn.in_proj_weight",
      "predictor.transformer_cross_attention_layers.0.norm.weight",
      "predictor.transformer_self_attention_layers.1.self_attn.out_proj.weight",
      "predictor.transformer_ffn_layers.0.linear1.weight",
      "predictor.decoder_norm.weight",
      "predictor.mask_embed.layers.2.weight",
      "predictor.class_embed.weight",
      "predictor.other_embed",
      "predictor.text_aggregation.layers.1.query_to_text.out_proj.weight",
      "text_proj.layers.1.weight",
      "query_pos_proj.weight",
    ])
      assert.ok(keys.includes(k), `missing ${k}`);
    assert.deepEqual(sd(head, "predictor.level_embed.weight").shape, [3, 16]);
    assert.deepEqual(sd(head, "query_pos_proj.weight").shape, [16, D]);
    const x = headInputs(42);
    const g = new Generator(43);
    tidy(() => {
      const { predictions } = head.forward(x);
      assert.equal(predictions.length, HEAD.decoderLayers + 1);
      let loss: Tensor | null = null;
      for (const p of predictions) {
        assert.deepEqual(p.classLogits.shape, [B, N, T + 1]);
        assert.deepEqual(p.masks.shape, [B, N, 4 * G, 4 * G]);
        assert.ok(p.classLogits.isfinite().all().item() && p.masks.isfinite().all().item());
        const term = p.classLogits
          .mul(randn(p.classLogits.shape, { generator: g }))
          .sum()
          .add(p.masks.mul(randn(p.masks.shape, { generator: g })).mean());
        loss = loss ? loss.add(term) : term;
      }
      const sem = head.semanticInference(predictions[3]!.classLogits, predictions[3]!.masks);
      assert.deepEqual(sem.shape, [B, T, 16, 16]);
      const sv = values(sem);
      assert.ok(sv.every((v) => v >= 0 && v <= 1));
      loss!.backward();
    });
    const noGradParams = head
      .namedParameters()
      .filter(([, p]) => !p.grad || tidy(() => p.grad!.abs().sum().item()) === 0)
      .map(([n]) => n);
    assert.deepEqual(noGradParams, []);
    assert.ok(head.numParameters() > 10000);
    dispose(x);
    head.dispose();
  });

  test("deterministic: the same seed gives identical outputs, another seed does not; no leaks", () => {
    const x = headInputs(51);
    const run = (seed: number) => {
      const head = tinyHead(seed).eval();
      const out = noGrad(() => head.forward(x)).predictions[3]!;
      head.dispose();
      return out;
    };
    const a = run(7);
    const b = run(7);
    const c = run(8);
    assert.ok(a.classLogits.equal(b.classLogits) && a.masks.equal(b.masks));
    assert.ok(!a.masks.equal(c.masks));
    dispose([a, b, c]);
    // a forward frees every temporary
    const head = tinyHead(9);
    dispose(noGrad(() => head.forward(x)));
    globalThis.gc?.();
    const before = liveTensorBytes();
    for (let i = 0; i < 3; i++) dispose(noGrad(() => head.forward(x)));
    assert.equal(liveTensorBytes(), before);
    head.dispose();
    dispose(x);
  });
});
