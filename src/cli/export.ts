// `dedos export`: a CAT-Seg or DEDOS model as ONNX graphs (text.onnx, view.onnx) with manifest.json, checked
// against libtorch with onnxruntime-node before anything is written. Parsing and printing only.
import { performance } from "node:perf_hooks";
import { ClipModel } from "../clip/model.js";
import { exportSegmentationModel } from "../export/segmentation.js";
import { createModel } from "../models/factory.js";
import { configOfWeight } from "../weights/index.js";
import { parseCommandArgs } from "./options.js";
import { packageVersion } from "./version.js";
import { weightsArg } from "./weight-args.js";

const HELP = `dedos export — the model as ONNX graphs for onnxruntime (Node, browsers) — no Python

Usage: dedos export --weights NAME|FILE|random --out DIR [options]

  --weights NAME|FILE|random   catseg-vitb, a CAT-Seg checkpoint, DEDOS weights, or random (seeded)
  --config NAME|FILE           vitb_384 (default), vitl_336, or a JSON config
  --arch catseg|dedos          the architecture (default: what the weights are; catseg for random)
  --sd DIR                     DEDOS: Stable Diffusion (diffusers folder) when its proxy queries read it
  --fp16                       store the weights as float16 (half the files; computation stays float32)
  --out DIR                    the export folder: manifest.json, text.onnx, view.onnx, view-topk.onnx
                               (+ *.onnx.data for weights over 1.8 GB)
  --skip-topk                  no view-topk.onnx (the graph for more classes than pad_len)
  --share-view-weights         view.onnx and view-topk.onnx read one view.onnx.data (half the view bytes)
  --kernel N                   view side (default 384 CAT-Seg, 512 DEDOS: the sliding-window kernel)
  --tolerance X                largest accepted |onnxruntime − libtorch| (default 1e-4)
  --seed N                     seed of random weights and of the check inputs (default 0)
  --threads N                  onnxruntime threads for the checks

Both graphs are traced from the TypeScript model, run by onnxruntime-node on the traced inputs and on fresh
random ones (other prompt and class counts), and compared with libtorch; the folder is written only when
every error is within the tolerance. See docs/EXPORT.md for the graphs' inputs, outputs and the manifest.

Example:
  dedos export --weights catseg-vitb --out exported/catseg-vitb --fp16
`;

function positiveNumber(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got "${v}"`);
  return n;
}

/** --seed: an integer ≥ 0 (0, the default, may also be given). */
function seedNumber(v: string | undefined): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--seed must be an integer ≥ 0, got "${v}"`);
  return n;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    weights: { type: "string" },
    config: { type: "string" },
    arch: { type: "string" },
    sd: { type: "string" },
    fp16: { type: "boolean" },
    "skip-topk": { type: "boolean" },
    "share-view-weights": { type: "boolean" },
    out: { type: "string" },
    kernel: { type: "string" },
    tolerance: { type: "string" },
    seed: { type: "string" },
    threads: { type: "string" },
    "external-above": { type: "string" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.weights || !values.out) {
    console.error(`dedos export: --weights and --out are required\n\n${HELP}`);
    return 2;
  }
  const arch = values.arch;
  if (arch !== undefined && arch !== "catseg" && arch !== "dedos") {
    console.error(`dedos export: --arch must be catseg or dedos, not '${arch}'`);
    return 2;
  }
  const t0 = performance.now();
  const seed = seedNumber(values.seed);
  const weights = values.weights === "random" ? "random" : (await weightsArg(values.weights))!;
  const model = createModel({
    arch,
    config: values.config ?? configOfWeight(values.weights),
    weights,
    sd: await weightsArg(values.sd),
    seed,
  });
  if (model instanceof ClipModel) {
    model.dispose();
    console.error("dedos export: CLIP alone is not exported; give CAT-Seg or DEDOS weights");
    return 2;
  }
  try {
    const r = await exportSegmentationModel(model, values.out, {
      fp16: values.fp16,
      topK: !values["skip-topk"],
      shareViewWeights: values["share-view-weights"],
      tolerance: positiveNumber("tolerance", values.tolerance),
      kernel: positiveNumber("kernel", values.kernel),
      externalAbove: positiveNumber("external-above", values["external-above"]),
      threads: positiveNumber("threads", values.threads),
      seed,
      version: packageVersion(),
      log: (line) => console.log(line),
    });
    const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
    const graphs = [
      ["text.onnx", r.text],
      ["view.onnx", r.view],
      ...(r.viewTopK ? [["view-topk.onnx", r.viewTopK] as const] : []),
    ] as const;
    for (const [file, g] of graphs)
      console.log(
        `${file}: ${mb(g.bytes)}${g.files[1] ? ` + ${mb(g.weightBytes)} external data` : ""}, ${g.nodes} nodes, max error ${g.maxAbsError.toExponential(2)}`,
      );
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`exported ${r.manifest.arch} (${r.manifest.dtype} weights) to ${values.out} in ${seconds} s`);
    return 0;
  } finally {
    model.dispose();
  }
}
