// `dedos prepare <dataset> --root DIR`: builds a benchmark's ground truth from the downloaded files.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCHMARK_NAMES, BENCHMARKS, isBenchmarkName } from "../data/benchmarks.js";
import { PREPARE_SUPPORTED, PREPARE_UNSUPPORTED_REASON, prepareDataset } from "../data/prepare.js";

const HELP = `dedos prepare — build a benchmark's ground truth (CAT-Seg formats) from the downloaded files

Usage: dedos prepare <dataset> --root DIR [--force] [--no-progress]

  <dataset>      one of: ${BENCHMARK_NAMES.join(", ")}
  --root DIR     the datasets root (as DETECTRON2_DATASETS; holding e.g. ADEChallengeData2016/), or the
                 dataset folder itself
  --force        rebuild outputs that are already up to date
  --no-progress  no progress line on stderr

Sources expected under the root:
  ade150        ADEChallengeData2016/{images,annotations}/validation
  voc20, voc20b VOCdevkit/VOC2012/{JPEGImages, ImageSets/Segmentation/val.txt,
                SegmentationClassAug (or SegmentationClass)}
  cocostuff171  coco-stuff/images/val2017 + coco-stuff/annotations/val2017 (stuffthingmaps)
  pc59          VOCdevkit/VOC2010/{JPEGImages, trainval_merged.json}
  pc459         VOCdevkit/VOC2010/{JPEGImages, trainval/*.mat} (PASCAL-Context LabelMaps)
  ade847        ADE20K_2021_17_01/images/ADE/validation/**/ADE_val_*.jpg + *_seg.png (full format);
                writes images_detectron2/validation (JPEGs, short side 512 when larger, as CAT-Seg) and
                annotations_detectron2/validation (uint16 TIFF trainIds 0..846, 65535 = unlabelled)

Runs are idempotent and resumable (outputs newer than their inputs are kept). A missing or corrupt input is
reported by name and the run goes on; the exit code is then 1. At the end the number of outputs is checked
against the split size (ade150 and ade847 2000, voc20 1449, cocostuff171 5000, pc59 and pc459 5104).
`;

export async function prepareCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      root: { type: "string" },
      force: { type: "boolean" },
      "no-progress": { type: "boolean" },
    },
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
  const reason = PREPARE_UNSUPPORTED_REASON[name];
  if (reason || !PREPARE_SUPPORTED.includes(name)) {
    console.error(`dedos prepare ${name}: ${reason ?? "not supported yet"}`);
    return 2;
  }
  if (!values.root) {
    console.error("dedos prepare: --root DIR is required");
    return 2;
  }
  const report = await prepareDataset(name, {
    root: resolve(values.root),
    force: values.force ?? false,
    progress: !values["no-progress"],
  });
  const spec = BENCHMARKS[name];
  const lines = [
    `${spec.title}: ${report.outDir}`,
    `  listed ${report.listed}, written ${report.written}, up to date ${report.upToDate}` +
      (report.empty ? `, empty (not written, as CAT-Seg) ${report.empty}` : "") +
      `, failed ${report.failed.length}  (${report.seconds.toFixed(1)} s)`,
    `  count check: ${report.present} files${report.empty ? ` + ${report.empty} empty` : ""}, expected ${report.expected}: ${report.present + report.empty === report.expected ? "OK" : "MISMATCH"}`,
  ];
  for (const f of report.failed.slice(0, 20)) lines.push(`  failed: ${f.file}: ${f.error}`);
  if (report.failed.length > 20) lines.push(`  … and ${report.failed.length - 20} more failures`);
  console.error(lines.join("\n"));
  return report.ok ? 0 : 1;
}
