// Periodic evaluation: every `evalEvery` iterations the model is evaluated on a prepared benchmark (rank 0;
// the other ranks wait), logged to the console and to metrics.jsonl with the iteration.
import { Segmenter } from "../../api/segmenter.js";
import type { DedosModel } from "../../dedos/model.js";
import { evaluate } from "../../eval/evaluate.js";
import * as dist from "../../torch/distributed.js";
import type { Hook, TrainLoop } from "../loop.js";
import { appendMetrics } from "./metrics.js";

export interface PeriodicEvaluatorOptions {
  /** Evaluate every N iterations (0 = never). */
  every: number;
  /** The benchmark, its datasets root, and the first `limit` images (undefined = all). */
  dataset: string;
  root: string;
  limit?: number;
  model: DedosModel;
  /** metrics.jsonl (rank 0 appends one `eval` record per evaluation). */
  metricsFile: string;
  rank: number;
  world: number;
  log: (line: string) => void;
}

export class PeriodicEvaluator implements Hook {
  constructor(private readonly o: PeriodicEvaluatorOptions) {}

  async afterStep(loop: TrainLoop): Promise<void> {
    if (this.o.every > 0 && loop.iteration % this.o.every === 0) await this.evaluateNow(loop.iteration);
  }

  private async evaluateNow(iteration: number): Promise<void> {
    const o = this.o;
    if (o.rank === 0) {
      o.model.eval();
      const seg = Segmenter.fromModel(o.model);
      try {
        const t = performance.now();
        const r = await evaluate(seg, o.dataset, o.root, { limit: o.limit, distributed: false });
        const m = r.metrics;
        appendMetrics(o.metricsFile, {
          iteration,
          eval: {
            dataset: o.dataset,
            images: r.images,
            mIoU: m.mIoU,
            fwIoU: m.fwIoU,
            mACC: m.mACC,
            pACC: m.pACC,
            seconds: (performance.now() - t) / 1000,
          },
        });
        o.log(
          `eval ${o.dataset} at iteration ${iteration}: ${r.images} image(s), mIoU ${m.mIoU.toFixed(2)}, ` +
            `pACC ${m.pACC.toFixed(2)}${r.failedImages ? `, ${r.failedImages} failed` : ""}`,
        );
      } finally {
        await seg.dispose(); // the model stays: it is the run's
        o.model.train();
      }
    }
    if (o.world > 1) dist.barrier();
  }
}
