// Opt-in (DEDOS_SLOW_TESTS=1; minutes and ~11 GB): the full-size ViT-B CAT-Seg with random weights, exported
// by the CLI in float32 and float16, checked by the export itself against libtorch (≤ 1e-4) and, for
// float16, within the stated bound of the float32 model.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../temp-dir.js";

const slow = process.env.DEDOS_SLOW_TESTS === "1";

describe("dedos export (full-size ViT-B, random weights)", {
  skip: !slow && "set DEDOS_SLOW_TESTS=1",
}, () => {
  for (const fp16 of [false, true]) {
    it(fp16 ? "float16 weights" : "float32 weights", () => {
      const out = join(tempDir("dedos-export-vitb-"), "out");
      const args = ["export", "--weights", "random", "--config", "vitb_384", "--out", out];
      const r = spawnSync(process.execPath, ["dist/src/cli/main.js", ...args, ...(fp16 ? ["--fp16"] : [])], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr + r.stdout);
      const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
      for (const [file, v] of Object.entries(m.verified) as [
        string,
        { maxAbsError: number; vsFloat32?: { maxAbsError: number; maxAbs: number } },
      ][]) {
        assert.ok(v.maxAbsError <= 1e-4, `${file}: ${v.maxAbsError}`);
        if (fp16) assert.ok(v.vsFloat32!.maxAbsError <= 1e-2 * Math.max(1, v.vsFloat32!.maxAbs), file);
      }
    });
  }
});
