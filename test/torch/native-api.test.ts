import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { addonPath, defaultNumThreads, engineStatus, loadAddon, native } from "../../src/torch/native.js";
import { NATIVE_OPS } from "../../src/torch/native-api.js";

const INDEX = fileURLToPath(new URL("../../src/torch/index.js", import.meta.url));

/** Runs `code` (an ES module body with `m` = dedos/torch) in a fresh Node with `env` added; returns stdout. */
function runWithTorch(code: string, env: Record<string, string | undefined>): string {
  const script = `const m = await import(${JSON.stringify(INDEX)});\n${code}`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
  return r.stdout.trim();
}

describe("native addon interface", () => {
  it("NATIVE_OPS (the NativeAddon interface) and the built addon's exports are the same set of functions", () => {
    assert.equal(new Set(NATIVE_OPS).size, NATIVE_OPS.length, "NATIVE_OPS lists a name twice");
    const addon = loadAddon() as unknown as Record<string, unknown>;
    const exported = Object.keys(addon);
    const declared = new Set<string>(NATIVE_OPS);
    const undeclared = exported.filter((k) => !declared.has(k));
    const absent = NATIVE_OPS.filter((op) => !(op in addon));
    assert.deepEqual(
      undeclared,
      [],
      "exported by native/src/*.cpp but not declared in src/torch/native-api.ts",
    );
    assert.deepEqual(absent, [], "declared in src/torch/native-api.ts but not exported by the addon");
    for (const k of exported) assert.equal(typeof addon[k], "function", `${k} is not a function`);
  });

  it("after loading, `native` holds the addon's own functions (no stub in between)", () => {
    const addon = loadAddon();
    for (const op of NATIVE_OPS) assert.equal(native[op], addon[op], op);
  });

  it("loading applies the default thread count", () => {
    loadAddon();
    assert.equal(native.getNumThreads(), defaultNumThreads());
    assert.equal(runWithTorch("console.log(m.getNumThreads());", { DEDOS_NUM_THREADS: "1" }), "1");
    const all = runWithTorch("console.log(m.getNumThreads());", { DEDOS_NUM_THREADS: undefined });
    assert.equal(Number(all), availableParallelism());
  });

  it("engineStatus reports a loaded engine", () => {
    assert.deepEqual(engineStatus(), { loaded: true, addonPath: addonPath() });
  });
});

describe("native addon loading", () => {
  const probe = `
const s = m.engineStatus();
let thrown = "";
try { m.zeros([1]); } catch (e) { thrown = e.message; }
console.log(JSON.stringify({ keys: Object.keys(m).length, status: s, thrown }));`;

  function probeWith(path: string) {
    return JSON.parse(runWithTorch(probe, { DEDOS_NATIVE_ADDON: path })) as {
      keys: number;
      status: { loaded: boolean; error?: string; addonPath: string };
      thrown: string;
    };
  }

  it("importing dedos/torch needs no addon; the first op says the addon is not built and how to build it", () => {
    const missing = join(tmpdir(), "dedos-no-such-dir", "dedos_native.node");
    const r = probeWith(missing);
    assert.ok(r.keys > 50, "the module imports");
    assert.equal(r.status.loaded, false);
    assert.equal(r.status.addonPath, missing);
    assert.equal(r.thrown, r.status.error);
    assert.match(r.thrown, /native addon .*dedos_native\.node is not built/);
    assert.match(r.thrown, /npm run build:native/);
    assert.match(r.thrown, /make setup/);
    assert.match(r.thrown, /apt install libtorch-dev libopenblas0-openmp libgloo-dev/);
    assert.match(r.thrown, /LIBTORCH=\/path\/to\/libtorch/);
    assert.doesNotMatch(r.thrown, /\n/, "one paragraph");
  });

  it("a missing libtorch shared library is named, with the loader's message", () => {
    const bytes = readFileSync(addonPath());
    const needed = /libtorch_cpu\.so[\w.]*/.exec(bytes.toString("latin1"))?.[0];
    if (!needed) return; // a libtorch without a separate libtorch_cpu: nothing to rename
    const renamed = needed.replace("libtorch_cpu", "libtorch_cpX");
    const dir = mkdtempSync(join(tmpdir(), "dedos-addon-"));
    try {
      const path = join(dir, "dedos_native.node");
      const patched = Buffer.from(bytes.toString("latin1").replaceAll(needed, renamed), "latin1");
      writeFileSync(path, patched);
      const r = probeWith(path);
      assert.equal(r.status.loaded, false);
      assert.match(r.thrown, /cannot find libtorch \(libtorch_cpX\.so/);
      assert.ok(r.thrown.includes(`${renamed}: cannot open shared object file`), r.thrown);
      assert.match(r.thrown, /npm run build:native/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an addon file that does not load is reported with the loader's message", () => {
    const dir = mkdtempSync(join(tmpdir(), "dedos-addon-"));
    try {
      const path = join(dir, "dedos_native.node");
      writeFileSync(path, "not a shared object");
      const r = probeWith(path);
      assert.equal(r.status.loaded, false);
      assert.match(r.thrown, /could not be loaded \(".*"\)/);
      assert.match(r.thrown, /LIBTORCH=\/path\/to\/libtorch/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
