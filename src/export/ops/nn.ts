// Converters of the layer ops: convolutions, normalisations, activations, resampling, pooling, linear
// layers and the engine's fused inference attention. Attribute conventions follow PyTorch's: pads are
// symmetric, bilinear/bicubic resizing uses half-pixel centres (or align_corners), bicubic a = −0.75.
import type { AttrValue } from "../onnx-proto.js";
import type { Num } from "../unify.js";
import { axis, type ConvertContext, type Converter } from "./context.js";

const pair = (v: number | number[]): number[] => (typeof v === "number" ? [v, v] : v);

function conv(c: ConvertContext): void {
  const [stride, padding, dilation] = [3, 4, 5].map((i) => pair(c.v<number | number[]>(i)));
  const inputs = [c.x(0), c.x(1), ...(c.xo(2) ? [c.xo(2)] : [])];
  const attrs = {
    strides: { ints: stride! },
    pads: { ints: [...padding!, ...padding!] },
    dilations: { ints: dilation! },
    group: { i: c.v<number>(6) },
  };
  const y = c.node("Conv", inputs, attrs);
  // conv2dInference's optional residual (argument 7), added to the result
  c.alias(c.op.args.length > 7 && c.xo(7) ? c.node("Add", [y, c.xo(7)]) : y);
}

/** x·Wᵀ + b (inputs 0, 1, 2). */
function linearCore(c: ConvertContext): string {
  const wt = c.node("Transpose", [c.x(1)], { perm: { ints: [1, 0] } });
  const bias = c.xo(2);
  if (c.rank(0) === 2 && bias) return c.node("Gemm", [c.x(0), wt, bias]);
  const y = c.node("MatMul", [c.x(0), wt]);
  return bias ? c.node("Add", [y, bias]) : y;
}

/** An activation of the engine's fused linear ("none", "gelu", "geluTanh", "quickGelu", "silu"). */
function activate(c: ConvertContext, x: string, act: string): string {
  const f = (v: number) => c.b.scalarOf("float32", v);
  if (act === "none") return x;
  if (act === "silu") return c.node("Mul", [x, c.node("Sigmoid", [x])]);
  if (act === "quickGelu") return c.node("Mul", [x, c.node("Sigmoid", [c.node("Mul", [x, f(1.702)])])]);
  let inner: string;
  if (act === "geluTanh") {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const x3 = c.node("Mul", [c.node("Mul", [x, x]), x]);
    const u = c.node("Mul", [
      c.node("Add", [x, c.node("Mul", [x3, f(0.044715)])]),
      f(Math.sqrt(2 / Math.PI)),
    ]);
    inner = c.node("Tanh", [u]);
  } else if (act === "gelu") {
    inner = c.node("Erf", [c.node("Div", [x, f(Math.SQRT2)])]); // exact: 0.5·x·(1 + erf(x/√2))
  } else {
    throw new Error(`export: activation "${act}" is not supported`);
  }
  return c.node("Mul", [c.node("Mul", [x, f(0.5)]), c.node("Add", [inner, f(1)])]);
}

const linear: Converter = (c) => c.alias(linearCore(c));

/** A per-channel vector (C) reshaped to broadcast over (N, C, …) of rank r. */
function channelVector(c: ConvertContext, v: string, C: number, r: number): string {
  return c.node("Reshape", [v, c.b.int64s([C, ...Array(r - 2).fill(1)])]);
}

function ones(c: ConvertContext, n: number, value: number): string {
  return c.b.constant("float32", [n], new Uint8Array(new Float32Array(n).fill(value).buffer), "ones");
}

function groupNorm(c: ConvertContext): string {
  const G = c.v<number>(1);
  const eps = c.v<number>(4);
  const x = c.value(0);
  const r = x.shape.length;
  const C = x.shape[1]!;
  // (N, C, …) → (N, G, C/G·…): InstanceNormalization normalises each (n, g) row over the rest.
  const grouped = c.node("Reshape", [c.x(0), c.b.ints([x.dims[0]!, G, -1])]);
  const normed = c.node("InstanceNormalization", [grouped, ones(c, G, 1), ones(c, G, 0)], {
    epsilon: { f: eps },
  });
  let y = c.node("Reshape", [normed, c.b.ints(x.dims)]);
  if (c.xo(2)) y = c.node("Mul", [y, channelVector(c, c.xo(2), C, r)]);
  if (c.xo(3)) y = c.node("Add", [y, channelVector(c, c.xo(3), C, r)]);
  return y;
}

function layerNorm(c: ConvertContext): void {
  const shape = c.v<number[]>(1);
  const n = shape.reduce((p, d) => p * d, 1);
  const scale = c.xo(2) || c.node("Reshape", [ones(c, n, 1), c.b.int64s(shape)]);
  const inputs = [c.x(0), scale, ...(c.xo(3) ? [c.xo(3)] : [])];
  const attrs = { axis: { i: -shape.length }, epsilon: { f: c.v<number>(4) } };
  c.node("LayerNormalization", inputs, attrs, [c.out()]);
}

function gelu(c: ConvertContext): void {
  c.alias(activate(c, c.x(0), c.v<string>(1) === "tanh" ? "geluTanh" : "gelu"));
}

function interpolate(c: ConvertContext): void {
  const [H, W] = pair(c.v<number | number[]>(1));
  const mode = c.v<string>(2);
  const alignCorners = c.v<boolean>(3);
  const x = c.value(0);
  const sizes = c.b.ints([x.dims[0]!, x.dims[1]!, H!, W!] as Num[]);
  const attrs: Record<string, AttrValue> =
    mode === "nearest"
      ? {
          mode: { s: "nearest" },
          coordinate_transformation_mode: { s: "asymmetric" },
          nearest_mode: { s: "floor" },
        }
      : {
          mode: { s: mode === "bilinear" ? "linear" : "cubic" },
          coordinate_transformation_mode: { s: alignCorners ? "align_corners" : "pytorch_half_pixel" },
          cubic_coeff_a: { f: -0.75 },
        };
  c.node("Resize", [c.x(0), "", "", sizes], attrs, [c.out()]);
}

function pad(c: ConvertContext): void {
  const pads = c.num(1) as Num[];
  const r = c.rank(0);
  const begin: Num[] = Array(r).fill(0);
  const end: Num[] = Array(r).fill(0);
  for (let i = 0; 2 * i < pads.length; i++) {
    begin[r - 1 - i] = pads[2 * i]!;
    end[r - 1 - i] = pads[2 * i + 1]!;
  }
  const mode = c.v<string>(2);
  const inputs = [c.x(0), c.b.ints([...begin, ...end])];
  if (mode === "constant") inputs.push(c.b.scalarOf("float32", c.v<number>(3)));
  c.node("Pad", inputs, { mode: { s: mode === "replicate" ? "edge" : mode } }, [c.out()]);
}

function pool(op: "AveragePool" | "MaxPool"): Converter {
  return (c) => {
    const [k, s, p] = [1, 2, 3].map((i) => pair(c.v<number | number[]>(i)));
    const attrs: Record<string, { i: number } | { ints: number[] }> = {
      kernel_shape: { ints: k! },
      strides: { ints: s! },
      pads: { ints: [...p!, ...p!] },
      ceil_mode: { i: c.v<boolean>(op === "MaxPool" ? 5 : 4) ? 1 : 0 },
    };
    if (op === "AveragePool") attrs.count_include_pad = { i: c.v<boolean>(5) ? 1 : 0 };
    else attrs.dilations = { ints: pair(c.v<number | number[]>(4)) };
    c.node(op, [c.x(0)], attrs, [c.out()]);
  };
}

export const NN_OPS: Record<string, Converter> = {
  conv2d: conv,
  conv2dInference: conv,
  convTranspose2d: (c) => {
    const [stride, padding, outPad] = [3, 4, 5].map((i) => pair(c.v<number | number[]>(i)));
    const inputs = [c.x(0), c.x(1), ...(c.xo(2) ? [c.xo(2)] : [])];
    const attrs = {
      strides: { ints: stride! },
      pads: { ints: [...padding!, ...padding!] },
      output_padding: { ints: outPad! },
      group: { i: c.v<number>(6) },
      dilations: { ints: pair(c.v<number | number[]>(7)) },
    };
    c.node("ConvTranspose", inputs, attrs, [c.out()]);
  },
  linear,
  linearInference: linear,
  linearAct: (c) => {
    // act(x·Wᵀ + b) + residual
    const y = activate(c, linearCore(c), c.v<string>(3));
    c.alias(c.xo(4) ? c.node("Add", [y, c.xo(4)]) : y);
  },
  layerNorm,
  groupNorm: (c) => c.alias(groupNorm(c)),
  groupNormAct: (c) => c.alias(activate(c, groupNorm(c), c.v<string>(5))),
  batchNorm: (c) => {
    if (c.v<boolean>(5)) throw new Error(`export: op "batchNorm" in training mode is not supported`);
    const C = c.shape(0)[1]!;
    const inputs = [c.xo(1) || ones(c, C, 1), c.xo(2) || ones(c, C, 0), c.x(3), c.x(4)];
    c.node("BatchNormalization", [c.x(0), ...inputs], { epsilon: { f: c.v<number>(7) } }, [c.out()]);
  },
  softmax: (c) =>
    void c.node("Softmax", [c.x(0)], { axis: { i: axis(c.v<number>(1), c.rank(0)) } }, [c.out()]),
  logSoftmax: (c) =>
    void c.node("LogSoftmax", [c.x(0)], { axis: { i: axis(c.v<number>(1), c.rank(0)) } }, [c.out()]),
  gelu,
  elu: (c) => void c.node("Elu", [c.x(0)], { alpha: { f: c.v<number>(1) } }, [c.out()]),
  leakyRelu: (c) => void c.node("LeakyRelu", [c.x(0)], { alpha: { f: c.v<number>(1) } }, [c.out()]),
  dropout: (c) => {
    if (c.v<boolean>(2)) throw new Error(`export: op "dropout" in training mode is not supported`);
    c.alias(c.x(0));
  },
  interpolate,
  pad,
  avgPool2d: pool("AveragePool"),
  maxPool2d: pool("MaxPool"),
  adaptiveAvgPool2d: (c) => {
    const [h, w] = pair(c.v<number | number[]>(1));
    const [, , H, W] = c.shape(0);
    if (h === 1 && w === 1) return void c.node("GlobalAveragePool", [c.x(0)], undefined, [c.out()]);
    if (H! % h! || W! % w!)
      throw new Error(`export: adaptiveAvgPool2d ${H}×${W} → ${h}×${w} is not a plain pooling`);
    const k = [H! / h!, W! / w!];
    c.node("AveragePool", [c.x(0)], { kernel_shape: { ints: k }, strides: { ints: k } }, [c.out()]);
  },
  attentionInference: (c) => {
    // softmax(q·scale @ kᵀ) @ v, as F.attention computes it
    const r = c.rank(1);
    const perm = [...Array(r).keys()];
    [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
    const kt = c.node("Transpose", [c.x(1)], { perm: { ints: perm } });
    const q = c.node("Mul", [c.x(0), c.b.scalarOf("float32", c.v<number>(3))]);
    let scores = c.node("MatMul", [q, kt]);
    if (c.xo(4)) scores = c.node("Add", [scores, c.xo(4)]); // additive mask
    const a = c.node("Softmax", [scores], { axis: { i: -1 } });
    c.node("MatMul", [a, c.x(2)], undefined, [c.out()]);
  },
};
