// manifest.json of an export folder: what the graphs are, what they expect, and how they were checked. This
// is the contract with the onnxruntime backend (src/api, web/): fields are only ever added, never changed.

import type { CatSegConfig } from "../catseg/config.js";
import { CatSegModel } from "../catseg/model.js";
import type { DedosConfig } from "../dedos/config.js";
import type { DedosModel } from "../dedos/model.js";
import type { GraphExportResult } from "./graph-export.js";

export interface VerifiedGraph {
  /** Worst |onnxruntime − libtorch| over the checks (libtorch on the same, possibly float16-rounded, weights). */
  maxAbsError: number;
  inputs: "traced+random";
  /** The acceptance bound the export ran with. */
  tolerance: number;
  /** The dynamic sizes checked (prompts for text, classes for view). */
  sizes: number[];
  /** Float16 weights: worst |onnxruntime − libtorch with the float32 weights| and that output's scale. */
  vsFloat32?: { maxAbsError: number; maxAbs: number };
}

export interface ExportManifest {
  format: "dedos-onnx";
  version: 1;
  arch: "catseg" | "dedos";
  dtype: "float32" | "float16";
  config: CatSegConfig | DedosConfig;
  scoreKind: "logits" | "probabilities";
  padLen: number;
  promptChannel: number;
  templates: string[];
  text: {
    file: string;
    input: "tokens";
    inputType: "int64";
    contextLength: number;
    output: "features";
    /** Symbolic batch dimension of tokens/features: any prompt count runs in one call. */
    dynamicBatch: true;
  };
  view: {
    file: string;
    kernel: number;
    inputs: { image: "image"; text: "text" };
    output: "logits";
    outputSize: [number, number];
    /** Classes one call accepts (pad_len); null when view-topk.onnx takes the larger counts. */
    maxClasses: number | null;
  };
  /**
   * The graph for T > pad_len classes (CAT-Seg's top-k path: the pad_len classes of largest cost are
   * aggregated, the others get −100). Same inputs and output as `view`.
   */
  viewTopK?: {
    file: "view-topk.onnx";
    minClasses: number;
    inputs: { image: "image"; text: "text" };
    output: "logits";
    outputSize: [number, number];
  };
  verified: Record<string, VerifiedGraph>;
  exportedBy: string;
  /** Weight bytes and graph sizes per file. */
  files: Record<string, { bytes: number; nodes: number; externalData: string | null }>;
}

function verified(r: GraphExportResult, tolerance: number): VerifiedGraph {
  const refs = r.checks.flatMap((c) => (c.vsReference ? [c.vsReference] : []));
  const v: VerifiedGraph = {
    maxAbsError: r.maxAbsError,
    inputs: "traced+random",
    tolerance,
    sizes: r.checks.map((c) => c.size),
  };
  if (refs.length)
    v.vsFloat32 = {
      maxAbsError: Math.max(...refs.map((x) => x.maxAbsError)),
      maxAbs: Math.max(...refs.map((x) => x.maxAbs)),
    };
  return v;
}

function fileEntry(r: GraphExportResult) {
  return {
    bytes: r.bytes,
    nodes: r.nodes,
    externalData: r.files[1] ? r.files[1].split(/[/\\]/).pop()! : null,
  };
}

export function manifestFor(
  model: CatSegModel | DedosModel,
  o: {
    arch: "catseg" | "dedos";
    k: number;
    fp16: boolean;
    version: string;
    graphs: Record<string, GraphExportResult>;
    templates: string[];
    tolerance?: number;
  },
): ExportManifest {
  const cs = model instanceof CatSegModel ? model : model.catseg;
  const scoreKind = model instanceof CatSegModel ? "logits" : model.scoreKind;
  const view = o.graphs.view!;
  const topk = o.graphs["view-topk"];
  const [h, w] = view.outputShape.slice(-2) as [number, number];
  const tol = o.tolerance ?? 1e-4;
  return {
    format: "dedos-onnx",
    version: 1,
    arch: o.arch,
    dtype: o.fp16 ? "float16" : "float32",
    config: model.config,
    scoreKind,
    padLen: cs.padLen,
    promptChannel: cs.config.aggregator.promptChannel,
    templates: o.templates,
    text: {
      file: "text.onnx",
      input: "tokens",
      inputType: "int64",
      contextLength: cs.clip.textConfig.contextLength,
      output: "features",
      dynamicBatch: true,
    },
    view: {
      file: "view.onnx",
      kernel: o.k,
      inputs: { image: "image", text: "text" },
      output: "logits",
      outputSize: [h, w],
      maxClasses: topk ? null : cs.padLen,
    },
    ...(topk
      ? {
          viewTopK: {
            file: "view-topk.onnx",
            minClasses: cs.padLen + 1,
            inputs: { image: "image", text: "text" },
            output: "logits",
            outputSize: [h, w],
          },
        }
      : {}),
    verified: Object.fromEntries(Object.entries(o.graphs).map(([n, r]) => [`${n}.onnx`, verified(r, tol)])),
    exportedBy: `dedos ${o.version}`,
    files: Object.fromEntries(Object.entries(o.graphs).map(([n, r]) => [`${n}.onnx`, fileEntry(r)])),
  };
}
