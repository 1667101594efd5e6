// `npm run bench` / `make bench`: dedos against PyTorch at its best, in one table of ratios (bench/harness.ts:
// each engine in its own process, engines alternated round after round, noisy rounds flagged and left out,
// ranges of per-round medians, minor page faults per call and each engine's peak RSS). Also written as JSON to
// bench/results/latest.json. The single-topic benches of this folder run after it on request.
//   node dist/bench/run.js [case...] [--rounds N] [--extra-rounds N] [--quick] [--threads N] [--engines a,b]
//     [--bench name,...] [--all]
//   case: a case id or part of one (matmul, conv, tiny-op, vit-fwd, vit-fwd-bwd, clip-vision, clip-text, segment-image, unet;
//     "clip" = both CLIP rows); default all. --rounds: quiet rounds wanted (default 5); --extra-rounds: how
//     many more may run to replace noisy ones (default as many). --quick: 2 rounds, no extra, fewer calls.
//     --engines: a subset of dedos, pytorch-pinned, pytorch-auto, onnxruntime (matmul only). --bench:
//     single-topic benches to run afterwards, each in a process of its own (engine, clip, diffusion, segment,
//     segmenter, dedos, train, eval); --all: every one of them.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CASES } from "./cases.js";
import { defaultEngines, enginesFor, NOISY_SHARE, ROOT, runCase } from "./harness.js";
import { type CaseReport, caseReport, printTable } from "./table.js";

/** The single-topic benches, cheapest first (dedos and train need full-size random weights: minutes, GB). */
const SINGLE = ["engine", "clip", "diffusion", "segment", "segmenter", "dedos", "train", "eval"];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string" },
    "extra-rounds": { type: "string" },
    quick: { type: "boolean", default: false },
    threads: { type: "string", default: "2" },
    engines: { type: "string" },
    bench: { type: "string" },
    all: { type: "boolean", default: false },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds ?? (values.quick ? 2 : 5));
/** Rounds run on top of `rounds` to replace noisy ones (none with --quick). */
const extraRounds = Number(values["extra-rounds"] ?? (values.quick ? 0 : rounds));
const cases = CASES.filter((c) => positionals.length === 0 || positionals.some((p) => c.id.includes(p)));
const unknown = positionals.filter((p) => !CASES.some((c) => c.id.includes(p)));
const singles = values.all ? SINGLE : (values.bench?.split(",").filter(Boolean) ?? []);
const badSingles = singles.filter((s) => !SINGLE.includes(s));
if (unknown.length > 0 || badSingles.length > 0 || !(rounds >= 1) || !(extraRounds >= 0)) {
  console.error(
    `bench: unknown ${[...unknown, ...badSingles].join(", ") || `--rounds ${values.rounds}`} ` +
      `(cases: ${CASES.map((c) => c.id).join(", ")}; benches: ${SINGLE.join(", ")})`,
  );
  process.exit(2);
}
const engines = defaultEngines(threads).filter(
  (e) => !values.engines || values.engines.split(",").includes(e.id),
);

const reports: CaseReport[] = [];
if (positionals.length > 0 || singles.length === 0) {
  for (const c of cases) {
    const reps = values.quick ? c.reps.quick : c.reps.full;
    const ids = enginesFor(c, engines).map((e) => e.id);
    console.log(`${c.title}: ${ids.join(", ")}, ${rounds} round(s) of ${reps} call(s)`);
    const results = await runCase(c, engines, {
      threads,
      rounds,
      extraRounds,
      reps,
      log: (s) => console.log(s),
    });
    for (const r of results) if (r.error) console.error(`  ${r.engine} failed: ${r.error}`);
    reports.push(caseReport(c, results));
  }
  printTable(reports, { threads, rounds, extraRounds });
  mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
  const file = join(ROOT, "bench", "results", "latest.json");
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        threads,
        rounds,
        extraRounds,
        quick: values.quick,
        noisyShare: NOISY_SHARE,
        engines: engines.map((e) => ({ id: e.id, command: e.command, args: e.args })),
        cases: reports,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwritten to ${file}`);
}

let failed = reports.some((r) => r.errors.length > 0) ? 1 : 0;
for (const name of singles) {
  console.log(`\n=== bench/${name} ===`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(ROOT, "dist", "bench", `${name}.js`)], {
    stdio: "inherit",
    cwd: ROOT,
  });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
