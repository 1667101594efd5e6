// bench/run.ts's table: per case, each engine's range of per-round medians, the best PyTorch (the faster of
// OpenBLAS pinned / auto-detected), dedos ÷ best PyTorch round by round, page faults per call and peak RSS.
import type { BenchCase } from "./cases.js";
import { type EngineResult, ratioRange, roundRange } from "./harness.js";

type Range = { min: number; max: number; mid: number };

export interface EngineSummary {
  /** min–max (and median) of the per-round medians over quiet rounds, ms. */
  range: (Range & { quiet: number }) | null;
  rounds: number;
  noisyRounds: number;
  /** Median over rounds of the median minor page faults per call. */
  faultsPerCall: number | null;
  peakRssMb: number | null;
  setupMs: number | null;
  info: unknown;
  error: string | null;
  perRound: EngineResult["rounds"];
}

export interface CaseReport {
  id: string;
  title: string;
  gflop: number | null;
  engines: Record<string, EngineSummary>;
  /** The faster PyTorch engine (by the median of its per-round medians), or null without PyTorch. */
  bestPytorch: string | null;
  /** dedos ÷ best PyTorch, round by round. */
  ratio: Range | null;
  /** Median over every engine's rounds of the CPU other processes took (1 = one core busy). */
  othersCores: number | null;
  errors: string[];
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

export function caseReport(c: BenchCase, results: EngineResult[]): CaseReport {
  const engines: Record<string, EngineSummary> = {};
  for (const r of results)
    engines[r.engine] = {
      range: roundRange(r.rounds),
      rounds: r.rounds.length,
      noisyRounds: r.rounds.filter((x) => x.noisy).length,
      faultsPerCall: r.rounds.length ? med(r.rounds.map((x) => x.faultsPerCall)) : null,
      peakRssMb: r.rounds.length > 0 ? r.peakRssMb : null, // a failed engine's peak is not the case's
      setupMs: r.setupMs,
      info: r.info,
      error: r.error ?? null,
      perRound: r.rounds,
    };
  const pytorch = results.filter((r) => r.engine.startsWith("pytorch") && engines[r.engine]!.range);
  const best = pytorch.length
    ? pytorch.reduce((a, b) => (engines[b.engine]!.range!.mid < engines[a.engine]!.range!.mid ? b : a))
    : null;
  const dedos = results.find((r) => r.engine === "dedos");
  return {
    id: c.id,
    title: c.title,
    gflop: c.gflop ?? null,
    engines,
    bestPytorch: best?.engine ?? null,
    ratio: best && dedos ? ratioRange(dedos.rounds, best.rounds) : null,
    othersCores: (() => {
      const all = results.flatMap((r) => r.rounds.map((x) => x.othersShare));
      return all.length ? med(all) : null;
    })(),
    errors: results.filter((r) => r.error).map((r) => `${r.engine}: ${r.error}`),
  };
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms < 1000 ? ms.toFixed(1) : ms.toFixed(0);
}

function rangeText(r: Range | null | undefined, digits?: number): string {
  if (!r) return "—";
  const f = digits === undefined ? fmt : (x: number) => x.toFixed(digits);
  return f(r.min) === f(r.max) ? f(r.min) : `${f(r.min)}–${f(r.max)}`;
}

/** "quiet/total" rounds, with a mark when every round was noisy (then the range covers noisy rounds). */
function roundsText(s: EngineSummary | undefined): string {
  if (!s) return "—";
  return `${s.rounds - s.noisyRounds}/${s.rounds}${s.rounds > 0 && s.noisyRounds === s.rounds ? "!" : ""}`;
}

const n0 = (x: number | null | undefined) => (x === null || x === undefined ? "—" : x.toFixed(0));

/** Prints the markdown table of all cases and its legend. */
export function printTable(
  reports: CaseReport[],
  o: { threads: number; rounds: number; extraRounds: number },
): void {
  const ids = ["dedos", "pytorch-pinned", "pytorch-auto", "onnxruntime"];
  console.log(
    `\nbench/run — dedos vs PyTorch 1.13 at its best, ${o.threads} thread(s), fp32, alternated rounds ` +
      `(${o.rounds} quiet wanted, up to ${o.rounds + o.extraRounds}); ms = min–max of per-round medians over ` +
      "quiet rounds",
  );
  console.log(
    "| case | dedos ms | best PyTorch ms | PyTorch pinned ms | PyTorch auto ms | onnxruntime ms | " +
      "dedos ÷ best PyTorch | faults/call dedos · pinned · auto · ort | peak RSS MB dedos · pinned · auto · ort | " +
      "quiet rounds dedos · pinned · auto · ort | others' CPU (cores) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of reports) {
    const e = (id: string) => r.engines[id];
    const best = r.bestPytorch ? e(r.bestPytorch) : undefined;
    const bestText = best ? `${rangeText(best.range)} (${r.bestPytorch!.replace("pytorch-", "")})` : "—";
    const cells = [
      r.title,
      rangeText(e("dedos")?.range),
      bestText,
      rangeText(e("pytorch-pinned")?.range),
      rangeText(e("pytorch-auto")?.range),
      rangeText(e("onnxruntime")?.range),
      rangeText(r.ratio, 2),
      ids.map((id) => n0(e(id)?.faultsPerCall)).join(" · "),
      ids.map((id) => n0(e(id)?.peakRssMb)).join(" · "),
      ids.map((id) => roundsText(e(id))).join(" · "),
      r.othersCores === null ? "—" : r.othersCores.toFixed(2),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  console.log(
    "\nratio < 1: dedos faster. Rounds are noisy when other processes took > 10 % of a core during them " +
      "('!': all rounds noisy, range over all; others' CPU: median over all rounds). pinned: OPENBLAS_CORETYPE as in this environment; " +
      "auto: unset (OpenBLAS detects the CPU). Peak RSS: VmHWM of the engine's own process (one case each).",
  );
  for (const r of reports)
    for (const err of r.errors) console.log(`error: ${r.title}: ${err.split("\n")[0]}`);
}
