// A real `dedos export` of a tiny random CAT-Seg for the end-to-end tests: weights saved as safetensors (so the
// libtorch Segmenter loads exactly what was exported), the config as JSON, the export run through the CLI.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CatSegConfig } from "../../src/catseg/config.js";
import type { CatSegModel } from "../../src/catseg/model.js";
import { catsegStateDict } from "../../src/catseg/weights.js";
import { createModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

export interface TinyExport {
  /** The export folder. */
  dir: string;
  weights: string;
  config: CatSegConfig;
}

/** Exports a tiny random CAT-Seg (seed `seed`); throws with the CLI's output when the export fails. */
export function exportTinyCatSeg(seed = 3): TinyExport {
  const work = tempDir("dedos-export-e2e-");
  const weights = join(work, "tiny.safetensors");
  const configFile = join(work, "tiny.json");
  const model = createModel({ arch: "catseg", config: TINY_CATSEG, weights: "random", seed });
  saveSafetensors(weights, catsegStateDict(model as CatSegModel));
  model.dispose();
  writeFileSync(configFile, JSON.stringify(TINY_CATSEG));
  const dir = join(work, "export");
  const cli = join(PACKAGE_ROOT, "dist/src/cli/main.js");
  const r = spawnSync(
    process.execPath,
    [cli, "export", "--weights", weights, "--config", configFile, "--arch", "catseg", "--out", dir],
    { encoding: "utf8", timeout: 300_000 },
  );
  if (r.status !== 0) throw new Error(`dedos export failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { dir, weights, config: TINY_CATSEG };
}
