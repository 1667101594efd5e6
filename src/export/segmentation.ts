// `dedos export` for a segmentation model (CAT-Seg or DEDOS): two graphs and a manifest in one folder.
//   text.onnx  tokens int64 (N, 77) → features float32 (N, E): CLIP text features before any normalisation
//   view.onnx  image float32 (1, 3, k, k) raw 0–255 RGB, text float32 (T, P, E) → logits (1, T, h, w):
//              exactly model.head(model.encodeImage(view), text) with the test pooling (1, 1)
// The folder is written as one set (src/util/fs.ts): a failed export leaves the old folder as it was.
import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { WINDOW_PRESETS } from "../catseg/inference.js";
import { CATSEG_TEMPLATE, CatSegModel } from "../catseg/model.js";
import { ClipTokenizer } from "../clip/tokenizer.js";
import type { DedosModel } from "../dedos/model.js";
import { dispose, Generator, noGrad, rand, randn, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { type FileSetEntry, writeFileSetAtomic } from "../util/fs.js";
import { exportGraph, type GraphCase, type GraphExportResult } from "./graph-export.js";
import { type ExportManifest, manifestFor } from "./manifest.js";
import { withRoundedWeights } from "./weights.js";

export interface ExportOptions {
  /** Store weights as float16 (computation stays float32). */
  fp16?: boolean;
  /** Largest accepted |onnxruntime − libtorch| (default 1e-4). */
  tolerance?: number;
  /** View side k (default: the arch's sliding-window kernel, 384 CAT-Seg, 512 DEDOS). */
  kernel?: number;
  /** Weights above this many bytes go to `<file>.data` (default 1.8 GB). */
  externalAbove?: number;
  /** Seed of the random check inputs. */
  seed?: number;
  /** The version written into the files and manifest. */
  version: string;
  /** Threads for onnxruntime during the checks. */
  threads?: number;
  log?: (line: string) => void;
}

export interface ExportResult {
  manifest: ExportManifest;
  text: GraphExportResult;
  view: GraphExportResult;
}

type SegModel = CatSegModel | DedosModel;

function catsegOf(m: SegModel): CatSegModel {
  return m instanceof CatSegModel ? m : m.catseg;
}

/** Every parameter and buffer the graphs may read, by module path (DEDOS: Stable Diffusion under `sd.`). */
export function exportParams(m: SegModel): [string, Tensor][] {
  const out: [string, Tensor][] = [...m.namedParameters(), ...m.namedBuffers()];
  const sd = m instanceof CatSegModel ? null : m.diffusionBranch;
  if (sd) {
    for (const [name, mod] of [
      ["sd.vae", sd.folder.vae],
      ["sd.unet", sd.folder.unet],
    ] as const)
      out.push(...mod.namedParameters(name), ...mod.namedBuffers(name));
  }
  return out;
}

const SAMPLE_CLASSES = ["sky", "wet road", "traffic cone", "person", "dog", "tree, bush", "building", "car"];

function tokens(m: SegModel, n: number, offset: number): Tensor {
  const ctx = catsegOf(m).clip.textConfig.contextLength;
  const texts = Array.from({ length: n }, (_, i) =>
    CATSEG_TEMPLATE.replace("{}", SAMPLE_CLASSES[(i + offset) % SAMPLE_CLASSES.length]!),
  );
  const tok = ClipTokenizer.load().tokenize(texts, { contextLength: ctx });
  return tidy(() => tensor(tok.ids, [n, ctx]).long());
}

function textCases(m: SegModel): { traced: [GraphCase, GraphCase]; checks: GraphCase[] } {
  const c = (n: number, offset: number): GraphCase => ({ size: n, inputs: { tokens: tokens(m, n, offset) } });
  return { traced: [c(2, 0), c(3, 2)], checks: [c(5, 3)] };
}

/** View inputs at T classes: a random 0–255 image and random (T, P, E) text. */
function viewCases(m: SegModel, k: number, seed: number) {
  const g = new Generator(seed);
  const cs = catsegOf(m);
  const P = cs.config.aggregator.promptChannel;
  const E = cs.config.clip.text.embedDim;
  const padLen = cs.padLen;
  const c = (T: number): GraphCase => ({
    size: T,
    inputs: {
      image: rand([1, 3, k, k], { generator: g }).mul(255),
      text: randn([T, P, E], { generator: g }),
    },
  });
  const [t1, t2] = [Math.min(3, padLen - 2), Math.min(5, padLen - 1)];
  const checks = [...new Set([Math.min(7, padLen), padLen])].filter((t) => t > 0);
  return { traced: [c(t1), c(t2)] as [GraphCase, GraphCase], checks: checks.map(c) };
}

/** Exports a CAT-Seg or DEDOS model (eval mode) into `outDir`: manifest.json, text.onnx, view.onnx. */
export async function exportSegmentationModel(
  model: SegModel,
  outDir: string,
  o: ExportOptions,
): Promise<ExportResult> {
  const cs = catsegOf(model);
  if (cs.padLen < 3) throw new Error(`export: pad_len ${cs.padLen} is too small to trace the class count`);
  const arch = model instanceof CatSegModel ? "catseg" : "dedos";
  const k = o.kernel ?? WINDOW_PRESETS[arch].kernel;
  const params = exportParams(model);
  const weightType = o.fp16 ? "float16" : "float32";
  mkdirSync(outDir, { recursive: true });
  const staging = mkdtempSync(join(outDir, ".export-"));
  const text = textCases(model);
  const view = viewCases(model, k, o.seed ?? 0);
  const cases = [...text.traced, ...text.checks, ...view.traced, ...view.checks];
  try {
    const head = (x: Record<string, Tensor>) =>
      tidy(() => model.head(model.encodeImage(x.image!) as never, x.text!, { poolingSize: [1, 1] }));
    const textFwd = (x: Record<string, Tensor>) => cs.clip.encodeText(x.tokens!);
    if (o.fp16) {
      // The float32 model's outputs, to state what storing the weights as float16 costs.
      for (const c of [...text.checks]) c.reference = noGrad(() => textFwd(c.inputs));
      for (const c of [...view.checks]) c.reference = noGrad(() => head(c.inputs));
    }
    const common = {
      params,
      weightType,
      producerVersion: o.version,
      tolerance: o.tolerance,
      externalAbove: o.externalAbove,
      threads: o.threads,
      log: o.log,
    } as const;
    const run = async () => {
      const t = await exportGraph({
        ...common,
        name: "text",
        forward: textFwd,
        output: "features",
        symbol: { input: "tokens", dim: 0, name: "prompts" },
        traced: text.traced,
        checks: text.checks,
        path: join(staging, "text.onnx"),
      });
      const v = await exportGraph({
        ...common,
        name: "view",
        forward: head,
        output: "logits",
        symbol: { input: "text", dim: 0, name: "classes" },
        traced: view.traced,
        checks: view.checks,
        path: join(staging, "view.onnx"),
      });
      return { t, v };
    };
    const { t, v } = o.fp16 ? await withRoundedWeights(params, run) : await run();
    const manifest = manifestFor(model, {
      arch,
      k,
      fp16: !!o.fp16,
      version: o.version,
      text: t,
      view: v,
      tolerance: o.tolerance,
    });
    await publish(outDir, staging, [...t.files, ...v.files], manifest);
    return { manifest, text: t, view: v };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    for (const c of cases) dispose([c.inputs, c.reference]);
  }
}

/** Moves the staged graphs and the manifest into `outDir` as one set; data files no longer written go. */
async function publish(
  outDir: string,
  staging: string,
  files: string[],
  manifest: ExportManifest,
): Promise<void> {
  const names = files.map((f) => f.slice(staging.length + 1));
  const entries: FileSetEntry[] = names.map((n) => ({
    file: join(outDir, n),
    write: (tmp: string) => renameSync(join(staging, n), tmp),
  }));
  for (const stale of ["text.onnx.data", "view.onnx.data"])
    if (!names.includes(stale)) entries.push({ file: join(outDir, stale), remove: true });
  entries.push({ file: join(outDir, "manifest.json"), data: `${JSON.stringify(manifest, null, 2)}\n` });
  await writeFileSetAtomic(entries);
}
