// The effective config of a run: saved as <out>/config.json at the start (rank 0), and printed with the
// parameter counts and the process layout before the first step.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../../util/fs.js";
import type { TrainConfig } from "../config.js";
import type { Hook } from "../loop.js";
import { writingFile } from "../run-folder.js";

/** Writes `<out>/config.json` (creating `out`). */
export function saveEffectiveConfig(out: string, config: TrainConfig): void {
  const file = join(out, "config.json");
  writingFile(file, () => {
    mkdirSync(out, { recursive: true });
    writeFileAtomicSync(file, Buffer.from(`${JSON.stringify(config, null, 2)}\n`));
  });
}

export interface ConfigLoggerOptions {
  config: TrainConfig;
  rank: number;
  world: number;
  /** Trainable and frozen parameters of the model, and Stable Diffusion's (frozen; null without it). */
  params: { trainable: number; frozen: number; diffusion: number | null };
  log: (line: string) => void;
}

export class ConfigLogger implements Hook {
  constructor(private readonly o: ConfigLoggerOptions) {}

  beforeTrain(): void {
    const { config: c, world, params: p, log } = this.o;
    if (this.o.rank !== 0) return;
    log(`effective config:\n${JSON.stringify(c, null, 2)}`);
    log(
      `parameters: ${(p.trainable / 1e6).toFixed(2)} M trainable, ${(p.frozen / 1e6).toFixed(2)} M frozen ` +
        `(+ Stable Diffusion ${p.diffusion !== null ? (p.diffusion / 1e6).toFixed(1) : "0"} M frozen); ` +
        `${world} process${world > 1 ? "es" : ""}, batch ${c.data.batchSize / world} each`,
    );
  }
}
