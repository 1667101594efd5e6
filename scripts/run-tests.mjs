// Runs every compiled test file (dist/test/**/*.test.js) with Node's built-in test runner.
// Usage: node scripts/run-tests.mjs [substring-filter...]
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("dist/test")
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error("no test files found under dist/test (did the build run?)");
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--expose-gc", "--test", "--test-concurrency=1", ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
