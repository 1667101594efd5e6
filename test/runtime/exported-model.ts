// A real `dedos export` of a tiny random model for the end-to-end tests: weights saved to a file (so the
// libtorch Segmenter loads exactly what was exported), the config as JSON, the export run through the CLI.
// CAT-Seg, or DEDOS with static proxy queries (no Stable Diffusion).
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CatSegConfig } from "../../src/catseg/config.js";
import type { CatSegModel } from "../../src/catseg/model.js";
import { catsegStateDict } from "../../src/catseg/weights.js";
import type { DedosConfig } from "../../src/dedos/config.js";
import type { DedosModel } from "../../src/dedos/model.js";
import { createModel, saveModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG, tinyDedosConfig } from "../tiny-models.js";

export interface TinyExport {
  /** The export folder. */
  dir: string;
  weights: string;
  config: CatSegConfig | DedosConfig;
}

/** Exports a tiny random CAT-Seg or DEDOS (seed `seed`); throws with the CLI's output when the export fails. */
export function exportTiny(arch: "catseg" | "dedos", seed = 3): TinyExport {
  const work = tempDir("dedos-export-e2e-");
  const weights = join(work, "tiny.safetensors");
  const configFile = join(work, "tiny.json");
  const config =
    arch === "catseg"
      ? TINY_CATSEG
      : tinyDedosConfig((c) => {
          c.proxy.conditioning = "static";
          c.consistency.enabled = false;
        });
  const model = createModel({ arch, config, weights: "random", seed });
  if (arch === "catseg") saveSafetensors(weights, catsegStateDict(model as CatSegModel));
  else saveModel(model as DedosModel, weights);
  model.dispose();
  writeFileSync(configFile, JSON.stringify(config));
  const dir = join(work, "export");
  const cli = join(PACKAGE_ROOT, "dist/src/cli/main.js");
  const r = spawnSync(
    process.execPath,
    [cli, "export", "--weights", weights, "--config", configFile, "--arch", arch, "--out", dir],
    { encoding: "utf8", timeout: 300_000 },
  );
  if (r.status !== 0) throw new Error(`dedos export failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { dir, weights, config };
}
