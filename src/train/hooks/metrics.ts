// Training metrics: every `logEvery` iterations (and at the run's last) one line of metrics.jsonl and one
// console line with the mean losses since the previous line, the learning rate, it/s, the ETA and the share
// of time spent waiting for data, and the training samples skipped so far (they failed to load; the console
// line shows them once there are any). A resumed run first drops the lines past its checkpoint. A failed
// write (disk full) names metrics.jsonl; the file keeps its earlier lines (it is rewritten atomically).
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomicSync } from "../../util/fs.js";
import { formatSeconds } from "../../util/progress.js";
import type { Hook, StepOutput, TrainLoop } from "../loop.js";
import { writingFile } from "../run-folder.js";

export interface MetricsWriterOptions {
  /** The JSONL file (written by rank 0). */
  file: string;
  every: number;
  rank: number;
  log: (line: string) => void;
  /** Share of the time the model waited for data so far. */
  dataIdleShare: () => number;
  /**
   * Training samples skipped so far (failed to load), over all ranks: asked on every rank at each logged
   * iteration (it may be a collective). Absent: not reported.
   */
  skippedSamples?: () => number;
}

export class MetricsWriter implements Hook {
  /** Mean losses of the last logged interval. */
  last: Record<string, number> = {};
  private pending: Record<string, number[]> = {};
  private t0 = 0;

  constructor(private readonly o: MetricsWriterOptions) {}

  beforeTrain(loop: TrainLoop): void {
    if (this.o.rank === 0) truncateMetrics(this.o.file, loop.iteration);
    this.t0 = performance.now();
  }

  afterStep(loop: TrainLoop, step: StepOutput): void {
    for (const [k, v] of Object.entries(step.losses)) {
      this.pending[k] ??= [];
      this.pending[k].push(v);
    }
    if (loop.iteration % this.o.every !== 0 && loop.iteration !== loop.stopAt) return;
    this.last = Object.fromEntries(
      Object.entries(this.pending).map(([k, v]) => [k, v.reduce((a, b) => a + b, 0) / v.length]),
    );
    this.pending = {};
    const skipped = this.o.skippedSamples?.();
    if (this.o.rank === 0) this.write(loop, step.lr, skipped);
  }

  private write(loop: TrainLoop, lr: number, skipped: number | undefined): void {
    const { iteration, maxIter: max } = loop;
    const elapsed = (performance.now() - this.t0) / 1000;
    const itps = (iteration - loop.startIteration) / elapsed;
    const idle = this.o.dataIdleShare();
    appendMetrics(this.o.file, {
      iteration,
      lr,
      ...this.last,
      it_per_s: itps,
      data_idle: idle,
      ...(skipped !== undefined ? { skipped_samples: skipped } : {}),
      time_s: elapsed,
    });
    const parts = Object.entries(this.last)
      .filter(([k]) => k !== "total" && !/_\d+$/.test(k))
      .map(([k, v]) => `${k.replace(/^loss_/, "")} ${v.toFixed(3)}`);
    this.o.log(
      `iter ${iteration}/${max}  loss ${this.last.total!.toFixed(4)} (${parts.join(", ")})  ` +
        `lr ${lr.toExponential(2)}  ${itps.toFixed(2)} it/s  ` +
        `ETA ${formatSeconds((max - iteration) / Math.max(itps, 1e-9))}  data idle ${(idle * 100).toFixed(1)}%` +
        (skipped ? `  skipped ${skipped} sample${skipped > 1 ? "s" : ""}` : ""),
    );
  }
}

/** Appends one JSON record as a line (the file is rewritten atomically). */
export function appendMetrics(file: string, record: Record<string, unknown>): void {
  writingFile(file, () => {
    const prev = existsSync(file) ? readFileSync(file) : Buffer.alloc(0);
    writeFileAtomicSync(file, Buffer.concat([prev, Buffer.from(`${JSON.stringify(record)}\n`)]));
  });
}

/** After a resume, drop log lines of iterations past the checkpoint (they will be run again). */
function truncateMetrics(file: string, iteration: number): void {
  if (!existsSync(file)) return;
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  const keep = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { iteration: number }).iteration <= iteration;
    } catch {
      return false;
    }
  });
  writingFile(file, () => writeFileAtomicSync(file, Buffer.from(keep.map((l) => `${l}\n`).join(""))));
}
