// A parity fixture directory (format of test/fixtures/README.md): case.json + tensors.safetensors.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type AnyTypedArray, readRecord, type TensorRecord } from "../torch/io/records.js";
import { readSafetensorsIndex } from "../torch/io/safetensors-format.js";

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface Fixture {
  dir: string;
  /** The `case` field of case.json (what `dedos parity` dispatches on). */
  caseName: string;
  // biome-ignore lint/suspicious/noExplicitAny: case.json is free-form per case.
  json: any;
  /** Tensor records of tensors.safetensors by name (empty for JSON-only cases). */
  records: Map<string, TensorRecord>;
  tolerance: Tolerance;
  /** The file holding the tensors (the path real loaders open). */
  tensorsFile: string;
}

export function loadFixture(dir: string): Fixture {
  const jsonPath = join(dir, "case.json");
  if (!existsSync(jsonPath)) throw new Error(`${dir}: not a parity case directory (no case.json)`);
  const json = JSON.parse(readFileSync(jsonPath, "utf8"));
  const caseName = json.case;
  if (typeof caseName !== "string") throw new Error(`${jsonPath}: no "case" field`);
  const tensorsFile = join(dir, "tensors.safetensors");
  const records = existsSync(tensorsFile) ? readSafetensorsIndex(tensorsFile).records : new Map();
  const tol = json.tolerance ?? {};
  return {
    dir,
    caseName,
    json,
    records,
    tolerance: { atol: Number(tol.atol ?? 0), rtol: Number(tol.rtol ?? 0) },
    tensorsFile,
  };
}

/** Reads one fixture tensor into a typed array (throws naming the tensor if absent). */
export function fixtureArray(f: Fixture, name: string): AnyTypedArray {
  const rec = f.records.get(name);
  if (!rec) throw new Error(`${f.tensorsFile}: no tensor "${name}"`);
  return readRecord(rec);
}

/** One compared output: the worst elementwise error and whether it is inside the tolerance. */
export interface Comparison {
  name: string;
  maxAbsError: number;
  /** max over elements of |a−b| − (atol + rtol·|b|); ≤ 0 means within tolerance. */
  worstExcess: number;
  ok: boolean;
  note?: string;
}

/** Compares two equally long numeric arrays under |a − b| ≤ atol + rtol·|b|; NaN must match NaN. */
export function compareArrays(
  name: string,
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
  tol: Tolerance,
): Comparison {
  if (actual.length !== expected.length) {
    return {
      name,
      maxAbsError: Number.POSITIVE_INFINITY,
      worstExcess: Number.POSITIVE_INFINITY,
      ok: false,
      note: `length ${actual.length} vs expected ${expected.length}`,
    };
  }
  let maxAbs = 0;
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const b = Number(expected[i]);
    if (Number.isNaN(b) || Number.isNaN(a)) {
      if (Number.isNaN(a) !== Number.isNaN(b)) {
        return {
          name,
          maxAbsError: Number.NaN,
          worstExcess: Number.POSITIVE_INFINITY,
          ok: false,
          note: `NaN mismatch at index ${i}`,
        };
      }
      continue;
    }
    const d = Math.abs(a - b);
    if (d > maxAbs) maxAbs = d;
    const ex = d - (tol.atol + tol.rtol * Math.abs(b));
    if (ex > worst) worst = ex;
  }
  if (actual.length === 0) worst = 0;
  return { name, maxAbsError: maxAbs, worstExcess: worst, ok: worst <= 0 };
}
