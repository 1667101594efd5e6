// CAT-Seg Aggregator: fixture parity (padding and top-k paths, both poolings), strict loading errors, the
// runner's bookkeeping, and properties of the reference: top-k class-count independence, class permutation
// equivariance, batch independence.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Aggregator, fullAttention, linearAttention } from "../../src/catseg/aggregator.js";
import {
  AGGREGATOR_PRESETS,
  type AggregatorConfig,
  aggregatorPreset,
  swinShiftSize,
} from "../../src/catseg/config.js";
import { shiftedWindowMask } from "../../src/catseg/swin.js";
import { CATSEG_AGGREGATOR_PREFIX, loadAggregatorWeights } from "../../src/catseg/weights.js";
import { loadWeights } from "../../src/models/factory.js";
import { aggregatorConfigFromCase } from "../../src/parity/case-config.js";
import {
  aggregatorFromFixture,
  CATSEG_FIXTURE_WEIGHTS_PREFIX,
  loadFixtureAggregatorWeights,
  runCatsegAggregatorCase,
} from "../../src/parity/cases/catseg.js";
import { type Fixture, loadFixture } from "../../src/parity/fixture.js";
import * as F from "../../src/torch/functional.js";
import { saveSafetensors, tensorFromRecord } from "../../src/torch/io/load.js";
import { StateDictError } from "../../src/torch/nn/module.js";
import {
  dispose,
  Generator,
  liveTensorBytes,
  noGrad,
  randn,
  stack,
  type Tensor,
  tensor,
  tidy,
} from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

const fixtures = join(PACKAGE_ROOT, "test/fixtures");
const PAD = loadFixture(join(fixtures, "catseg_aggregator"));
const TOPK = loadFixture(join(fixtures, "catseg_aggregator_topk"));
const tmp = mkdtempSync(join(tmpdir(), "dedos-catseg-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function input(f: Fixture, name: string): Tensor {
  return tensorFromRecord(f.records.get(name)!);
}
function inputs(f: Fixture): { img: Tensor; text: Tensor; guidance: Tensor[] } {
  return {
    img: input(f, "inputs.img_feats"),
    text: input(f, "inputs.text_feats"),
    guidance: [0, 1, 2].map((i) => input(f, `inputs.appearance_guidance.${i}`)),
  };
}
function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

/** A copy of a fixture directory whose tensors are `edit`ed (name → tensor, or undefined to drop). */
function editedFixture(f: Fixture, name: string, edit: (tensors: Map<string, Tensor>) => void): Fixture {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(f.dir, "case.json"), join(dir, "case.json"));
  const tensors = new Map<string, Tensor>();
  for (const [k, rec] of f.records) tensors.set(k, tensorFromRecord(rec).keep());
  edit(tensors);
  saveSafetensors(join(dir, "tensors.safetensors"), tensors);
  dispose([...tensors.values()]);
  return loadFixture(dir);
}

describe("Aggregator parity", () => {
  for (const f of [PAD, TOPK]) {
    test(`${f.caseName}: every comparison within tolerance`, () => {
      const results = runCatsegAggregatorCase(f);
      const bad = results.filter((c) => !c.ok);
      assert.deepEqual(
        bad.map((c) => `${c.name}: ${c.maxAbsError} ${c.note ?? ""}`),
        [],
      );
      const names = new Set(results.map((c) => c.name));
      for (const k of f.records.keys()) {
        if (k.startsWith("outputs.") || k.startsWith("intermediates."))
          assert.ok(names.has(k), `${k} was not compared`);
      }
      // the two derived attn_mask buffers and every output and intermediate
      assert.equal(
        results.length,
        2 + [...f.records.keys()].filter((k) => !k.startsWith("weights.") && !k.startsWith("inputs.")).length,
      );
    });
  }

  test("top-k intermediates stored in another class order are aligned before comparison", () => {
    // Reverse the aggregated-class order of every order-dependent intermediate (what a different
    // topk(sorted=False) implementation could store); the row-0 decoder captures cannot be re-derived: dropped.
    const B = 2;
    const K = 8;
    const rev = (t: Tensor, dim: number) =>
      stack(
        [...Array(B).keys()].map((b) => t.select(0, b).flip(dim - 1)),
        0,
      );
    const flat = (t: Tensor) => {
      const [BK, ...rest] = t.shape;
      return rev(t.reshape(B, K, ...rest), 1).reshape(BK!, ...rest);
    };
    const g = editedFixture(TOPK, "topk-reordered", (m) => {
      const p = "intermediates.pool2x2.";
      const swap = (k: string, fn: (t: Tensor) => Tensor) => {
        const old = m.get(k)!;
        m.set(k, fn(old).contiguous().keep());
        old.dispose();
      };
      swap(`${p}corr_embed_in`, flat);
      swap(`${p}corr_embed_conv1`, flat);
      swap(`${p}text_guidance_proj`, (t) => rev(t, 1));
      for (const l of [0, 1]) {
        swap(`${p}layer${l}_after_spatial_swin`, (t) => rev(t, 2));
        swap(`${p}layer${l}_out`, (t) => rev(t, 2));
      }
      for (const k of [`${p}decoder1_out`, `${p}decoder2_out`]) {
        m.get(k)!.dispose();
        m.delete(k);
      }
    });
    const results = runCatsegAggregatorCase(g);
    assert.deepEqual(
      results.filter((c) => !c.ok).map((c) => c.name),
      [],
    );
    const aligned = results.find((c) => c.name === "intermediates.pool2x2.layer1_out")!;
    assert.match(aligned.note ?? "", /aligned/);
  });

  test("an outputs.* tensor the runner does not know is reported as a failure", () => {
    const g = editedFixture(PAD, "extra-output", (m) => {
      m.set("outputs.logits_pool4x4", tensor([1, 2, 3], [3]).keep());
    });
    const results = runCatsegAggregatorCase(g);
    const extra = results.find((c) => c.name === "outputs.logits_pool4x4");
    assert.ok(extra && !extra.ok, "the unknown output must fail");
    assert.match(extra!.note ?? "", /not compared/);
    assert.ok(results.filter((c) => c.name !== "outputs.logits_pool4x4").every((c) => c.ok));
  });
});

describe("Aggregator weights", () => {
  test("strict load: a shape mismatch names the key and both shapes", () => {
    const config = { ...aggregatorConfigFromCase(PAD.json.config), promptChannel: 2 };
    const model = new Aggregator(config);
    try {
      assert.throws(
        () => loadFixtureAggregatorWeights(PAD, model),
        (e: unknown) => {
          assert.ok(e instanceof StateDictError);
          assert.deepEqual(e.shapeMismatches, [
            { key: "conv1.weight", expected: [32, 2, 7, 7], got: [32, 1, 7, 7] },
          ]);
          assert.match(
            e.message,
            /conv1\.weight: the model expects shape \[32, 2, 7, 7\], .* has \[32, 1, 7, 7\]/,
          );
          return true;
        },
      );
    } finally {
      model.dispose();
    }
  });

  test("strict load: missing and unexpected keys are named", () => {
    // pad_len 0: the reference has no padding parameters, so the fixture's are unexpected.
    const config = { ...aggregatorConfigFromCase(PAD.json.config), padLen: 0 };
    const model = new Aggregator(config);
    const tensors = new Map<string, Tensor>();
    for (const [k, rec] of PAD.records)
      if (k.startsWith(CATSEG_FIXTURE_WEIGHTS_PREFIX) && !k.endsWith("layers.1.swin_block.block_2.attn_mask"))
        tensors.set(k, tensorFromRecord(rec).keep());
    try {
      assert.throws(
        () =>
          loadAggregatorWeights(model, tensors, { prefix: CATSEG_FIXTURE_WEIGHTS_PREFIX, source: "x.pth" }),
        (e: unknown) => {
          assert.ok(e instanceof StateDictError);
          assert.deepEqual(e.missing, ["layers.1.swin_block.block_2.attn_mask"]);
          assert.deepEqual(e.unexpected.sort(), [
            "layers.0.attention.padding_guidance",
            "layers.0.attention.padding_tokens",
            "layers.1.attention.padding_guidance",
            "layers.1.attention.padding_tokens",
          ]);
          assert.match(e.message, /missing in x\.pth \(1\): layers\.1\.swin_block\.block_2\.attn_mask/);
          return true;
        },
      );
      assert.throws(
        () => loadAggregatorWeights(model, tensors, { source: "y.pth" }),
        new RegExp(`no key starts with "${CATSEG_AGGREGATOR_PREFIX.replaceAll(".", "\\.")}"`),
      );
    } finally {
      dispose([...tensors.values()]);
      model.dispose();
    }
  });

  test("the released presets have exactly the reference's key set (fixture keys, real shapes)", () => {
    const fixtureKeys = [...PAD.records.keys()]
      .filter((k) => k.startsWith(CATSEG_FIXTURE_WEIGHTS_PREFIX))
      .map((k) => k.slice(CATSEG_FIXTURE_WEIGHTS_PREFIX.length))
      .sort();
    for (const name of ["vitb_384", "vitl_336"] as const) {
      const model = new Aggregator(aggregatorPreset(name));
      try {
        const sd = model.stateDict();
        assert.deepEqual([...sd.keys()].sort(), fixtureKeys);
        const C = AGGREGATOR_PRESETS[name].textGuidanceDim;
        assert.deepEqual(sd.get("conv1.weight")!.shape, [128, 1, 7, 7]);
        assert.deepEqual(sd.get("guidance_projection.0.weight")!.shape, [128, C, 3, 3]);
        assert.deepEqual(sd.get("text_guidance_projection.0.weight")!.shape, [128, C]);
        assert.deepEqual(sd.get("layers.0.swin_block.block_1.attn.q.weight")!.shape, [128, 256]);
        assert.deepEqual(sd.get("layers.0.attention.padding_tokens")!.shape, [1, 1, 128]);
        assert.deepEqual(sd.get("layers.0.swin_block.block_2.attn_mask")!.shape, [4, 144, 144]);
        assert.deepEqual(sd.get("decoder1.up.weight")!.shape, [128, 96, 2, 2]);
        assert.deepEqual(sd.get("decoder2.up.weight")!.shape, [64, 48, 2, 2]);
        assert.deepEqual(sd.get("decoder2.conv.double_conv.4.weight")!.shape, [32]);
      } finally {
        model.dispose();
      }
    }
    assert.equal(AGGREGATOR_PRESETS.vitl_336.appearanceGuidanceDim, 768);
    assert.equal(swinShiftSize(AGGREGATOR_PRESETS.vitb_384), 6);
  });

  test("fromCheckpoint: a CAT-Seg-prefixed safetensors file loads strictly and runs like the fixture model", () => {
    const file = join(tmp, "catseg_head.safetensors");
    const tensors = new Map<string, Tensor>();
    for (const [k, rec] of PAD.records) {
      if (k.startsWith("weights.")) tensors.set(k.slice("weights.".length), tensorFromRecord(rec).keep());
    }
    saveSafetensors(file, tensors);
    dispose([...tensors.values()]);
    const model = new Aggregator(aggregatorConfigFromCase(PAD.json.config)).eval();
    loadWeights(model, file);
    const ref = aggregatorFromFixture(PAD);
    try {
      noGrad(() =>
        tidy(() => {
          const { img, text, guidance } = inputs(PAD);
          assert.equal(maxDiff(model.forward(img, text, guidance), ref.forward(img, text, guidance)), 0);
        }),
      );
    } finally {
      model.dispose();
      ref.dispose();
    }
  });

  test("config from case.json", () => {
    const c: AggregatorConfig = aggregatorConfigFromCase(TOPK.json.config);
    assert.deepEqual(c, {
      textGuidanceDim: 32,
      textGuidanceProjDim: 16,
      appearanceGuidanceDim: 32,
      appearanceGuidanceProjDim: 16,
      decoderDims: [32, 16],
      decoderGuidanceDims: [24, 12],
      decoderGuidanceProjDims: [8, 4],
      numLayers: 2,
      nheads: 4,
      hiddenDim: 32,
      poolingSize: [2, 2],
      featureResolution: [8, 8],
      windowSize: 4,
      attentionType: "linear",
      promptChannel: 2,
      padLen: 8,
    });
    assert.throws(
      () => aggregatorConfigFromCase({ ...TOPK.json.config, shift_size: 1 }),
      /shift_size 1 differs from the derived 2/,
    );
    assert.throws(() => aggregatorPreset("vith"), /unknown CAT-Seg aggregator preset "vith"/);
  });

  test("shifted-window mask: a window covering the grid has no shift and no mask buffer", () => {
    const model = new Aggregator({ ...aggregatorConfigFromCase(PAD.json.config), windowSize: 8 });
    try {
      assert.ok(![...model.stateDict().keys()].some((k) => k.endsWith("attn_mask")));
    } finally {
      model.dispose();
    }
    // 4×4 grid, window 2, shift 1: the bottom-right window mixes 4 regions, the top-left one is whole.
    const m = shiftedWindowMask(4, 4, 2, 1);
    const a = m.toArray();
    m.dispose();
    assert.deepEqual(a.slice(0, 16), new Array(16).fill(0));
    const last = a.slice(3 * 16);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.equal(last[i * 4 + j], i === j ? 0 : -100);
  });
});

describe("Aggregator properties", () => {
  const topk = aggregatorFromFixture(TOPK);
  const pad = aggregatorFromFixture(PAD);
  after(() => {
    topk.dispose();
    pad.dispose();
  });

  for (const pooling of [
    [2, 2],
    [1, 1],
  ] as [number, number][]) {
    test(`top-k (pool ${pooling.join("×")}): the kept classes alone give the same logits; the others are −100`, () =>
      noGrad(() =>
        tidy(() => {
          const { img, text, guidance } = inputs(TOPK);
          const [B, T, P, C] = text.shape as [number, number, number, number];
          const full = topk.forwardDetailed(img, text, guidance, { poolingSize: pooling });
          const kept = full.selectedClasses!; // (B, 8)
          const K = kept.size(1);
          assert.equal(K, 8);
          // Exactly pad_len classes: neither padding nor selection, the same aggregation.
          const alone = topk.forward(
            img,
            text.gather(1, kept.reshape(B, K, 1, 1).expand(B, K, P, C)),
            guidance,
            { poolingSize: pooling },
          ); // (B, K, 4H, 4W)
          const [Ho, Wo] = [alone.size(2), alone.size(3)];
          const picked = full.logits.gather(1, kept.reshape(B, K, 1, 1).expand(B, K, Ho, Wo));
          assert.ok(maxDiff(picked, alone) <= 1e-5, `kept-class logits differ by ${maxDiff(picked, alone)}`);
          const keptSet = kept.toArray();
          const logits = full.logits.toFloat32Array();
          for (let b = 0; b < B; b++) {
            for (let t = 0; t < T; t++) {
              if (keptSet.slice(b * K, b * K + K).includes(t)) continue;
              const plane = logits.subarray((b * T + t) * Ho * Wo, (b * T + t + 1) * Ho * Wo);
              assert.ok(
                plane.every((v) => v === -100),
                `class ${t} of batch ${b} is not exactly −100`,
              );
            }
          }
        }),
      ));
  }

  test("padding path: permuting the classes permutes the logits", () =>
    noGrad(() =>
      tidy(() => {
        const { img, text, guidance } = inputs(PAD);
        const perm = tensor([3, 0, 4, 2, 1], [5], { dtype: "int64" });
        const a = pad.forward(img, text, guidance).indexSelect(1, perm);
        const b = pad.forward(img, text.indexSelect(1, perm), guidance);
        assert.ok(maxDiff(a, b) <= 1e-5, `permuted logits differ by ${maxDiff(a, b)}`);
      }),
    ));

  test("a sample's logits do not depend on the rest of the batch", () =>
    noGrad(() =>
      tidy(() => {
        const { img, text, guidance } = inputs(PAD);
        const both = pad.forward(img, text, guidance, { poolingSize: [1, 1] });
        const row = (t: Tensor) => t.narrow(0, 1, 1);
        const alone = pad.forward(row(img), row(text), guidance.map(row), { poolingSize: [1, 1] });
        assert.ok(maxDiff(row(both), alone) <= 1e-5, `batch row differs by ${maxDiff(row(both), alone)}`);
      }),
    ));

  test("full attention (attention_type 'full') is softmax attention over the classes", () =>
    noGrad(() =>
      tidy(() => {
        const g = new Generator(3);
        const [q, k, v] = [0, 1, 2].map(() => randn([3, 5, 2, 4], { generator: g })) as [
          Tensor,
          Tensor,
          Tensor,
        ];
        const heads = (t: Tensor) => t.permute(0, 2, 1, 3); // (N, h, L, d)
        const expected = F.attention(heads(q), heads(k), heads(v)).permute(0, 2, 1, 3);
        assert.ok(maxDiff(fullAttention(q, k, v), expected) <= 1e-6);
        // linear attention: φ(q)·Σ φ(k)vᵀ / φ(q)·Σ φ(k), computed directly
        const phi = (t: Tensor) => F.elu(t).add(1);
        const num = heads(phi(q))
          .matmul(heads(phi(k)).mT)
          .matmul(heads(v)); // (N, h, L, d)
        const den = heads(phi(q))
          .matmul(heads(phi(k)).mT)
          .sum(-1, true)
          .add(1e-6);
        const lin = num.div(den).permute(0, 2, 1, 3);
        assert.ok(maxDiff(linearAttention(q, k, v), lin) <= 1e-5);
      }),
    ));

  test("input checks name the offending tensor", () => {
    const { img, text, guidance } = inputs(PAD);
    try {
      assert.throws(() => pad.forward(img, text.repeat(1, 1, 2, 1), guidance), /prompt_channel = 1/);
      assert.throws(
        () => pad.forward(img, text, [guidance[0]!, guidance[2]!, guidance[1]!]),
        /guidance\[1\] must be/,
      );
      assert.throws(() => pad.forward(img.narrow(2, 0, 4), text, guidance), /built for 8×8/);
    } finally {
      dispose([img, text, guidance]);
    }
  });

  test("forward frees every temporary", () =>
    noGrad(() => {
      const { img, text, guidance } = inputs(TOPK);
      tidy(() => {
        const w = inputs(PAD); // warm-up: file mappings, allocator
        pad.forward(w.img, w.text, w.guidance);
      });
      const before = liveTensorBytes();
      const r = topk.forwardDetailed(img, text, guidance, { debug: true });
      dispose(r);
      assert.equal(liveTensorBytes(), before);
      dispose([img, text, guidance]);
    }));
});
