// An export folder opened in Node: manifest.json read and checked, onnxruntime-node loaded on demand (it is an
// optional peer dependency: an app that segments with exported models installs it, nothing else needs it),
// both graphs opened as sessions from their files (onnxruntime reads `*.onnx.data` beside them), and the
// bundled CLIP vocabulary. Never loads libtorch.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ClipTokenizer } from "../clip/tokenizer.js";
import { defaultNumThreads } from "../util/threads.js";
import { checkManifest } from "./manifest.js";
import { executionProviders, type OrtModule, type SessionCreateOptions } from "./runtime.js";
import { OnnxSegmentation } from "./segmentation.js";

export interface OpenExportOptions {
  /** "cpu" (default), "cuda[:N]", or another onnxruntime execution provider name. */
  device?: string;
  /** The onnxruntime module to use (default: onnxruntime-node, imported on first use). */
  runtime?: OrtModule;
  /** More session options (threads, graph optimisation level, …), passed to onnxruntime as they are. */
  sessionOptions?: Record<string, unknown>;
}

let nodeRuntime: Promise<OrtModule> | undefined;

/** onnxruntime-node, imported once; a clear error when it is not installed. */
export function loadOnnxRuntimeNode(): Promise<OrtModule> {
  nodeRuntime ??= import("onnxruntime-node").then(
    (m) =>
      ((m as unknown as { InferenceSession?: unknown }).InferenceSession
        ? m
        : m.default) as unknown as OrtModule,
    (e: unknown) => {
      nodeRuntime = undefined;
      const code = (e as { code?: string }).code;
      if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND")
        throw new Error(
          "dedos: the onnx backend needs onnxruntime-node, which is not installed: `npm install onnxruntime-node` (an optional peer dependency of dedos)",
        );
      throw new Error(`dedos: onnxruntime-node could not be loaded (${(e as Error).message})`);
    },
  );
  return nodeRuntime;
}

/** Reads and checks `<folder>/manifest.json`; errors name the folder. */
export async function readManifest(folder: string) {
  const file = join(folder, "manifest.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT"
        ? `${resolve(folder)}: not a \`dedos export\` folder (no manifest.json)`
        : `${file}: cannot read (${code ?? (e as Error).message})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return checkManifest(json, file);
}

/**
 * Opens an export folder for segmentation.
 * @example
 *   const m = await openExportFolder("exports/catseg-vitb", { device: "cpu" });
 *   const { labels } = await m.segment(rgb, ["sky", "road"], undefined);
 */
export async function openExportFolder(folder: string, o: OpenExportOptions = {}): Promise<OnnxSegmentation> {
  const manifest = await readManifest(folder);
  const ort = o.runtime ?? (await loadOnnxRuntimeNode());
  // onnxruntime-node's own default ran CLIP ViT-B/16 at 384² in 565–575 ms here, with every core 310 ms.
  const options: SessionCreateOptions = {
    executionProviders: executionProviders(o.device),
    intraOpNumThreads: defaultNumThreads(),
    ...o.sessionOptions,
  };
  const open = async (file: string) => {
    const path = join(folder, file);
    try {
      return await ort.InferenceSession.create(path, options);
    } catch (e) {
      throw new Error(`${path}: onnxruntime cannot open it (${(e as Error).message})`);
    }
  };
  const text = await open(manifest.text.file);
  let view: Awaited<ReturnType<typeof open>>;
  try {
    view = await open(manifest.view.file);
  } catch (e) {
    await text.release?.();
    throw e;
  }
  return new OnnxSegmentation(manifest, ort, text, view, ClipTokenizer.load(), open);
}
