// A parity fixture directory (format of test/fixtures/README.md): case.json + tensors.safetensors.
import { existsSync, readFileSync, statSync } from "node:fs";
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

/** The JSON types a case.json field can be required to have. */
type FieldKind = "object" | "array" | "string" | "number";

/**
 * The fields each case reads from case.json, checked before it runs so that a field that is missing or of the
 * wrong type is reported by name ("<dir>/case.json: missing field \"config\"") instead of failing inside the
 * case. A path is dotted; "[]" stands for every element of an array, "*" for every value of an object.
 */
export const CASE_FIELDS: Readonly<Record<string, ReadonlyArray<readonly [path: string, kind: FieldKind]>>> =
  {
    tokenizer: [
      ["vectors", "array"],
      ["vectors[]", "object"],
      ["vectors[].text", "string"],
      ["vectors[].ids", "array"],
    ],
    semseg_eval: [
      ["variants", "object"],
      ["variants.*", "object"],
      ["variants.*.num_classes", "number"],
      ["variants.*.ignore_label", "number"],
      ["variants.*.num_images", "number"],
      ["variants.*.results", "object"],
    ],
    clip_text: [["config", "object"]],
    clip_vision: [["config", "object"]],
    catseg_aggregator: [["config", "object"]],
    catseg_aggregator_topk: [["config", "object"]],
    sd_vae_encoder: [["config", "object"]],
    sd_vae_decoder: [["config", "object"]],
    sd_unet: [
      ["config", "object"],
      ["scheduler", "object"],
      ["scheduler.dedos", "object"],
    ],
  };

function kindOf(v: unknown): string {
  return v === null
    ? "null"
    : Array.isArray(v)
      ? "an array"
      : typeof v === "object"
        ? "an object"
        : `a ${typeof v}`;
}

function isKind(v: unknown, kind: FieldKind): boolean {
  if (kind === "array") return Array.isArray(v);
  if (kind === "object") return typeof v === "object" && v !== null && !Array.isArray(v);
  return typeof v === kind;
}

/** Every value at a CASE_FIELDS path, with the concrete path ("vectors[2].ids") it sits at. */
function valuesAt(root: unknown, path: string): { at: string; value: unknown; present: boolean }[] {
  let found: { at: string; value: unknown; present: boolean }[] = [{ at: "", value: root, present: true }];
  for (const step of path.split(".")) {
    const each = step.endsWith("[]");
    const key = each ? step.slice(0, -2) : step;
    const next: typeof found = [];
    for (const f of found) {
      const base = f.at ? `${f.at}.` : "";
      if (typeof f.value !== "object" || f.value === null) {
        next.push({ at: `${base}${key}`, value: undefined, present: false });
        continue;
      }
      const obj = f.value as Record<string, unknown>;
      if (key === "*") {
        for (const [k, v] of Object.entries(obj)) next.push({ at: `${base}${k}`, value: v, present: true });
        continue;
      }
      const present = Object.hasOwn(obj, key);
      const v = obj[key];
      if (each && Array.isArray(v))
        v.forEach((x, i) => {
          next.push({ at: `${base}${key}[${i}]`, value: x, present: true });
        });
      else next.push({ at: `${base}${key}`, value: v, present });
    }
    found = next;
  }
  return found;
}

/** Throws naming `jsonPath` and the field when `json` lacks a field the case reads (see CASE_FIELDS). */
export function checkCaseFields(jsonPath: string, caseName: string, json: Record<string, unknown>): void {
  for (const [path, kind] of CASE_FIELDS[caseName] ?? []) {
    // Parents come first in CASE_FIELDS, so by now every parent is there with its type.
    for (const { at, value, present } of valuesAt(json, path)) {
      if (!present || value === undefined)
        throw new Error(`${jsonPath}: missing field "${at}" (the ${caseName} case reads it)`);
      if (!isKind(value, kind))
        throw new Error(
          `${jsonPath}: field "${at}" is ${kindOf(value)}, expected ${kind === "array" ? "an array" : kind === "object" ? "an object" : `a ${kind}`}`,
        );
    }
  }
}

/**
 * Reads a fixture directory. Errors name the file: no case.json, case.json not JSON, not an object, or
 * missing a field its case reads (`<dir>/case.json: missing field "X"`), tensors.safetensors unreadable.
 */
export function loadFixture(dir: string): Fixture {
  const jsonPath = join(dir, "case.json");
  if (!existsSync(jsonPath)) throw new Error(`${dir}: not a parity case directory (no case.json)`);
  if (statSync(jsonPath).isDirectory()) throw new Error(`${jsonPath}: is a directory, not a file (EISDIR)`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(jsonPath, "utf8"));
  } catch (e) {
    throw new Error(`${jsonPath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new Error(`${jsonPath}: expected a JSON object, got ${kindOf(json)}`);
  const obj = json as Record<string, unknown>;
  const caseName = obj.case;
  if (caseName === undefined) throw new Error(`${jsonPath}: missing field "case" (the case to run)`);
  if (typeof caseName !== "string")
    throw new Error(`${jsonPath}: field "case" is ${kindOf(caseName)}, expected a string`);
  checkCaseFields(jsonPath, caseName, obj);
  const tensorsFile = join(dir, "tensors.safetensors");
  let records = new Map<string, TensorRecord>();
  if (existsSync(tensorsFile)) {
    try {
      records = readSafetensorsIndex(tensorsFile).records;
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.includes(tensorsFile) ? msg : `${tensorsFile}: ${msg}`);
    }
  }
  const tol = (obj.tolerance ?? {}) as { atol?: unknown; rtol?: unknown };
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
