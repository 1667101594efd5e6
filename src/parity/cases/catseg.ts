// Parity cases "catseg_aggregator" (T < pad_len: padding path) and "catseg_aggregator_topk" (T > pad_len:
// top-k class selection, −100 fill): CAT-Seg's Aggregator built from case.json, the fixture's
// `weights.sem_seg_head.predictor.transformer.*` loaded strictly through `loadWeights` (models/factory.ts), run with
// class-layer pooling 2×2 and 1×1; every `outputs.*` and every available `intermediates.*` compared.
//
// On the top-k path the reference aggregates the kept classes in `topk(sorted=False)` order, which is
// implementation-defined; its intermediates are in that order. The logits do not depend on it, but to compare
// the intermediates the reference's order is recovered by matching its conv1-input rows (the per-class cost
// volumes) to ours; the kept *set* is checked against `intermediates.topk_selected_classes_sorted`.

import { Aggregator, type AggregatorOutput } from "../../catseg/aggregator.js";
import { CATSEG_AGGREGATOR_PREFIX } from "../../catseg/weights.js";
import { noGrad, stack, type Tensor, tensor, tidy } from "../../torch/tensor.js";
import { aggregatorConfigFromCase } from "../case-config.js";
import { Checker, fixtureTensor } from "../checker.js";
import { type Comparison, type Fixture, fixtureArray, type Tolerance } from "../fixture.js";
import { loadFixtureWeights } from "../fixture-weights.js";

/** Where the fixture keeps the Aggregator weights: `weights.` + their path in a CAT-Seg checkpoint. */
export const CATSEG_FIXTURE_WEIGHTS_PREFIX = `weights.${CATSEG_AGGREGATOR_PREFIX}`;

/**
 * Builds the Aggregator of a catseg_aggregator* fixture and loads its weights strictly (through the same
 * `loadWeights` (models/factory.ts) real checkpoints use). Throws a StateDictError on any key or shape mismatch.
 */
export function aggregatorFromFixture(f: Fixture): Aggregator {
  const model = new Aggregator(aggregatorConfigFromCase(f.json.config)).eval();
  try {
    loadFixtureAggregatorWeights(f, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Loads the fixture's `weights.sem_seg_head.predictor.transformer.*` into `model` (strict). */
export function loadFixtureAggregatorWeights(f: Fixture, model: Aggregator): void {
  loadFixtureWeights(f, model, CATSEG_FIXTURE_WEIGHTS_PREFIX);
}

/** For each batch row b and reference class row j, the index i of our class row it equals (a bijection). */
function matchClassRows(
  ours: Float32Array,
  theirs: ArrayLike<number>,
  B: number,
  K: number,
  tol: Tolerance,
): number[][] | string {
  const D = ours.length / (B * K);
  const perm: number[][] = [];
  for (let b = 0; b < B; b++) {
    const row: number[] = [];
    const used = new Set<number>();
    for (let j = 0; j < K; j++) {
      let found = -1;
      for (let i = 0; i < K && found < 0; i++) {
        if (used.has(i)) continue;
        let ok = true;
        for (let e = 0; e < D && ok; e++) {
          const a = ours[(b * K + i) * D + e]!;
          const t = theirs[(b * K + j) * D + e]!;
          ok = Math.abs(a - t) <= tol.atol + tol.rtol * Math.abs(t);
        }
        if (ok) found = i;
      }
      if (found < 0) return `reference class row ${j} of batch ${b} matches none of ours`;
      used.add(found);
      row.push(found);
    }
    perm.push(row);
  }
  return perm;
}

/** Reorders dimension `dim` (≥ 1) of `t` per batch row: out[b, …, j, …] = t[b, …, perm[b][j], …]. */
function reorderClasses(t: Tensor, dim: number, perm: number[][] | null): Tensor {
  if (!perm) return t;
  return tidy(() =>
    stack(
      perm.map((p, b) => t.select(0, b).indexSelect(dim - 1, tensor(p, [p.length], { dtype: "int64" }))),
      0,
    ),
  );
}

/** Same for a (B·K, …) tensor whose rows are batch-major class rows. */
function reorderFlatClasses(t: Tensor, B: number, perm: number[][] | null): Tensor {
  if (!perm) return t;
  return tidy(() => {
    const [BK, ...rest] = t.shape;
    return reorderClasses(t.reshape(B, BK! / B, ...rest), 1, perm).reshape(BK!, ...rest);
  });
}

/** Both catseg_aggregator cases: build, strict load, pooling 2×2 (with intermediates) and 1×1. */
export function runCatsegAggregatorCase(f: Fixture): Comparison[] {
  const config = aggregatorConfigFromCase(f.json.config);
  const c = new Checker(f);
  const model = new Aggregator(config).eval();
  try {
    // The shifted blocks' masks as this code derives them, before the checkpoint's copies overwrite them.
    for (const [key, t] of model.stateDict()) {
      if (key.endsWith(".attn_mask")) {
        c.check(`${CATSEG_FIXTURE_WEIGHTS_PREFIX}${key}`, t, {
          tol: { atol: 0, rtol: 0 },
          note: "derived from the config, compared before loading",
        });
      }
    }
    const stray = [...f.records.keys()].filter(
      (k) => k.startsWith("weights.") && !k.startsWith(CATSEG_FIXTURE_WEIGHTS_PREFIX),
    );
    if (stray.length)
      c.fail("weights.*", `keys outside ${CATSEG_FIXTURE_WEIGHTS_PREFIX}: ${stray.join(", ")}`);
    loadFixtureAggregatorWeights(f, model);

    noGrad(() =>
      tidy(() => {
        const img = fixtureTensor(f, "inputs.img_feats"); // (B, C, H, W)
        const text = fixtureTensor(f, "inputs.text_feats"); // (B, T, P, C)
        const guidance = [0, 1, 2].map((i) => fixtureTensor(f, `inputs.appearance_guidance.${i}`));
        const B = img.size(0);

        const r2 = model.forwardDetailed(img, text, guidance, { poolingSize: [2, 2], debug: true });
        c.check("outputs.logits_pool2x2", r2.logits);
        const perm = checkSelection(f, c, r2, B);
        if (perm !== "failed") checkIntermediates(c, r2, B, perm);

        const r1 = model.forwardDetailed(img, text, guidance, { poolingSize: [1, 1] });
        c.check("outputs.logits_pool1x1", r1.logits);
      }),
    );
    return c.finish();
  } finally {
    model.dispose();
  }
}

/**
 * Top-k path: compares the kept class set and recovers the reference's aggregation order (null: same order
 * as ours, or no selection). Padding path: checks that nothing was selected.
 */
function checkSelection(
  f: Fixture,
  c: Checker,
  r: AggregatorOutput,
  B: number,
): number[][] | null | "failed" {
  const name = "intermediates.topk_selected_classes_sorted";
  if (!r.selectedClasses) {
    if (c.has(name)) {
      c.fail(name, "the fixture selected classes, this run aggregated every class");
      return "failed";
    }
    return null;
  }
  if (c.has(name))
    c.check(
      name,
      tidy(() => r.selectedClasses!.sort(-1)[0]),
      { tol: { atol: 0, rtol: 0 } },
    );
  const inName = "intermediates.pool2x2.corr_embed_in";
  if (!c.has(inName)) return null;
  const K = r.selectedClasses.size(1);
  const ours = tidy(() => r.debug!.corrEmbedIn.contiguous().toFloat32Array());
  const m = matchClassRows(ours, fixtureArray(f, inName) as Float32Array, B, K, f.tolerance);
  if (typeof m === "string") {
    c.fail(inName, `cannot align the top-k class order: ${m}`);
    return "failed";
  }
  return m.every((row) => row.every((i, j) => i === j)) ? null : m;
}

function checkIntermediates(c: Checker, r: AggregatorOutput, B: number, perm: number[][] | null): void {
  const d = r.debug!;
  const p = "intermediates.pool2x2.";
  const note = perm ? "classes aligned to the reference's topk(sorted=False) order" : undefined;
  c.checkIfPresent(`${p}corr_embed_in`, () => reorderFlatClasses(d.corrEmbedIn, B, perm), { note });
  c.checkIfPresent(`${p}corr_embed_conv1`, () => reorderFlatClasses(d.corrEmbedConv1, B, perm), { note });
  if (d.appearanceGuidanceProj)
    c.checkIfPresent(`${p}appearance_guidance_proj`, () => d.appearanceGuidanceProj!);
  if (d.textGuidanceProj)
    c.checkIfPresent(`${p}text_guidance_proj`, () => reorderClasses(d.textGuidanceProj!, 1, perm), { note });
  d.decoderGuidanceProj.forEach((g, i) => {
    if (g) c.checkIfPresent(`${p}decoder_guidance_proj_${i}`, () => g);
  });
  d.layers.forEach((l, i) => {
    c.checkIfPresent(`${p}layer${i}_after_spatial_swin`, () => reorderClasses(l.afterSwin, 2, perm), {
      note,
    });
    c.checkIfPresent(`${p}layer${i}_out`, () => reorderClasses(l.out, 2, perm), { note });
  });
  // Row 0 of the (B·T', C, h, w) decoder outputs: batch 0, the reference's first aggregated class.
  const row0 = perm ? perm[0]![0]! : 0;
  c.checkIfPresent(`${p}decoder1_out`, () => d.decoder1Out.narrow(0, row0, 1), { note });
  c.checkIfPresent(`${p}decoder2_out`, () => d.decoder2Out.narrow(0, row0, 1), { note });
}
