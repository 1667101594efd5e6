// Parity case `semseg_eval`: detectron2 SemSegEvaluator (main and v0.6) and CAT-Seg/DEDOS VOCbEvaluator.
// For every variant: argmax the stored score maps (then the VOC-20b fold for VOCbEvaluator), count the
// confusion matrix, and compare it, the per-class IoU/accuracy and the scalar metrics with the fixture.
import {
  argmaxScores,
  type ComputeMetricsOptions,
  ConfusionMatrix,
  computeMetrics,
  foldVocBackground,
  type LabelArray,
  type SemsegMetrics,
} from "../../eval/semseg-metrics.js";
import { type Comparison, compareArrays, type Fixture, fixtureArray, type Tolerance } from "../fixture.js";

const EXACT: Tolerance = { atol: 0, rtol: 0 };
const METRIC_TOL: Tolerance = { atol: 1e-9, rtol: 0 };

const VERSIONS: ReadonlyArray<{ key: "main" | "v0.6"; miou: NonNullable<ComputeMetricsOptions["miou"]> }> = [
  { key: "main", miou: "d2-main" },
  { key: "v0.6", miou: "d2-v0.6" },
];

const SCALARS = ["mIoU", "fwIoU", "mACC", "pACC"] as const;

function asLabels(a: ArrayLike<unknown>, name: string): LabelArray {
  if (
    a instanceof Uint8Array ||
    a instanceof Uint16Array ||
    a instanceof Int32Array ||
    a instanceof Int16Array ||
    a instanceof Int8Array
  ) {
    return a;
  }
  throw new Error(`semseg_eval: tensor ${name} is not an integer label map`);
}

function nullToNaN(v: unknown): number {
  return v === null || v === undefined ? Number.NaN : Number(v);
}

export function runSemsegEvalCase(f: Fixture): Comparison[] {
  const out: Comparison[] = [];
  const variants = f.json.variants as Record<string, Record<string, unknown>> | undefined;
  if (!variants) throw new Error(`${f.dir}: case.json has no "variants"`);
  for (const [v, spec] of Object.entries(variants)) {
    const numClasses = Number(spec.num_classes);
    const ignoreLabel = Number(spec.ignore_label);
    const numImages = Number(spec.num_images);
    const vocb = spec.evaluator === "VOCbEvaluator";
    const conf = new ConfusionMatrix(numClasses, ignoreLabel);

    // The argmax maps of all images, concatenated, against the stored intermediates.
    const preds: number[] = [];
    const expectedPreds: number[] = [];
    for (let i = 0; i < numImages; i++) {
      const scoresName = `inputs.${v}.img${i}.scores`;
      const rec = f.records.get(scoresName);
      if (rec?.shape.length !== 3) throw new Error(`${f.tensorsFile}: no (C,H,W) tensor "${scoresName}"`);
      const [C, H, W] = rec.shape as [number, number, number];
      const scores = fixtureArray(f, scoresName);
      if (!(scores instanceof Float32Array || scores instanceof Float64Array))
        throw new Error(`${scoresName}: expected float scores`);
      let pred: Uint16Array = argmaxScores(scores, C, H, W);
      if (vocb) pred = foldVocBackground(pred);
      const gtName = `inputs.${v}.img${i}.gt`;
      conf.add(pred, asLabels(fixtureArray(f, gtName), gtName));
      for (const x of pred) preds.push(x);
      for (const x of asLabels(fixtureArray(f, `intermediates.${v}.img${i}.pred`), "pred"))
        expectedPreds.push(x);
    }
    out.push(compareArrays(`${v}.pred`, preds, expectedPreds, EXACT));

    out.push(
      compareArrays(
        `${v}.conf_matrix`,
        conf.toBigInt64Array(),
        fixtureArray(f, `outputs.${v}.conf_matrix`) as BigInt64Array,
        EXACT,
      ),
    );

    const results = spec.results as Record<string, Record<string, unknown>> | undefined;
    for (const { key, miou } of VERSIONS) {
      const m: SemsegMetrics = computeMetrics(conf, { miou });
      out.push(
        compareArrays(
          `${v}.${key}.iou_per_class`,
          m.perClassIoU,
          fixtureArray(f, `outputs.${v}.${key}.iou_per_class`) as Float64Array,
          METRIC_TOL,
        ),
      );
      out.push(
        compareArrays(
          `${v}.${key}.acc_per_class`,
          m.perClassAcc,
          fixtureArray(f, `outputs.${v}.${key}.acc_per_class`) as Float64Array,
          METRIC_TOL,
        ),
      );
      const expected = results?.[key]?.metrics_percent as Record<string, unknown> | undefined;
      if (!expected) throw new Error(`${f.dir}: no variants.${v}.results.${key}.metrics_percent`);
      for (const s of SCALARS) {
        const c = compareArrays(`${v}.${key}.${s}`, [m[s]], [nullToNaN(expected[s])], METRIC_TOL);
        if (c.ok && !Object.is(m[s], nullToNaN(expected[s]))) c.note = "within tolerance, not bitwise equal";
        out.push(c);
      }
    }
  }
  return out;
}
