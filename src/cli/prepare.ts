// `dedos prepare <dataset> --root DIR [--split val|train|all]`: builds a benchmark's ground truth from the
// downloaded files.
import { resolve } from "node:path";
import { BENCHMARK_NAMES, BENCHMARKS, isBenchmarkName } from "../data/benchmarks.js";
import {
  PREPARE_SPLIT_CHOICES,
  PREPARE_SUPPORTED,
  PREPARE_TRAIN_SIZES,
  type PrepareReport,
  type PrepareSplit,
  prepareDataset,
  resolvePrepareSplits,
} from "../data/prepare.js";
import { parseCommandArgs } from "./options.js";

const TRAIN_SPLITS = Object.keys(PREPARE_TRAIN_SIZES).join(", ");

const HELP = `dedos prepare — build a benchmark's ground truth (CAT-Seg formats) from the downloaded files

Usage: dedos prepare <dataset> --root DIR [--split val|train|all] [--force] [--no-progress]

  <dataset>      one of: ${BENCHMARK_NAMES.join(", ")}
  --root DIR     the datasets root (as DETECTRON2_DATASETS; holding e.g. ADEChallengeData2016/), or the
                 dataset folder itself
  --split S      val (default): the evaluation split; train: the training split (${TRAIN_SPLITS});
                 all: every split the dataset supports (val, and train where supported)
  --force        rebuild outputs that are already up to date
  --no-progress  no progress line on stderr

Sources expected under the root:
  ade150        ADEChallengeData2016/{images,annotations}/validation (--split train: .../training)
  voc20, voc20b VOCdevkit/VOC2012/{JPEGImages, ImageSets/Segmentation/val.txt,
                SegmentationClassAug (or SegmentationClass)}
  cocostuff171  coco-stuff/images/val2017 + coco-stuff/annotations/val2017 (stuffthingmaps);
                --split train: coco-stuff/images/train2017 + coco-stuff/annotations/train2017, written to
                coco-stuff/annotations_detectron2/train2017 (the training set of dedos train)
  pc59          VOCdevkit/VOC2010/{JPEGImages, trainval_merged.json}
  pc459         VOCdevkit/VOC2010/{JPEGImages, trainval/*.mat} (PASCAL-Context LabelMaps)
  ade847        ADE20K_2021_17_01/images/ADE/validation/**/ADE_val_*.jpg + *_seg.png (full format);
                writes images_detectron2/validation (JPEGs, short side 512 when larger, as CAT-Seg) and
                annotations_detectron2/validation (uint16 TIFF trainIds 0..846, 65535 = unlabelled)

Runs are idempotent and resumable (outputs newer than their inputs are kept). A missing or corrupt input is
reported by name and the run goes on; the exit code is then 1. At the end the number of outputs is checked
against the split size (val: ade150 and ade847 2000, voc20 1449, cocostuff171 5000, pc59 and pc459 5104;
train: ade150 20210, cocostuff171 118287).
`;

export async function prepareCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    root: { type: "string" },
    split: { type: "string", default: "val" },
    force: { type: "boolean" },
    "no-progress": { type: "boolean" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [name, ...extra] = positionals;
  if (!name || extra.length > 0) {
    console.error(`dedos prepare: expected exactly one dataset name\n\n${HELP}`);
    return 2;
  }
  if (!isBenchmarkName(name)) {
    console.error(`dedos prepare: unknown dataset '${name}' (known: ${BENCHMARK_NAMES.join(", ")})`);
    return 2;
  }
  if (!PREPARE_SUPPORTED.includes(name)) {
    console.error(`dedos prepare ${name}: not supported yet`);
    return 2;
  }
  const choice = values.split ?? "val";
  if (!(PREPARE_SPLIT_CHOICES as readonly string[]).includes(choice)) {
    console.error(
      `dedos prepare: --split must be one of ${PREPARE_SPLIT_CHOICES.join(", ")} (got '${choice}')`,
    );
    return 2;
  }
  let splits: PrepareSplit[];
  try {
    splits = resolvePrepareSplits(name, choice);
  } catch (e) {
    console.error(`dedos prepare ${name}: ${(e as Error).message}`);
    return 2;
  }
  if (!values.root) {
    console.error("dedos prepare: --root DIR is required");
    return 2;
  }
  const root = resolve(values.root);
  let status = 0;
  for (const split of splits) {
    const report = await prepareDataset(name, {
      root,
      split,
      force: values.force ?? false,
      progress: !values["no-progress"],
    });
    console.error(summary(report));
    if (!report.ok) status = 1;
  }
  return status;
}

/** The end-of-run lines of one split: counts, the count check, the first failures. */
function summary(report: PrepareReport): string {
  const spec = BENCHMARKS[report.dataset];
  const title =
    report.split === "val" ? spec.title : `${spec.title.replace(/ \(.*\)$/, "")} (${report.split} split)`;
  const lines = [
    `${title}: ${report.outDir}`,
    `  listed ${report.listed}, written ${report.written}, up to date ${report.upToDate}` +
      (report.empty ? `, empty (not written, as CAT-Seg) ${report.empty}` : "") +
      `, failed ${report.failed.length}  (${report.seconds.toFixed(1)} s)`,
    `  count check: ${report.present} files${report.empty ? ` + ${report.empty} empty` : ""}, expected ${report.expected}: ${report.present + report.empty === report.expected ? "OK" : "MISMATCH"}`,
  ];
  for (const f of report.failed.slice(0, 20)) lines.push(`  failed: ${f.file}: ${f.error}`);
  if (report.failed.length > 20) lines.push(`  … and ${report.failed.length - 20} more failures`);
  return lines.join("\n");
}
