// The page: pick an export (folder, files or URL), an image and class names; segment with the library's
// onnx pipeline (tokenizer, prompts, sliding window in this page, graphs in onnxruntime-web) and draw the
// overlay with its legend. The last result is also left on `window.dedosResult` (labels, size, timing), which
// is what the browser test reads.
import { parseClassList } from "../src/data/class-list.js";
import type { OnnxSegmentation } from "../src/onnx/segmentation.js";
import { drawOverlay } from "./draw.js";
import { decodeImage } from "./image.js";
import { type ExportSource, filesByName, openExport } from "./load-export.js";

interface PageResult {
  width: number;
  height: number;
  classes: string[];
  labels: number[];
  ms: number;
  /** Milliseconds from the start to the end of each stage ("text", "view", "postprocess"). */
  stages: Record<string, number>;
  providers: string[];
}

declare global {
  interface Window {
    dedosResult?: PageResult;
    dedosError?: string;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLDivElement>("status");

function say(text: string, error = false): void {
  status.textContent = text;
  status.className = error ? "error" : "";
}

/** The export source the user chose: a URL when typed, else the picked folder or files. */
function chosenSource(): { key: string; source: ExportSource } | undefined {
  const url = $<HTMLInputElement>("model-url").value.trim();
  if (url) {
    const base = url.endsWith("/") ? url : `${url}/`;
    return { key: `url:${base}`, source: { url: new URL(base, location.href).href } };
  }
  for (const id of ["model-folder", "model-files"]) {
    const files = $<HTMLInputElement>(id).files;
    if (files && files.length > 0) {
      const names = Array.from(files, (f) => `${f.name}:${f.size}:${f.lastModified}`).join("|");
      return { key: `files:${names}`, source: { files: filesByName(files) } };
    }
  }
  return undefined;
}

let opened: { key: string; model: OnnxSegmentation; providers: string[] } | undefined;

async function run(): Promise<void> {
  const chosen = chosenSource();
  if (!chosen) throw new Error("choose the export folder (or its files, or a URL) first");
  const file = $<HTMLInputElement>("image").files?.[0];
  if (!file) throw new Error("choose an image first");
  const classes = parseClassList($<HTMLInputElement>("classes").value, {
    source: "classes",
    warn: (m) => console.warn(m),
  });
  if (opened?.key !== chosen.key) {
    say("Loading the model…");
    await opened?.model.release();
    opened = undefined;
    const { model, providers } = await openExport(chosen.source, "./bpe_simple_vocab_16e6.txt.gz");
    opened = { key: chosen.key, model, providers };
  }
  const image = await decodeImage(file);
  const t0 = performance.now();
  const stages: Record<string, number> = {};
  const r = await opened.model.segment(image, classes, undefined, {
    progress: (stage, done, total) => {
      stages[stage] = performance.now() - t0;
      say(`Segmenting ${image.width}×${image.height}: ${stage} ${done}/${total}`);
    },
  });
  const ms = performance.now() - t0;
  const labels = r.labels!;
  drawOverlay($<HTMLCanvasElement>("out"), image, labels, classes, file.name);
  say(
    `${image.width}×${image.height}, ${classes.length} classes: ${(ms / 1000).toFixed(2)} s (${opened.providers[0]})`,
  );
  window.dedosResult = {
    width: image.width,
    height: image.height,
    classes,
    labels: Array.from(labels),
    ms,
    stages,
    providers: opened.providers,
  };
}

$<HTMLButtonElement>("run").addEventListener("click", () => {
  window.dedosResult = undefined;
  window.dedosError = undefined;
  run().catch((e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    window.dedosError = message;
    say(message, true);
  });
});
