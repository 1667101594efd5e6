// The comparison side of every tensor parity case: our tensors against the fixture's arrays under the case's
// tolerance, and a failure for every `outputs.*` tensor that no code compared (a new fixture output must
// never pass silently).
import { tensorFromRecord } from "../torch/io/load.js";
import { noGrad, type Tensor, tidy } from "../torch/tensor.js";
import { type Comparison, compareArrays, type Fixture, fixtureArray, type Tolerance } from "./fixture.js";

function failure(name: string, note: string): Comparison {
  return { name, maxAbsError: Number.NaN, worstExcess: Number.POSITIVE_INFINITY, ok: false, note };
}

export class Checker {
  readonly results: Comparison[] = [];
  private readonly seen = new Set<string>();
  constructor(private readonly f: Fixture) {}

  has(name: string): boolean {
    return this.f.records.has(name);
  }

  /** Compares `actual` with fixture tensor `name` (undefined: the model did not produce it — a failure). */
  check(name: string, actual: Tensor | undefined, o: { tol?: Tolerance; note?: string } = {}): void {
    this.seen.add(name);
    const rec = this.f.records.get(name);
    if (!rec) return void this.results.push(failure(name, "not in the fixture"));
    if (!actual) return void this.results.push(failure(name, "not produced by the TypeScript model"));
    if (rec.shape.join(",") !== actual.shape.join(",")) {
      return void this.results.push(
        failure(name, `shape [${actual.shape.join(", ")}], expected [${rec.shape.join(", ")}]`),
      );
    }
    const got = tidy(() =>
      actual.dtype === "int64" ? Float64Array.from(actual.toArray()) : actual.contiguous().toFloat32Array(),
    );
    const c = compareArrays(name, got, fixtureArray(this.f, name), o.tol ?? this.f.tolerance);
    if (o.note) c.note = c.note ? `${c.note}; ${o.note}` : o.note;
    this.results.push(c);
  }

  /** Compares `name` only when the fixture has it (the held-out split may omit some intermediates). */
  checkIfPresent(name: string, actual: () => Tensor, o: { note?: string } = {}): void {
    if (this.has(name)) this.check(name, tidy(actual), o);
  }

  /** Every fixture tensor `<prefix><path>` against `recorded.get(path)`. */
  checkRecorded(prefix: string, recorded: Map<string, Tensor>): void {
    for (const name of this.f.records.keys()) {
      if (name.startsWith(prefix)) this.check(name, recorded.get(name.slice(prefix.length)));
    }
  }

  fail(name: string, note: string): void {
    this.seen.add(name);
    this.results.push(failure(name, note));
  }

  finish(): Comparison[] {
    for (const name of this.f.records.keys()) {
      if (name.startsWith("outputs.") && !this.seen.has(name))
        this.results.push(failure(name, "output not compared"));
    }
    return this.results;
  }
}

/** A fixture tensor (an input) mapped from the file. */
export function fixtureTensor(f: Fixture, name: string): Tensor {
  const rec = f.records.get(name);
  if (!rec) throw new Error(`${f.tensorsFile}: no tensor "${name}"`);
  return tensorFromRecord(rec);
}

/**
 * A case's usual frame: `body` compares outputs through a Checker, without gradients and inside one scope;
 * the model is freed afterwards, whether the comparisons ran or threw.
 */
export function checkModel<M extends { dispose(): void }>(
  f: Fixture,
  model: M,
  body: (c: Checker, model: M) => void,
): Comparison[] {
  try {
    const c = new Checker(f);
    noGrad(() => tidy(() => body(c, model)));
    return c.finish();
  } finally {
    model.dispose();
  }
}
