// Class-name embeddings from CLIP text features on plain arrays: the math of prompts.ts
// `computeClassEmbeddings` after the text encoder, for engines other than libtorch (an exported text.onnx in
// Node or the browser). Per text L2-normalised; a class's synonyms averaged and renormalised; its templates
// averaged and renormalised (P = 1) or kept apart as P prompt channels.
import type { PromptGroup } from "./prompt-texts.js";

const f = Math.fround;

/** x / ‖x‖ of `n` floats at `at`, in place (float32 steps, as libtorch's norm and div). */
function normalizeAt(x: Float32Array, at: number, n: number): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[at + i]! * x[at + i]!;
  const norm = f(Math.sqrt(ss));
  for (let i = 0; i < n; i++) x[at + i] = x[at + i]! / norm;
}

/** The mean of `count` rows of E floats at `rows[j]·E`, into `out` at `at`. */
function meanRows(x: Float32Array, rows: number[], E: number, out: Float32Array, at: number): void {
  for (let e = 0; e < E; e++) {
    let s = 0;
    for (const r of rows) s += x[r * E + e]!;
    out[at + e] = s / rows.length;
  }
}

/**
 * Text features (N, E) of `promptTexts(classNames, templates, synonyms)` → class embeddings (T, P', E),
 * unit-norm along E: P' = 1 with `reduction` "mean", else P' = the template count `P`.
 */
export function classEmbeddingsFromFeatures(
  features: Float32Array,
  E: number,
  groups: readonly PromptGroup[],
  P: number,
  reduction: "mean" | "none",
): { data: Float32Array; shape: [number, number, number] } {
  const feats = features.slice();
  for (let r = 0; r < feats.length / E; r++) normalizeAt(feats, r * E, E);
  const Pout = reduction === "mean" ? 1 : P;
  const out = new Float32Array(groups.length * Pout * E);
  const perTemplate = new Float32Array(P * E);
  groups.forEach(({ start, synonyms: S }, t) => {
    for (let p = 0; p < P; p++) {
      // Rows of template p: start + p·S … + S − 1 (template-major, synonym-minor).
      const rows = Array.from({ length: S }, (_, s) => start + p * S + s);
      meanRows(feats, rows, E, perTemplate, p * E);
      if (S > 1) normalizeAt(perTemplate, p * E, E);
    }
    if (Pout === 1 && P > 1) {
      meanRows(
        perTemplate,
        Array.from({ length: P }, (_, p) => p),
        E,
        out,
        t * E,
      );
      normalizeAt(out, t * E, E);
    } else {
      out.set(perTemplate, t * Pout * E);
    }
  });
  return { data: out, shape: [groups.length, Pout, E] };
}
