// The part of the onnxruntime API the exported pipeline uses, as structural types: onnxruntime-node,
// onnxruntime-web and test stand-ins all satisfy them, so the pipeline (segmentation.ts) names no package.

/** A tensor handed to or returned by a session. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  /** Frees GPU-side data (onnxruntime-web); absent on plain CPU tensors of some builds. */
  dispose?(): void;
}

/** A loaded graph. */
export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}

/** An external-data file of a graph given as bytes (onnxruntime-web; Node reads it beside the graph file). */
export interface ExternalData {
  path: string;
  data: Uint8Array | string;
}

/** What creating a session takes beyond the graph: providers and runtime-specific options, passed through. */
export interface SessionCreateOptions {
  executionProviders?: unknown[];
  externalData?: ExternalData[];
  [option: string]: unknown;
}

/** The onnxruntime module: a tensor constructor and session creation (from a file path or the graph's bytes). */
export interface OrtModule {
  Tensor: new (
    type: "float32" | "int64" | "int32",
    data: Float32Array | BigInt64Array | Int32Array,
    dims: readonly number[],
  ) => OrtTensor;
  InferenceSession: {
    create(model: string | Uint8Array, options?: SessionCreateOptions): Promise<OrtSession>;
  };
}

/**
 * Execution providers for a device name: "cpu"; "cuda" or "cuda:N" (CUDA device N); any other name is
 * passed as a provider name ("webgpu", "wasm", "dml", "coreml", "tensorrt", …). CPU stays as the fallback.
 */
export function executionProviders(device: string | undefined): unknown[] {
  const d = (device ?? "cpu").trim();
  if (d === "" || d === "cpu") return ["cpu"];
  const cuda = /^cuda(?::(\d+))?$/.exec(d);
  if (cuda) return [{ name: "cuda", deviceId: Number(cuda[1] ?? 0) }, "cpu"];
  return [d, "cpu"];
}
