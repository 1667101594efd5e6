// `npm run bench` / `make bench`: every benchmark of this folder in turn, each in a process of its own (so
// one bench's allocator and thread state cannot flatter the next), each printing its table of ratios
// against PyTorch on the same machine. Usage: node dist/bench/run.js [name...] (default: all, in order).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Cheapest first; full-size needs real-size random weights (minutes and several GB). */
const BENCHES = [
  "engine",
  "clip",
  "diffusion",
  "segment",
  "segmenter",
  "dedos",
  "train",
  "eval",
  "full-size",
];

const here = dirname(fileURLToPath(import.meta.url));
const asked = process.argv.slice(2);
const unknown = asked.filter((n) => !BENCHES.includes(n));
if (unknown.length > 0) {
  console.error(`bench: unknown ${unknown.join(", ")} (known: ${BENCHES.join(", ")})`);
  process.exit(2);
}
let failed = 0;
for (const name of asked.length > 0 ? asked : BENCHES) {
  console.log(`\n=== bench/${name} ===`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, `${name}.js`)], { stdio: "inherit" });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
