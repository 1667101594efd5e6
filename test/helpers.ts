// Shared test helpers: finite-difference gradient checks and numeric assertions.
import assert from "node:assert/strict";
import { noGrad, type Tensor, tensor, tidy } from "../src/torch/index.js";
import { native } from "../src/torch/native.js";

/** Asserts every |a − b| ≤ atol + rtol·|b|, reporting the worst index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol = 1e-6,
  rtol = 0,
  what = "values",
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    if (!(err <= worstErr)) {
      worstErr = Number.isNaN(err) ? Number.POSITIVE_INFINITY : err;
      worst = i;
    }
  }
  if (worst >= 0)
    assert.fail(
      `${what}: index ${worst}: got ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`,
    );
}

/**
 * Compares autograd gradients of a scalar function of float64 inputs with central finite differences.
 * `inputs` are flat arrays with shapes; the function receives fresh tensors.
 */
export function gradcheck(
  fn: (xs: Tensor[]) => Tensor,
  inputs: { data: number[]; shape: number[] }[],
  opts: { eps?: number; atol?: number; rtol?: number; name?: string } = {},
): void {
  const eps = opts.eps ?? 1e-6;
  const analytic = tidy(() => {
    const xs = inputs.map((x) => tensor(Float64Array.from(x.data), x.shape, { requiresGrad: true }));
    const y = fn(xs);
    assert.equal(y.numel, 1, "gradcheck needs a scalar output");
    y.backward();
    return xs.map((x) =>
      Array.from(x.grad ? (x.grad.toTypedArray() as Float64Array) : new Float64Array(x.numel)),
    );
  });
  const evalAt = (k: number, i: number, delta: number) =>
    noGrad(() =>
      tidy(() => {
        const xs = inputs.map((x, j) => {
          const d = Float64Array.from(x.data);
          if (j === k) d[i]! += delta;
          return tensor(d, x.shape);
        });
        return fn(xs).item();
      }),
    );
  inputs.forEach((x, k) => {
    const numeric = x.data.map((_, i) => (evalAt(k, i, eps) - evalAt(k, i, -eps)) / (2 * eps));
    assertClose(
      analytic[k]!,
      numeric,
      opts.atol ?? 1e-5,
      opts.rtol ?? 1e-4,
      `${opts.name ?? "gradcheck"} d/dx${k}`,
    );
  });
}

/** Deterministic pseudo-random numbers in [-1, 1) (no tensor RNG involved). */
export function pseudoRandom(n: number, seed = 1): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  });
}

/** `dedos train` arguments of a tiny run: config file, datasets root, run folder, then any more. */
export function trainCliArgs(config: string, data: string, out: string, ...more: string[]): string[] {
  return ["train", "--config", config, "--data", data, "--out", out, ...more];
}

/** `fn` with every oneDNN sgemm path off (DEDOS_DNNL_GEMM at run time): what ATen's own kernels compute. */
export function withAtenKernels<T>(fn: () => T): T {
  const was = native.inferenceGemmAvailable();
  native.setInferenceGemm(false);
  try {
    return fn();
  } finally {
    native.setInferenceGemm(was);
  }
}
