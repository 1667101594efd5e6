// Runs an exported graph with onnxruntime-node and compares it with libtorch's outputs. onnxruntime-node is
// imported when a check runs, so the library itself never requires it.
import type { Tensor } from "../torch/tensor.js";

/** The slice of onnxruntime-node's API used here. */
interface OrtTensor {
  data: ArrayLike<number | bigint>;
  dims: readonly number[];
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: {
    create(
      path: string,
      o?: { intraOpNumThreads?: number; graphOptimizationLevel?: string; enableCpuMemArena?: boolean },
    ): Promise<OrtSession>;
  };
  Tensor: new (type: string, data: ArrayLike<number | bigint>, dims: readonly number[]) => OrtTensor;
}

async function loadOrt(): Promise<Ort> {
  try {
    const name = "onnxruntime-node";
    const m = (await import(name)) as { default?: Ort } & Ort;
    return m.InferenceSession ? m : m.default!;
  } catch (e) {
    throw new Error(
      `export: checking the graphs needs onnxruntime-node (npm install onnxruntime-node): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

export interface Comparison {
  /** max |onnxruntime − libtorch| over the output. */
  maxAbsError: number;
  /** max |libtorch| (the output's scale). */
  maxAbs: number;
}

/** A graph loaded in onnxruntime-node, fed with engine tensors. */
export class OnnxChecker {
  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
  ) {}

  static async open(path: string, threads?: number): Promise<OnnxChecker> {
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(path, {
      graphOptimizationLevel: "all",
      // No arena: a check runs a few times only, and an arena would keep its peak for the whole export.
      enableCpuMemArena: false,
      ...(threads ? { intraOpNumThreads: threads } : {}),
    });
    return new OnnxChecker(ort, session);
  }

  /** Runs the graph on `feeds`; returns the named outputs as float64 arrays with their dims. */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, { data: Float64Array; dims: number[] }>> {
    const inputs: Record<string, OrtTensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const a = t.toTypedArray();
      const type = t.dtype === "int64" ? "int64" : t.dtype === "float32" ? "float32" : null;
      if (!type) throw new Error(`export: graph input ${name} is ${t.dtype} (float32 or int64 expected)`);
      inputs[name] = new this.ort.Tensor(type, a as ArrayLike<number>, t.shape);
    }
    const out = await this.session.run(inputs);
    const res: Record<string, { data: Float64Array; dims: number[] }> = {};
    for (const [name, t] of Object.entries(out)) {
      res[name] = { data: Float64Array.from(t.data as ArrayLike<number>, Number), dims: [...t.dims] };
    }
    return res;
  }

  /** Runs the graph and compares output `name` with libtorch's `expected`. */
  async compare(feeds: Record<string, Tensor>, name: string, expected: Tensor): Promise<Comparison> {
    const got = (await this.run(feeds))[name];
    if (!got) throw new Error(`export: the graph has no output "${name}"`);
    if (got.dims.join() !== expected.shape.join())
      throw new Error(
        `export: output "${name}" is [${got.dims.join(", ")}] in onnxruntime, [${expected.shape.join(", ")}] in libtorch`,
      );
    return compareArrays(got.data, expected.toTypedArray() as Float32Array);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export function compareArrays(got: ArrayLike<number>, want: ArrayLike<number>): Comparison {
  let maxAbsError = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    // NaN anywhere makes the error infinite (a graph must not produce NaN where libtorch does not)
    maxAbsError = Number.isNaN(e) ? Number.POSITIVE_INFINITY : Math.max(maxAbsError, e);
    maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
  }
  return { maxAbsError, maxAbs };
}
