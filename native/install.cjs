// `npm install dedos` runs this: builds the native addon against the libtorch config.cjs finds ($LIBTORCH,
// else the system's). Without libtorch the install still succeeds: it prints what is missing and how to get
// it, and every command that needs the engine says the same when run. A failing compile does fail the
// install (something is wrong that the user must see). node-gyp is npm's own copy (npm_config_node_gyp),
// else the one in node_modules.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const { resolveLibtorch, describe } = require("./config.cjs");

const here = __dirname;
if (process.env.DEDOS_SKIP_NATIVE === "1") {
  console.log("dedos: DEDOS_SKIP_NATIVE=1, the native addon was not built");
  process.exit(0);
}
const t = resolveLibtorch();
if (t instanceof Error) {
  console.warn(`dedos: ${t.message}`);
  process.exit(0);
}
let gyp = process.env.npm_config_node_gyp;
if (!gyp) {
  try {
    gyp = require.resolve("node-gyp/bin/node-gyp.js");
  } catch {
    console.warn("dedos: node-gyp was not found (it ships with npm); the native addon was not built");
    process.exit(0);
  }
}
console.log(`dedos: building the native addon against ${describe(t)} (about two minutes)`);
const jobs = String(Math.max(1, Math.min(4, require("node:os").availableParallelism())));
const r = spawnSync(process.execPath, [gyp, "rebuild", "--directory", here, "-j", jobs], {
  stdio: "inherit",
  cwd: path.dirname(here),
});
process.exit(r.status ?? 1);
