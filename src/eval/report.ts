// Evaluation reports: metrics JSON, and the per-class IoU table as CSV and Markdown.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SemsegMetrics } from "./semseg-metrics.js";

export interface EvalReport {
  benchmark: string;
  images: number;
  weights: string;
  metrics: SemsegMetrics;
  classNames: readonly string[];
  /** Pixels of each class in the ground truth (the confusion matrix's column sums). */
  gtPixels: number[];
}

const fix = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(4)) : null);

/** Writes metrics.json, per_class_iou.csv and per_class_iou.md into `dir`; returns the file paths. */
export function writeEvalReport(dir: string, r: EvalReport): string[] {
  const m = r.metrics;
  const names = r.classNames;
  const json = {
    benchmark: r.benchmark,
    images: r.images,
    weights: r.weights,
    mIoU: fix(m.mIoU),
    mIoU_definition: m.miouDefinition,
    "mIoU_d2-main": fix(m.mIoU_d2main),
    "mIoU_d2-v0.6": fix(m.mIoU_d2v06),
    fwIoU: fix(m.fwIoU),
    mACC: fix(m.mACC),
    pACC: fix(m.pACC),
    per_class: Object.fromEntries(
      names.map((n, i) => [
        n,
        { IoU: fix(m.perClassIoU[i]!), ACC: fix(m.perClassAcc[i]!), gt_pixels: r.gtPixels[i] ?? 0 },
      ]),
    ),
  };
  const files = [join(dir, "metrics.json"), join(dir, "per_class_iou.csv"), join(dir, "per_class_iou.md")];
  writeFileSync(files[0]!, `${JSON.stringify(json, null, 2)}\n`);
  const csvName = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const rows = names.map((n, i) => [i, n, m.perClassIoU[i]!, m.perClassAcc[i]!, r.gtPixels[i] ?? 0] as const);
  writeFileSync(
    files[1]!,
    `index,class,IoU,ACC,gt_pixels\n${rows.map(([i, n, iou, acc, px]) => `${i},${csvName(n)},${fmt(iou)},${fmt(acc)},${px}`).join("\n")}\n`,
  );
  const md = [
    `# ${r.benchmark}: ${r.images} images`,
    "",
    `mIoU ${fmt(m.mIoU)} (${m.miouDefinition}; d2-main ${fmt(m.mIoU_d2main)}, d2-v0.6 ${fmt(m.mIoU_d2v06)}) · fwIoU ${fmt(m.fwIoU)} · mACC ${fmt(m.mACC)} · pACC ${fmt(m.pACC)}`,
    "",
    "| # | class | IoU | ACC | GT pixels |",
    "|---|---|---|---|---|",
    ...rows.map(
      ([i, n, iou, acc, px]) => `| ${i} | ${n.replace(/\|/g, "\\|")} | ${fmt(iou)} | ${fmt(acc)} | ${px} |`,
    ),
    "",
    "IoU is NaN (shown as —) for classes absent from both ground truth and prediction.",
  ];
  writeFileSync(files[2]!, `${md.join("\n")}\n`);
  return files;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(2) : "—";
}
