// `dedos export` for a segmentation model (CAT-Seg or DEDOS): the graphs and a manifest in one folder.
//   text.onnx       tokens int64 (N, 77) → features float32 (N, E): CLIP text features, not normalised
//   view.onnx       image float32 (1, 3, k, k) raw 0–255 RGB, text float32 (T, P, E) → logits (1, T, h, w):
//                   exactly model.head(model.encodeImage(view), text) with the test pooling (1, 1), T ≤ pad_len
//   view-topk.onnx  the same for T > pad_len (the head's top-k path)
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
import { sharedData } from "./onnx-file.js";
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
  /** Prompt templates the runtime fills (default CAT-Seg's single one; P > 1 needs P of them). */
  templates?: string[];
  /** Also export view-topk.onnx, the graph for T > pad_len classes (default true). */
  topK?: boolean;
  /**
   * view.onnx and view-topk.onnx keep their (identical) weights in one external file, view.onnx.data,
   * instead of a copy each inside the graphs (default false).
   */
  shareViewWeights?: boolean;
}

export interface ExportResult {
  manifest: ExportManifest;
  text: GraphExportResult;
  view: GraphExportResult;
  /** The graph for more classes than pad_len (top-k path), unless `topK: false`. */
  viewTopK?: GraphExportResult;
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
function viewCases(m: SegModel, k: number, g: Generator, traced: [number, number], checks: number[]) {
  const cs = catsegOf(m);
  const P = cs.config.aggregator.promptChannel;
  const E = cs.config.clip.text.embedDim;
  const c = (T: number): GraphCase => ({
    size: T,
    inputs: {
      image: rand([1, 3, k, k], { generator: g }).mul(255),
      text: randn([T, P, E], { generator: g }),
    },
  });
  return { traced: [c(traced[0]), c(traced[1])] as [GraphCase, GraphCase], checks: checks.map(c) };
}

type Cases = ReturnType<typeof viewCases>;

/** What `segmentTensor` runs per view: head(encodeImage(view), text) with the test pooling (1, 1). */
function viewForward(m: SegModel, image: Tensor, text: Tensor): Tensor {
  const o = { poolingSize: [1, 1] as [number, number] };
  return m instanceof CatSegModel
    ? m.head(m.encodeImage(image), text, o)
    : m.head(m.encodeImage(image), text, o);
}

/** The graphs of an export: text, view (T ≤ pad_len) and, unless skipped, view-topk (T > pad_len). */
function graphCases(m: SegModel, k: number, o: ExportOptions): { name: string; cases: Cases }[] {
  const padLen = catsegOf(m).padLen;
  const g = new Generator(o.seed ?? 0);
  const text = textCases(m);
  const out = [
    { name: "text", cases: text },
    { name: "view", cases: viewCases(m, k, g, [3, 5], [...new Set([Math.min(7, padLen), padLen])]) },
  ];
  if (o.topK !== false)
    out.push({ name: "view-topk", cases: viewCases(m, k, g, [padLen + 1, padLen + 3], [padLen + 6]) });
  return out;
}

/** Exports a CAT-Seg or DEDOS model (eval mode) into `outDir`: manifest.json, text.onnx, view*.onnx. */
export async function exportSegmentationModel(
  model: SegModel,
  outDir: string,
  o: ExportOptions,
): Promise<ExportResult> {
  const cs = catsegOf(model);
  if (model.training) throw new Error("export: the model is in training mode; call model.eval() first");
  if (cs.padLen < 6) throw new Error(`export: pad_len ${cs.padLen} is too small to trace the class count`);
  const arch = model instanceof CatSegModel ? "catseg" : "dedos";
  const templates = o.templates ?? [CATSEG_TEMPLATE];
  const P = cs.config.aggregator.promptChannel;
  if (P > 1 && templates.length !== P)
    throw new Error(
      `export: prompt_channel ${P} needs ${P} templates (templates option), got ${templates.length}`,
    );
  const k = o.kernel ?? WINDOW_PRESETS[arch].kernel;
  const params = exportParams(model);
  mkdirSync(outDir, { recursive: true });
  const staging = mkdtempSync(join(outDir, ".export-"));
  const graphs = graphCases(model, k, o);
  const cases = graphs.flatMap((x) => [...x.cases.traced, ...x.cases.checks]);
  try {
    const head = (x: Record<string, Tensor>) => tidy(() => viewForward(model, x.image!, x.text!));
    const textFwd = (x: Record<string, Tensor>) => cs.clip.encodeText(x.tokens!);
    const forward = (name: string) => (name === "text" ? textFwd : head);
    // float16: the float32 model's outputs, to state what storing the weights as float16 costs.
    if (o.fp16)
      for (const x of graphs)
        for (const c of x.cases.checks) c.reference = noGrad(() => forward(x.name)(c.inputs));
    const shared = o.shareViewWeights ? sharedData(join(staging, "view.onnx.data")) : undefined;
    const run = async () => {
      const results: Record<string, GraphExportResult> = {};
      for (const x of graphs) {
        const isText = x.name === "text";
        results[x.name] = await exportGraph({
          params,
          weightType: o.fp16 ? "float16" : "float32",
          producerVersion: o.version,
          tolerance: o.tolerance,
          externalAbove: o.externalAbove,
          threads: o.threads,
          log: o.log,
          name: x.name,
          forward: forward(x.name),
          output: isText ? "features" : "logits",
          symbol: isText
            ? { input: "tokens", dim: 0, name: "prompts" }
            : { input: "text", dim: 0, name: "classes" },
          traced: x.cases.traced,
          checks: x.cases.checks,
          path: join(staging, `${x.name}.onnx`),
          shared: isText ? undefined : shared,
        });
      }
      return results;
    };
    const r = o.fp16 ? await withRoundedWeights(params, run) : await run();
    const manifest = manifestFor(model, {
      templates,
      arch,
      k,
      fp16: !!o.fp16,
      version: o.version,
      graphs: r,
      tolerance: o.tolerance,
    });
    await publish(
      outDir,
      staging,
      Object.values(r).flatMap((x) => x.files),
      manifest,
    );
    return {
      manifest,
      text: r.text!,
      view: r.view!,
      ...(r["view-topk"] ? { viewTopK: r["view-topk"] } : {}),
    };
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
  const names = [...new Set(files.map((f) => f.slice(staging.length + 1)))];
  const entries: FileSetEntry[] = names.map((n) => ({
    file: join(outDir, n),
    write: (tmp: string) => renameSync(join(staging, n), tmp),
  }));
  for (const stale of ["view-topk.onnx", "text.onnx.data", "view.onnx.data", "view-topk.onnx.data"])
    if (!names.includes(stale)) entries.push({ file: join(outDir, stale), remove: true });
  entries.push({ file: join(outDir, "manifest.json"), data: `${JSON.stringify(manifest, null, 2)}\n` });
  await writeFileSetAtomic(entries);
}
