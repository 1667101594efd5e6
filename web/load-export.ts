// An export folder in the page: from files the user picked (a folder or its files) or from a URL. The
// manifest is checked by the library's reader; the graphs become onnxruntime-web sessions (WebGPU when the
// browser has an adapter, else WebAssembly), with their `*.onnx.data` external weights when present.
import * as ort from "onnxruntime-web/webgpu";
import { ClipTokenizerCore } from "../src/clip/tokenizer-core.js";
import { checkManifest, externalDataName, type OnnxManifest } from "../src/onnx/manifest.js";
import type { ExternalData, OrtModule } from "../src/onnx/runtime.js";
import { OnnxSegmentation } from "../src/onnx/segmentation.js";

/** Where the export's files come from: picked files by name, or a base URL. */
export type ExportSource = { files: Map<string, File> } | { url: string };

/** Picked files by base name (a folder pick gives "folder/manifest.json" paths; the base name is what counts). */
export function filesByName(list: FileList | File[]): Map<string, File> {
  const m = new Map<string, File>();
  for (const f of Array.from(list)) m.set(f.name, f);
  return m;
}

async function bytesOf(src: ExportSource, name: string): Promise<Uint8Array | undefined> {
  if ("files" in src) {
    const f = src.files.get(name);
    return f ? new Uint8Array(await f.arrayBuffer()) : undefined;
  }
  const r = await fetch(new URL(name, src.url));
  if (r.status === 404) return undefined;
  if (!r.ok) throw new Error(`${new URL(name, src.url)}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function required(src: ExportSource, name: string): Promise<Uint8Array> {
  const b = await bytesOf(src, name);
  if (!b) throw new Error(`the export has no ${name} (choose the folder written by \`dedos export\`)`);
  return b;
}

/** Which providers this browser can run: WebGPU only when an adapter exists, WebAssembly always. */
export async function webProviders(): Promise<string[]> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  return adapter ? ["webgpu", "wasm"] : ["wasm"];
}

async function openGraph(src: ExportSource, manifest: OnnxManifest, file: string, providers: string[]) {
  const model = await required(src, file);
  // External weights: named by the manifest, else probed by the exporter's naming convention.
  const ext = externalDataName(manifest, file);
  const extra = ext ? await bytesOf(src, ext.name) : undefined;
  if (ext?.known && !extra)
    throw new Error(`the export has no ${ext.name} (the external weights of ${file})`);
  const externalData: ExternalData[] = ext && extra ? [{ path: ext.name, data: extra }] : [];
  try {
    return await ort.InferenceSession.create(model, { executionProviders: providers, externalData });
  } catch (e) {
    throw new Error(`${file}: onnxruntime-web cannot open it (${(e as Error).message})`);
  }
}

/** The CLIP vocabulary shipped next to the page (gzipped; a server may already have unzipped it). */
async function loadTokenizer(vocabUrl: string): Promise<ClipTokenizerCore> {
  const r = await fetch(vocabUrl);
  if (!r.ok) throw new Error(`${vocabUrl}: HTTP ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  const gzipped = bytes[0] === 0x1f && bytes[1] === 0x8b;
  return gzipped ? ClipTokenizerCore.fromGzippedMergesAsync(bytes) : ClipTokenizerCore.fromMergesBytes(bytes);
}

/** Opens an export for segmentation in this page. */
export async function openExport(
  src: ExportSource,
  vocabUrl: string,
): Promise<{ model: OnnxSegmentation; manifest: OnnxManifest; providers: string[] }> {
  const manifestBytes = await required(src, "manifest.json");
  const manifest = checkManifest(JSON.parse(new TextDecoder().decode(manifestBytes)), "manifest.json");
  if (crossOriginIsolated) ort.env.wasm.numThreads = Math.min(4, navigator.hardwareConcurrency || 1);
  const providers = await webProviders();
  const [tokenizer, text, view] = await Promise.all([
    loadTokenizer(vocabUrl),
    openGraph(src, manifest, manifest.text.file, providers),
    openGraph(src, manifest, manifest.view.file, providers),
  ]);
  const openTopK = (file: string) => openGraph(src, manifest, file, providers);
  const model = new OnnxSegmentation(manifest, ort as unknown as OrtModule, text, view, tokenizer, openTopK);
  return { model, manifest, providers };
}
