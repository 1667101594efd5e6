// `dedos parity`: runs fixture directories against the TypeScript modules, dispatching on case.json's `case`.
import type { Comparison, Fixture } from "./fixture.js";
import { loadFixture } from "./fixture.js";

type CaseRunner = (f: Fixture) => Comparison[] | Promise<Comparison[]>;

// Runners are imported lazily so that a case needing a large module does not slow the others down.
const RUNNERS: Record<string, () => Promise<CaseRunner>> = {
  tokenizer: async () => (await import("./cases/tokenizer.js")).runTokenizerCase,
  semseg_eval: async () => (await import("./cases/semseg-eval.js")).runSemsegEvalCase,
  clip_text: async () => (await import("./cases/clip.js")).runClipTextCase,
  clip_vision: async () => (await import("./cases/clip.js")).runClipVisionCase,
  catseg_aggregator: async () => (await import("./cases/catseg.js")).runCatsegAggregatorCase,
  catseg_aggregator_topk: async () => (await import("./cases/catseg.js")).runCatsegAggregatorCase,
  sd_vae_encoder: async () => (await import("./cases/diffusion.js")).runVaeEncoderCase,
  sd_vae_decoder: async () => (await import("./cases/diffusion.js")).runVaeDecoderCase,
  sd_unet: async () => (await import("./cases/diffusion.js")).runUnetCase,
};

export function knownCases(): string[] {
  return Object.keys(RUNNERS).sort();
}

export interface CaseResult {
  dir: string;
  caseName: string;
  comparisons: Comparison[];
  ok: boolean;
  error?: string;
}

export async function runParityCase(dir: string): Promise<CaseResult> {
  let f: Fixture;
  try {
    f = loadFixture(dir);
  } catch (e) {
    return { dir, caseName: "?", comparisons: [], ok: false, error: describeError(dir, e) };
  }
  const get = RUNNERS[f.caseName];
  if (!get) {
    return {
      dir,
      caseName: f.caseName,
      comparisons: [],
      ok: false,
      error: `unknown case '${f.caseName}' (known: ${knownCases().join(", ")})`,
    };
  }
  try {
    const comparisons = await (await get())(f);
    const ok = comparisons.length > 0 && comparisons.every((c) => c.ok);
    return {
      dir,
      caseName: f.caseName,
      comparisons,
      ok,
      error: comparisons.length === 0 ? "the case compared nothing" : undefined,
    };
  } catch (e) {
    return { dir, caseName: f.caseName, comparisons: [], ok: false, error: describeError(dir, e) };
  }
}

/**
 * One line for an error of a case: its message, led by the case directory unless it names it already. An
 * error of the program rather than of the fixture (TypeError, RangeError, …) also gets the place it was thrown
 * at, for a bug report; never the whole stack.
 */
export function describeError(dir: string, e: unknown): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const named = err.message.includes(dir) ? err.message : `${dir}: ${err.message}`;
  if (!(err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError)) return named;
  const frame = err.stack
    ?.split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith("at "));
  return `${named} (${err.name}${frame ? ` ${frame}` : ""})`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

/** Prints one line per compared output and a summary; returns true when everything passed. */
export async function runParity(dirs: string[], log: (s: string) => void = console.log): Promise<boolean> {
  let allOk = true;
  let n = 0;
  let failed = 0;
  for (const dir of dirs) {
    const r = await runParityCase(dir);
    log(`${r.ok ? "PASS" : "FAIL"} ${r.caseName} (${dir})`);
    if (r.error) log(`  error: ${r.error}`);
    for (const c of r.comparisons) {
      n++;
      if (!c.ok) failed++;
      log(
        `  ${c.ok ? "ok  " : "MISS"} ${c.name}: max abs error ${fmt(c.maxAbsError)}${c.ok ? "" : ` (exceeds tolerance by ${fmt(c.worstExcess)})`}${c.note ? ` — ${c.note}` : ""}`,
      );
    }
    allOk &&= r.ok;
  }
  log(
    `parity: ${dirs.length} case(s), ${n} output(s) compared, ${failed} outside tolerance — ${allOk ? "all passed" : "FAILED"}`,
  );
  return allOk;
}
