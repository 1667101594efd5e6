// The manifest of a `dedos export` folder (manifest.json next to text.onnx and view.onnx; docs/EXPORT.md):
// what the two graphs take and give, and the text-side settings the TypeScript half applies. Read and checked
// here field by field, so that a wrong or newer folder fails with the field's name, not deep in a session.

/** manifest.json of format "dedos-onnx", version 1. */
export interface OnnxManifest {
  format: "dedos-onnx";
  version: 1;
  arch: "catseg" | "dedos";
  /** Weight type inside the graphs; inputs and outputs are float32 either way. */
  dtype: "float32" | "float16";
  /** The resolved model config (informational here). */
  config: unknown;
  /** What view.onnx returns: logits for a sigmoid, or probabilities. */
  scoreKind: "logits" | "probabilities";
  /** Class-attention length of the head. */
  padLen: number;
  /** Prompt channels P of the text input (T, P, E): 1 = templates averaged, else one per template. */
  promptChannel: number;
  /** Prompt templates, each with one "{}". */
  templates: string[];
  text: { file: string; input: string; inputType: "int64" | "int32"; contextLength: number; output: string };
  view: {
    file: string;
    /** Side of the square views the graph takes (the window kernel). */
    kernel: number;
    inputs: { image: string; text: string };
    output: string;
    /** (h, w) of the per-class maps. */
    outputSize: [number, number];
    /** Most classes one call takes (null: any number). */
    maxClasses: number | null;
  };
  /**
   * The graph for more than pad_len classes (CAT-Seg's top-k path), when the export has one: same inputs and
   * output as `view`, used from `minClasses` classes on.
   */
  viewTopK?: {
    file: string;
    minClasses: number;
    inputs: { image: string; text: string };
    output: string;
    outputSize: [number, number];
  };
  /** Per graph file: its external-data file, when it has one. */
  files?: Record<string, { externalData?: string | null }>;
  verified?: unknown;
  exportedBy?: string;
}

function fail(where: string, field: string, want: string, got: unknown): never {
  throw new Error(`${where}: "${field}" must be ${want}, got ${JSON.stringify(got)}`);
}

function positiveInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) > 0;
}

function str(v: unknown): v is string {
  return typeof v === "string" && v !== "";
}

/** A parsed manifest.json checked against format version 1; `where` names the file in errors. */
export function checkManifest(json: unknown, where: string): OnnxManifest {
  const m = json as Record<string, unknown>;
  if (typeof m !== "object" || m === null) fail(where, "(root)", "an object", m);
  if (m.format !== "dedos-onnx") fail(where, "format", '"dedos-onnx" (a `dedos export` folder)', m.format);
  if (m.version !== 1)
    fail(where, "version", "1 (this dedos reads export format 1; update dedos for a newer one)", m.version);
  if (m.arch !== "catseg" && m.arch !== "dedos") fail(where, "arch", '"catseg" or "dedos"', m.arch);
  if (m.dtype !== "float32" && m.dtype !== "float16") fail(where, "dtype", '"float32" or "float16"', m.dtype);
  if (m.scoreKind !== "logits" && m.scoreKind !== "probabilities")
    fail(where, "scoreKind", '"logits" or "probabilities"', m.scoreKind);
  if (!positiveInt(m.padLen)) fail(where, "padLen", "a positive integer", m.padLen);
  if (!positiveInt(m.promptChannel)) fail(where, "promptChannel", "a positive integer", m.promptChannel);
  const templates = m.templates;
  if (
    !Array.isArray(templates) ||
    templates.length === 0 ||
    !templates.every((t) => str(t) && t.split("{}").length === 2)
  )
    fail(where, "templates", 'a non-empty list of strings with one "{}" each', templates);
  if (m.promptChannel !== 1 && m.promptChannel !== templates.length)
    fail(where, "promptChannel", `1 or the template count ${templates.length}`, m.promptChannel);
  const t = m.text as Record<string, unknown> | undefined;
  if (typeof t !== "object" || t === null) fail(where, "text", "an object", t);
  for (const k of ["file", "input", "output"]) if (!str(t[k])) fail(where, `text.${k}`, "a name", t[k]);
  if (t.inputType !== "int64" && t.inputType !== "int32")
    fail(where, "text.inputType", '"int64" or "int32"', t.inputType);
  if (!positiveInt(t.contextLength)) fail(where, "text.contextLength", "a positive integer", t.contextLength);
  const v = m.view as Record<string, unknown> | undefined;
  if (typeof v !== "object" || v === null) fail(where, "view", "an object", v);
  for (const k of ["file", "output"]) if (!str(v[k])) fail(where, `view.${k}`, "a name", v[k]);
  if (!positiveInt(v.kernel)) fail(where, "view.kernel", "a positive integer", v.kernel);
  const inputs = v.inputs as Record<string, unknown> | undefined;
  if (typeof inputs !== "object" || inputs === null || !str(inputs.image) || !str(inputs.text))
    fail(where, "view.inputs", '{ "image": name, "text": name }', inputs);
  const size = v.outputSize;
  if (!Array.isArray(size) || size.length !== 2 || !size.every(positiveInt))
    fail(where, "view.outputSize", "[h, w]", size);
  if (v.maxClasses !== null && v.maxClasses !== undefined && !positiveInt(v.maxClasses))
    fail(where, "view.maxClasses", "a positive integer or null", v.maxClasses);
  const tk = m.viewTopK as Record<string, unknown> | undefined;
  if (tk !== undefined) {
    if (typeof tk !== "object" || tk === null) fail(where, "viewTopK", "an object", tk);
    for (const k of ["file", "output"]) if (!str(tk[k])) fail(where, `viewTopK.${k}`, "a name", tk[k]);
    if (!positiveInt(tk.minClasses)) fail(where, "viewTopK.minClasses", "a positive integer", tk.minClasses);
    const ti = tk.inputs as Record<string, unknown> | undefined;
    if (typeof ti !== "object" || ti === null || !str(ti.image) || !str(ti.text))
      fail(where, "viewTopK.inputs", '{ "image": name, "text": name }', ti);
  }
  const maxClasses = (v.maxClasses as number | null | undefined) ?? null;
  return {
    ...(m as unknown as OnnxManifest),
    view: { ...(v as unknown as OnnxManifest["view"]), maxClasses },
  };
}

/**
 * The external-data file of a graph: what `files[file].externalData` names (null: none), else the exporter's
 * convention `<file>.data` (which may or may not exist).
 */
export function externalDataName(m: OnnxManifest, file: string): { name: string; known: boolean } | null {
  const entry = m.files?.[file];
  if (entry && "externalData" in entry)
    return entry.externalData ? { name: entry.externalData, known: true } : null;
  return { name: `${file}.data`, known: false };
}
