// `dedos export` from the command line, end to end on a tiny random CAT-Seg config.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const cli = (args: string[]) =>
  spawnSync(process.execPath, ["dist/src/cli/main.js", ...args], { encoding: "utf8" });

describe("dedos export (CLI)", () => {
  it("exports random tiny CAT-Seg weights into a checked folder", () => {
    const dir = tempDir("dedos-export-cli-");
    const config = join(dir, "tiny.json");
    writeFileSync(config, JSON.stringify(TINY_CATSEG));
    const out = join(dir, "out");
    const r = cli(["export", "--weights", "random", "--config", config, "--kernel", "64", "--out", out]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /view: classes = 7 \(random\): max \|onnxruntime − libtorch\| = /);
    assert.match(r.stdout, /exported catseg \(float32 weights\) to /);
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    assert.equal(m.format, "dedos-onnx");
    assert.equal(m.view.kernel, 64);
    assert.ok(existsSync(join(out, "text.onnx")) && existsSync(join(out, "view.onnx")));
  });

  it("refuses missing arguments and unknown architectures", () => {
    assert.equal(cli(["export", "--weights", "random"]).status, 2);
    assert.equal(cli(["export", "--weights", "random", "--out", "x", "--arch", "vit"]).status, 2);
    assert.match(cli(["export", "--help"]).stdout, /dedos export/);
  });
});
