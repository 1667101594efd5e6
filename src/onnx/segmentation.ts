// Segmentation over an exported model (a `dedos export` folder) on any onnxruntime: the tokenizer, the prompt
// templates, text.onnx for the CLIP text features, the class-embedding math on arrays, then the engine-free
// sliding window (catseg/sliding-window.ts) with view.onnx as the per-view model. No libtorch anywhere on this
// path: it runs in Node over onnxruntime-node and in the browser over onnxruntime-web.
import { segmentWithViews, type ViewModel } from "../catseg/sliding-window.js";
import type { WindowPreset, WindowSpec } from "../catseg/window.js";
import { WINDOW_PRESETS } from "../catseg/window.js";
import { classEmbeddingsFromFeatures } from "../clip/prompt-features.js";
import { promptTexts } from "../clip/prompt-texts.js";
import type { TokenizedBatch, TokenizeOptions } from "../clip/tokenizer-core.js";
import type { RgbImage } from "../data/rgb.js";
import type { OnnxManifest } from "./manifest.js";
import type { OrtModule, OrtSession, OrtTensor } from "./runtime.js";

/** What the text side needs from a tokenizer (ClipTokenizer and ClipTokenizerCore satisfy it). */
export interface Tokenizer {
  tokenize(texts: readonly string[], opts?: TokenizeOptions): TokenizedBatch;
}

/** Class embeddings (T, P, E) as a flat array. */
export interface TextEmbeddings {
  data: Float32Array;
  shape: [number, number, number];
}

export interface OnnxSegmentOptions {
  synonyms?: "first" | "average";
  output?: "labels" | "scores" | "both";
  /** A step finished: `done` of `total` in "text", "view" or "postprocess". */
  progress?: (stage: "text" | "view" | "postprocess", done: number, total: number) => void;
  /** Checked between views: throw to cancel. */
  checkCancelled?: () => void;
}

/** Texts per text.onnx call (bounds its activations: N × 77 tokens). */
const TEXT_BATCH = 64;

function float32Of(t: OrtTensor, what: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new Error(`${what}: expected float32 data, got ${t.type}`);
  return t.data;
}

/** An exported model's two sessions with what the TypeScript half needs around them. */
export class OnnxSegmentation {
  private topK: Promise<OrtSession> | undefined;

  /**
   * `openTopK` opens the manifest's `viewTopK` graph; it is called on the first image with at least
   * `viewTopK.minClasses` classes (the graph holds the same weights again, so it is not opened before then).
   */
  constructor(
    readonly manifest: OnnxManifest,
    private readonly ort: OrtModule,
    private readonly textSession: OrtSession,
    private readonly viewSession: OrtSession,
    private readonly tokenizer: Tokenizer,
    private readonly openTopK?: (file: string) => Promise<OrtSession>,
  ) {}

  /** The view graph for T classes, with its input and output names. */
  private async viewGraph(
    T: number,
  ): Promise<{ session: OrtSession; inputs: { image: string; text: string }; output: string }> {
    const { view, viewTopK: tk } = this.manifest;
    if (view.maxClasses !== null && T > view.maxClasses)
      throw new Error(`onnx: this export takes at most ${view.maxClasses} classes per image, got ${T}`);
    if (!tk || T < tk.minClasses)
      return { session: this.viewSession, inputs: view.inputs, output: view.output };
    if (!this.openTopK)
      throw new Error(`onnx: ${T} classes need ${tk.file}, and no way to open it was given`);
    this.topK ??= this.openTopK(tk.file);
    return { session: await this.topK, inputs: tk.inputs, output: tk.output };
  }

  /** "catseg" or "dedos". */
  get kind(): "catseg" | "dedos" {
    return this.manifest.arch;
  }

  /** The window geometry for this export: `window` (its kernel must be the graph's), else the matching preset. */
  windowFor(window?: WindowPreset | WindowSpec): WindowSpec {
    const k = this.manifest.view.kernel;
    const spec =
      typeof window === "object"
        ? window
        : window
          ? WINDOW_PRESETS[window]
          : Object.values(WINDOW_PRESETS).find((p) => p.kernel === k);
    if (!spec)
      throw new Error(`onnx: no window preset has kernel ${k}; pass window: { kernel: ${k}, overlap }`);
    if (spec.kernel !== k)
      throw new Error(`onnx: window kernel ${spec.kernel} does not match the exported view size ${k}`);
    return spec;
  }

  /** CLIP text features (N, E) of `texts`, before normalisation (what text.onnx returns). */
  async textFeatures(texts: readonly string[]): Promise<{ data: Float32Array; E: number }> {
    const { input, output, contextLength: ctx, inputType } = this.manifest.text;
    const parts: Float32Array[] = [];
    let E = 0;
    for (let i = 0; i < texts.length; i += TEXT_BATCH) {
      const batch = texts.slice(i, i + TEXT_BATCH);
      const tok = this.tokenizer.tokenize(batch, { contextLength: ctx });
      const ids = inputType === "int64" ? BigInt64Array.from(tok.ids, (v) => BigInt(v)) : tok.ids;
      const feeds = { [input]: new this.ort.Tensor(inputType, ids, [batch.length, ctx]) };
      const out = (await this.textSession.run(feeds))[output];
      if (!out) throw new Error(`onnx: text graph gave no output "${output}"`);
      if (out.dims.length !== 2 || out.dims[0] !== batch.length)
        throw new Error(`onnx: text features of shape [${out.dims.join(", ")}] for ${batch.length} texts`);
      E = out.dims[1]!;
      parts.push(float32Of(out, "onnx text features").slice());
      out.dispose?.();
    }
    const data = new Float32Array(texts.length * E);
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    return { data, E };
  }

  /** Class embeddings (T, P, E) of class names, as the model's `textEmbeddings` computes them. */
  async textEmbeddings(
    classes: readonly string[],
    synonyms: "first" | "average" = "first",
  ): Promise<TextEmbeddings> {
    const { templates, promptChannel: P } = this.manifest;
    const { texts, groups } = promptTexts(classes, templates, synonyms);
    const { data, E } = await this.textFeatures(texts);
    return classEmbeddingsFromFeatures(data, E, groups, templates.length, P > 1 ? "none" : "mean");
  }

  /** The view graph as the sliding window's per-view model, for these class embeddings. */
  async viewModel(text: TextEmbeddings): Promise<ViewModel> {
    const { session, inputs, output } = await this.viewGraph(text.shape[0]);
    const kernel = this.manifest.view.kernel;
    const textTensor = new this.ort.Tensor("float32", text.data, text.shape);
    return {
      scoreKind: this.manifest.scoreKind,
      runView: async (view, k) => {
        if (k !== kernel) throw new Error(`onnx: a view of ${k} px for a graph of ${kernel} px`);
        const image = new this.ort.Tensor("float32", view, [1, 3, k, k]);
        const out = (await session.run({ [inputs.image]: image, [inputs.text]: textTensor }))[output];
        if (!out) throw new Error(`onnx: view graph gave no output "${output}"`);
        const [n, T, h, w] = out.dims as [number, number, number, number];
        if (out.dims.length !== 4 || n !== 1 || T !== text.shape[0])
          throw new Error(`onnx: view output of shape [${out.dims.join(", ")}] for ${text.shape[0]} classes`);
        const data = float32Of(out, "onnx view output").slice();
        out.dispose?.();
        return { data, classes: T, height: h, width: w };
      },
    };
  }

  /** Labels (and scores) of one 8-bit RGB image for `classes`. */
  async segment(
    rgb: RgbImage,
    classes: readonly string[],
    window: WindowPreset | WindowSpec | undefined,
    o: OnnxSegmentOptions = {},
  ): Promise<{ labels?: Uint16Array; scores?: Float32Array }> {
    const max = this.manifest.view.maxClasses;
    if (max !== null && classes.length > max)
      throw new Error(`onnx: this export takes at most ${max} classes per image, got ${classes.length}`);
    const spec = this.windowFor(window);
    const text = await this.textEmbeddings(classes, o.synonyms);
    if (text.shape[1] !== this.manifest.promptChannel)
      throw new Error(
        `onnx: ${text.shape[1]} prompts per class, the model takes ${this.manifest.promptChannel}`,
      );
    o.progress?.("text", 1, 1);
    o.checkCancelled?.();
    const r = await segmentWithViews(await this.viewModel(text), rgb, {
      window: spec,
      output: o.output,
      onView: (done, total) => {
        o.progress?.("view", done, total);
        o.checkCancelled?.();
      },
    });
    o.progress?.("postprocess", 1, 1);
    return { labels: r.labels, scores: r.scores };
  }

  /** Frees the sessions. */
  async release(): Promise<void> {
    await this.textSession.release?.();
    await this.viewSession.release?.();
    const topK = this.topK;
    this.topK = undefined;
    if (topK) await (await topK.catch(() => undefined))?.release?.();
  }
}
