// Stand-ins for onnxruntime in tests: an OrtModule whose "sessions" are a libtorch CAT-Seg model (the graphs an
// export of that model would hold: text.onnx = CLIP's text features, view.onnx = head(encodeImage(view))), or
// pure TypeScript functions (no engine at all), plus an export folder's manifest for them.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CatSegModel } from "../../src/catseg/model.js";
import type { OnnxManifest } from "../../src/onnx/manifest.js";
import type { OrtModule, OrtSession, OrtTensor } from "../../src/onnx/runtime.js";
import { noGrad, tensor, tidy } from "../../src/torch/tensor.js";

class FakeTensor implements OrtTensor {
  constructor(
    readonly type: string,
    readonly data: Float32Array | BigInt64Array | Int32Array,
    readonly dims: readonly number[],
  ) {}
}

/** A runtime whose sessions are picked by file name: `text.onnx` → `text`, anything else → `view`. */
function runtimeOf(text: OrtSession, view: OrtSession, opened?: string[]): OrtModule {
  return {
    Tensor: FakeTensor,
    InferenceSession: {
      create: async (model) => {
        const name = String(model);
        opened?.push(name);
        return name.endsWith("text.onnx") ? text : view;
      },
    },
  };
}

/** The sessions an export of `model` would give, run by libtorch. */
export function torchRuntime(model: CatSegModel, opened?: string[]): OrtModule {
  const text: OrtSession = {
    run: async (feeds) => {
      const t = feeds.tokens!;
      const ids = Int32Array.from(t.data as BigInt64Array, (v) => Number(v));
      const out = noGrad(() => tidy(() => model.clip.encodeText(tensor(ids, [...t.dims]).long()))); // (N, E)
      const dims = out.shape;
      return { features: new FakeTensor("float32", out.intoTypedArray() as Float32Array, dims) };
    },
  };
  const view: OrtSession = {
    run: async (feeds) => {
      const { image, text: emb } = feeds as { image: OrtTensor; text: OrtTensor };
      const out = noGrad(() =>
        tidy(() => {
          const x = tensor(image.data as Float32Array, [...image.dims]);
          const e = tensor(emb.data as Float32Array, [...emb.dims]);
          return model.head(model.encodeImage(x), e, { poolingSize: [1, 1] }).contiguous(); // (1, T, h, w)
        }),
      );
      const dims = out.shape;
      return { logits: new FakeTensor("float32", out.intoTypedArray() as Float32Array, dims) };
    },
  };
  return runtimeOf(text, view, opened);
}

/**
 * Engine-free sessions: text features (N, 8) from the token ids; per view, 4×4 average pooling and per class
 * a linear map of the three channels by the class embedding's first three values.
 */
export function pureRuntime(opened?: string[]): OrtModule {
  const E = 8;
  const text: OrtSession = {
    run: async (feeds) => {
      const t = feeds.tokens!;
      const [N, L] = t.dims as [number, number];
      const ids = t.data as BigInt64Array;
      const out = new Float32Array(N * E);
      for (let n = 0; n < N; n++)
        for (let i = 0; i < L; i++) out[n * E + (i % E)] += Math.sin(Number(ids[n * L + i]!) * 0.37 + i);
      return { features: new FakeTensor("float32", out, [N, E]) };
    },
  };
  const view: OrtSession = {
    run: async (feeds) => {
      const { image, text: emb } = feeds as { image: OrtTensor; text: OrtTensor };
      const k = image.dims[2]!;
      const h = k / 4;
      const T = emb.dims[0]!;
      const [x, e] = [image.data as Float32Array, emb.data as Float32Array];
      const P = emb.dims[1]!;
      const out = new Float32Array(T * h * h);
      for (let t = 0; t < T; t++)
        for (let y = 0; y < h; y++)
          for (let z = 0; z < h; z++) {
            let s = 0;
            for (let c = 0; c < 3; c++)
              for (let dy = 0; dy < 4; dy++)
                for (let dz = 0; dz < 4; dz++)
                  s += x[c * k * k + (4 * y + dy) * k + 4 * z + dz]! * e[t * P * E + c]!;
            out[(t * h + y) * h + z] = s / 16 / 40;
          }
      return { logits: new FakeTensor("float32", out, [1, T, h, h]) };
    },
  };
  return runtimeOf(text, view, opened);
}

/** manifest.json of an export of a CAT-Seg model with `kernel`-px views, written with empty graph files. */
export function writeFakeExport(
  dir: string,
  o: { kernel?: number; padLen?: number; arch?: "catseg" | "dedos" } = {},
): OnnxManifest {
  const k = o.kernel ?? 384;
  const manifest: OnnxManifest = {
    format: "dedos-onnx",
    version: 1,
    arch: o.arch ?? "catseg",
    dtype: "float32",
    config: {},
    scoreKind: "logits",
    padLen: o.padLen ?? 8,
    promptChannel: 1,
    templates: ["A photo of a {} in the scene"],
    text: { file: "text.onnx", input: "tokens", inputType: "int64", contextLength: 77, output: "features" },
    view: {
      file: "view.onnx",
      kernel: k,
      inputs: { image: "image", text: "text" },
      output: "logits",
      outputSize: [k / 4, k / 4],
      maxClasses: null,
    },
    exportedBy: "test stand-in",
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  writeFileSync(join(dir, "text.onnx"), "");
  writeFileSync(join(dir, "view.onnx"), "");
  return manifest;
}
