// The Tensor class: a typed face over one libtorch tensor, plus scopes that free temporaries deterministically.
import {
  type AnyTypedArray,
  type Device,
  type DType,
  dtypeCode,
  dtypeName,
  dtypeOfArray,
  typedArrayFromBuffer,
} from "./dtype.js";
import { type NativeTensor, native } from "./native.js";

// ---------------------------------------------------------------------------------------------------------
// Scopes. Every tensor created while a scope is open belongs to it; when the scope closes, its tensors are
// freed except those returned (or explicitly kept), which move to the enclosing scope. Freeing is
// immediate (the libtorch storage is released), not left to the garbage collector.

const scopes: Tensor[][] = [];

/** Runs `fn`, then frees every tensor created inside it that is not part of its result. */
export function tidy<T>(fn: () => T): T {
  const scope: Tensor[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    // Kept tensors (caches, parameters created in the scope) belong to their owner, also on failure.
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new Error(
      "tidy(): the function returned a Promise; scopes are synchronous (await outside, tidy inside)",
    );
  }
  const keep = new Set<Tensor>();
  collectTensors(result, keep, 0);
  const parent = scopes.length > 0 ? scopes[scopes.length - 1] : undefined;
  for (const t of scope) {
    if (keep.has(t) || t.kept) {
      if (t.kept) continue;
      if (parent) parent.push(t);
      else collectWhenUnreachable(t);
    } else {
      t.dispose();
    }
  }
  return result;
}

function collectTensors(v: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 6 || v === null || typeof v !== "object") return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, out, depth + 1);
    return;
  }
  if (v instanceof Map) {
    for (const x of v.values()) collectTensors(x, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v as Record<string, unknown>)) collectTensors(x, out, depth + 1);
  }
}

/** Marks tensors as owned by the caller: no scope will free them (module parameters, caches). */
export function keep<T extends Tensor | Tensor[]>(t: T): T {
  for (const x of Array.isArray(t) ? t : [t]) x.keep();
  return t;
}

// Tensors owned by no scope (created outside every scope, returned from the outermost one, or kept) are
// freed by the garbage collector if the program drops them without dispose(); scoped ones never need it.
// Registration is batched: most such tensors are disposed within the same task (a.add(b).dispose()), and
// those never need registering at all.
const collector = new FinalizationRegistry<number>((id) => N.free(id));
let pending: Tensor[] = [];
function flushPending(): void {
  const ts = pending;
  pending = [];
  for (const t of ts) {
    if (t.collected || t.handle === 0) continue;
    collector.register(t, t.handle, t);
    t.collected = true;
  }
}
function collectWhenUnreachable(t: Tensor): void {
  if (t.collected || t.handle === 0) return;
  if (pending.length === 0) queueMicrotask(flushPending);
  pending.push(t);
  if (pending.length >= 4096) flushPending();
}

/** Frees tensors (or arrays / objects of them) now. */
export function dispose(v: unknown): void {
  const s = new Set<Tensor>();
  collectTensors(v, s, 0);
  for (const t of s) t.dispose();
}

// ---------------------------------------------------------------------------------------------------------

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;

type H = NativeTensor;
const N = native;

/** The native argument for a tensor-or-number operand (ops also receive a flag saying which it is). */
function h(x: TensorOrScalar): H | Scalar {
  return x instanceof Tensor ? x.handle : x;
}

function wrapList(hs: H[]): Tensor[] {
  return hs.map((x) => new Tensor(x));
}

/** A libtorch tensor. Create with the factories in this module (`tensor`, `zeros`, `randn`, …). */
export class Tensor {
  /** @internal The native slot id (0 once disposed). */ handle: H;
  /** @internal */ kept = false;
  /** @internal Registered for collection by the garbage collector (owned by no scope). */ collected = false;

  /** @internal Wraps a native handle; use the factory functions instead. */
  constructor(handle: H) {
    this.handle = handle;
    const n = scopes.length;
    if (n > 0) scopes[n - 1]!.push(this);
    else collectWhenUnreachable(this);
  }

  // ---- metadata ----
  get shape(): number[] {
    return N.shape(this.handle);
  }
  get ndim(): number {
    return N.shape(this.handle).length;
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? s.length + dim : dim]!;
  }
  get strides(): number[] {
    return N.strides(this.handle);
  }
  get numel(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }
  get dtype(): DType {
    return dtypeName(N.dtype(this.handle));
  }
  get device(): Device {
    return N.device(this.handle);
  }
  isContiguous(): boolean {
    return N.isContiguous(this.handle);
  }
  toString(): string {
    return this.isDisposed
      ? "Tensor(disposed)"
      : `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- lifetime ----
  /** Frees the tensor's memory now (views of it stay valid: storage is reference counted). */
  dispose(): void {
    if (this.handle === 0) return;
    N.free(this.handle);
    this.handle = 0;
    if (this.collected) {
      collector.unregister(this);
      this.collected = false;
    }
  }
  get isDisposed(): boolean {
    return this.handle === 0;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** Excludes this tensor from scope cleanup (see `keep`). */
  keep(): this {
    this.kept = true;
    collectWhenUnreachable(this);
    return this;
  }

  // ---- data out ----
  /** A copy of the elements in row-major order (float16/bfloat16 as raw 16-bit patterns). */
  toTypedArray(): AnyTypedArray {
    return typedArrayFromBuffer(this.dtype, N.toBuffer(this.handle));
  }
  /**
   * The elements as a typed array, consuming the tensor (it is disposed). When this tensor is the only owner
   * of its contiguous memory the array adopts that memory without copying; otherwise it gets a copy.
   */
  intoTypedArray(): AnyTypedArray {
    const dtype = this.dtype;
    const buf: ArrayBuffer = N.takeBuffer(this.handle);
    this.handle = 0;
    if (this.collected) {
      collector.unregister(this);
      this.collected = false;
    }
    return typedArrayFromBuffer(dtype, buf);
  }
  /** Elements as float32 (converting other dtypes). */
  toFloat32Array(): Float32Array {
    if (this.dtype === "float32") return new Float32Array(N.toBuffer(this.handle));
    const t = new Tensor(N.to(this.handle, dtypeCode("float32"), null, false));
    try {
      return new Float32Array(N.toBuffer(t.handle));
    } finally {
      t.dispose();
    }
  }
  /** Elements as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const a =
      this.dtype === "float16" || this.dtype === "bfloat16" ? this.toFloat32Array() : this.toTypedArray();
    return Array.from(a as ArrayLike<number | bigint>, (x) => Number(x));
  }
  /** The value of a one-element tensor. */
  item(): number {
    return Number(N.item(this.handle));
  }

  // ---- conversion ----
  to(target: DType | Device | { dtype?: DType; device?: Device }, copy = false): Tensor {
    let dt: DType | undefined;
    let dev: Device | undefined;
    if (typeof target === "string") {
      if (target === "cpu" || target.startsWith("cuda")) dev = target;
      else dt = target as DType;
    } else {
      dt = target.dtype;
      dev = target.device;
    }
    return new Tensor(N.to(this.handle, dt === undefined ? null : dtypeCode(dt), dev ?? null, copy));
  }
  float(): Tensor {
    return this.to("float32");
  }
  long(): Tensor {
    return this.to("int64");
  }
  clone(): Tensor {
    return new Tensor(N.clone(this.handle));
  }
  detach(): Tensor {
    return new Tensor(N.detach(this.handle));
  }
  /**
   * The same values in row-major memory, or with `"channelsLast"` a 4-d (N, C, H, W) tensor stored as
   * (N, H, W, C): PyTorch's memory_format=torch.channels_last, the layout oneDNN convolutions run without
   * reorders (their output keeps it). Returns this tensor's storage when it is already laid out so.
   */
  contiguous(memoryFormat: "contiguous" | "channelsLast" = "contiguous"): Tensor {
    return new Tensor(
      memoryFormat === "channelsLast" ? N.contiguousChannelsLast(this.handle) : N.contiguous(this.handle),
    );
  }

  // ---- shape ----
  view(...shape: number[]): Tensor {
    return new Tensor(N.view(this.handle, shape));
  }
  reshape(...shape: number[]): Tensor {
    return new Tensor(N.reshape(this.handle, shape));
  }
  permute(...dims: number[]): Tensor {
    return new Tensor(N.permute(this.handle, dims));
  }
  transpose(a: number, b: number): Tensor {
    return new Tensor(N.transpose(this.handle, a, b));
  }
  /** Transpose of the last two dimensions. */
  get mT(): Tensor {
    return new Tensor(N.transpose(this.handle, -2, -1));
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(N.flatten(this.handle, start, end));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(N.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(N.squeeze(this.handle, dim ?? null));
  }
  expand(...shape: number[]): Tensor {
    return new Tensor(N.expand(this.handle, shape));
  }
  expandAs(other: Tensor): Tensor {
    return new Tensor(N.expand(this.handle, other.shape));
  }
  repeat(...reps: number[]): Tensor {
    return new Tensor(N.repeat(this.handle, reps));
  }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return new Tensor(N.repeatInterleave(this.handle, repeats, dim));
  }
  flip(...dims: number[]): Tensor {
    return new Tensor(N.flip(this.handle, dims));
  }
  roll(shifts: number | number[], dims: number | number[]): Tensor {
    return new Tensor(N.roll(this.handle, shifts, dims));
  }
  /** Elements start..end (exclusive, negative from the end, end omitted = to the end) along `dim`. */
  slice(dim: number, start: number, end?: number, step = 1): Tensor {
    return new Tensor(N.slice(this.handle, dim, start, end ?? null, step));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(N.narrow(this.handle, dim, start, length));
  }
  /** Index `i` along `dim`, removing that dimension. */
  select(dim: number, i: number): Tensor {
    return new Tensor(N.select(this.handle, dim, i));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(N.indexSelect(this.handle, dim, index.handle));
  }
  /** Advanced indexing: `t.index([null, idx])` is `t[:, idx]`. */
  index(indices: (Tensor | null)[]): Tensor {
    return new Tensor(
      N.index(
        this.handle,
        indices.map((x) => (x ? x.handle : null)),
      ),
    );
  }
  /** Out-of-place `t[indices] = values` (or `+=` with accumulate). */
  indexPut(indices: (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
    return new Tensor(
      N.indexPut(
        this.handle,
        indices.map((x) => (x ? x.handle : null)),
        values.handle,
        accumulate,
      ),
    );
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(N.gather(this.handle, dim, index.handle));
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return new Tensor(N.scatter(this.handle, dim, index.handle, h(src), src instanceof Tensor));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(N.scatterAdd(this.handle, dim, index.handle, src.handle));
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return new Tensor(N.maskedFill(this.handle, mask.handle, h(value), value instanceof Tensor));
  }
  maskedSelect(mask: Tensor): Tensor {
    return new Tensor(N.maskedSelect(this.handle, mask.handle));
  }
  nonzero(): Tensor {
    return new Tensor(N.nonzero(this.handle));
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return wrapList(N.split(this.handle, sizeOrSizes, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(N.chunk(this.handle, chunks, dim));
  }
  /** Sliding windows of `size` with `step` along `dim` (Tensor.unfold). */
  unfold(dim: number, size: number, step: number): Tensor {
    return new Tensor(N.unfoldDim(this.handle, dim, size, step));
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(N.tril(this.handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(N.triu(this.handle, diagonal));
  }

  // ---- elementwise ----
  add(o: TensorOrScalar): Tensor {
    return new Tensor(N.add(this.handle, h(o), o instanceof Tensor));
  }
  sub(o: TensorOrScalar): Tensor {
    return new Tensor(N.sub(this.handle, h(o), o instanceof Tensor));
  }
  /** scalar − this */
  rsub(s: number): Tensor {
    return new Tensor(N.rsub(this.handle, s));
  }
  mul(o: TensorOrScalar): Tensor {
    return new Tensor(N.mul(this.handle, h(o), o instanceof Tensor));
  }
  div(o: TensorOrScalar): Tensor {
    return new Tensor(N.div(this.handle, h(o), o instanceof Tensor));
  }
  pow(o: TensorOrScalar): Tensor {
    return new Tensor(N.pow(this.handle, h(o), o instanceof Tensor));
  }
  remainder(o: TensorOrScalar): Tensor {
    return new Tensor(N.remainder(this.handle, h(o), o instanceof Tensor));
  }
  maximum(o: TensorOrScalar): Tensor {
    return new Tensor(N.maximum(this.handle, h(o), o instanceof Tensor));
  }
  minimum(o: TensorOrScalar): Tensor {
    return new Tensor(N.minimum(this.handle, h(o), o instanceof Tensor));
  }
  eq(o: TensorOrScalar): Tensor {
    return new Tensor(N.eq(this.handle, h(o), o instanceof Tensor));
  }
  ne(o: TensorOrScalar): Tensor {
    return new Tensor(N.ne(this.handle, h(o), o instanceof Tensor));
  }
  lt(o: TensorOrScalar): Tensor {
    return new Tensor(N.lt(this.handle, h(o), o instanceof Tensor));
  }
  le(o: TensorOrScalar): Tensor {
    return new Tensor(N.le(this.handle, h(o), o instanceof Tensor));
  }
  gt(o: TensorOrScalar): Tensor {
    return new Tensor(N.gt(this.handle, h(o), o instanceof Tensor));
  }
  ge(o: TensorOrScalar): Tensor {
    return new Tensor(N.ge(this.handle, h(o), o instanceof Tensor));
  }
  logicalAnd(o: TensorOrScalar): Tensor {
    return new Tensor(N.logicalAnd(this.handle, h(o), o instanceof Tensor));
  }
  logicalOr(o: TensorOrScalar): Tensor {
    return new Tensor(N.logicalOr(this.handle, h(o), o instanceof Tensor));
  }
  logicalNot(): Tensor {
    return new Tensor(N.logicalNot(this.handle));
  }
  neg(): Tensor {
    return new Tensor(N.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(N.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(N.log(this.handle));
  }
  log1p(): Tensor {
    return new Tensor(N.log1p(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(N.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(N.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(N.abs(this.handle));
  }
  sign(): Tensor {
    return new Tensor(N.sign(this.handle));
  }
  square(): Tensor {
    return new Tensor(N.square(this.handle));
  }
  reciprocal(): Tensor {
    return new Tensor(N.reciprocal(this.handle));
  }
  sin(): Tensor {
    return new Tensor(N.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(N.cos(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(N.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return new Tensor(N.sigmoid(this.handle));
  }
  erf(): Tensor {
    return new Tensor(N.erf(this.handle));
  }
  floor(): Tensor {
    return new Tensor(N.floor(this.handle));
  }
  ceil(): Tensor {
    return new Tensor(N.ceil(this.handle));
  }
  round(): Tensor {
    return new Tensor(N.round(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(N.isnan(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(N.isfinite(this.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return new Tensor(N.clamp(this.handle, min ?? null, max ?? null));
  }
  lerp(end: Tensor, weight: number): Tensor {
    return new Tensor(N.lerp(this.handle, end.handle, weight));
  }

  // ---- reductions ----
  /** Sum over `dim` (all dims when omitted). */
  sum(dim?: number | number[], keepdim = false, dtype?: DType): Tensor {
    return new Tensor(N.sum(this.handle, dim ?? null, keepdim, dtype ? dtypeCode(dtype) : null));
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.mean(this.handle, dim ?? null, keepdim));
  }
  prod(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.prod(this.handle, dim ?? null, keepdim));
  }
  /** Variance with Bessel's correction by default (`correction` 1), as torch.var. */
  var(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(N.var(this.handle, dim ?? null, opts.correction ?? 1, opts.keepdim ?? false));
  }
  std(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(N.std(this.handle, dim ?? null, opts.correction ?? 1, opts.keepdim ?? false));
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return new Tensor(N.norm(this.handle, p, dim ?? null, keepdim));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(N.logsumexp(this.handle, dim, keepdim));
  }
  amax(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(N.amax(this.handle, dim, keepdim));
  }
  amin(dim: number | number[], keepdim = false): Tensor {
    return new Tensor(N.amin(this.handle, dim, keepdim));
  }
  /** The largest element (a 0-d tensor). */
  max(): Tensor {
    return new Tensor(N.maxAll(this.handle));
  }
  min(): Tensor {
    return new Tensor(N.minAll(this.handle));
  }
  /** Values and indices of the maximum along `dim`. */
  maxDim(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = N.maxDim(this.handle, dim, keepdim);
    return [new Tensor(v), new Tensor(i)];
  }
  minDim(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = N.minDim(this.handle, dim, keepdim);
    return [new Tensor(v), new Tensor(i)];
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.argmax(this.handle, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(N.argmin(this.handle, dim ?? null, keepdim));
  }
  all(): Tensor {
    return new Tensor(N.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(N.any(this.handle));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    const [v, i] = N.topk(this.handle, k, dim, largest, sorted);
    return [new Tensor(v), new Tensor(i)];
  }
  sort(dim = -1, descending = false, stable = false): [Tensor, Tensor] {
    const [v, i] = N.sort(this.handle, dim, descending, stable);
    return [new Tensor(v), new Tensor(i)];
  }
  cumsum(dim: number): Tensor {
    return new Tensor(N.cumsum(this.handle, dim));
  }
  cumprod(dim: number): Tensor {
    return new Tensor(N.cumprod(this.handle, dim));
  }
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return N.allclose(this.handle, o.handle, rtol, atol);
  }
  equal(o: Tensor): boolean {
    return N.equal(this.handle, o.handle);
  }

  // ---- linear algebra ----
  matmul(o: Tensor): Tensor {
    return new Tensor(N.matmul(this.handle, o.handle));
  }
  bmm(o: Tensor): Tensor {
    return new Tensor(N.bmm(this.handle, o.handle));
  }

  // ---- in place (for optimisers, initialisers, accumulators; not for tensors inside an autograd graph) ----
  copy_(src: Tensor): this {
    N.copy_(this.handle, src.handle);
    return this;
  }
  fill_(v: Scalar): this {
    N.fill_(this.handle, v);
    return this;
  }
  zero_(): this {
    N.zero_(this.handle);
    return this;
  }
  add_(o: TensorOrScalar, alpha?: number): this {
    if (alpha === undefined) N.add_(this.handle, h(o), o instanceof Tensor);
    else if (o instanceof Tensor) N.add_(this.handle, o.handle, true, alpha);
    else N.add_(this.handle, Number(o) * alpha, false); // the addon applies alpha to tensor operands only
    return this;
  }
  mul_(o: TensorOrScalar): this {
    N.mul_(this.handle, h(o), o instanceof Tensor);
    return this;
  }
  uniform_(low: number, high: number, gen?: Generator): this {
    N.uniform_(this.handle, low, high, gen?.handle ?? null);
    return this;
  }
  normal_(mean: number, std: number, gen?: Generator): this {
    N.normal_(this.handle, mean, std, gen?.handle ?? null);
    return this;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return N.requiresGrad(this.handle);
  }
  /** Turns gradient tracking on or off for this (leaf) tensor. */
  requiresGrad_(on = true): this {
    N.setRequiresGrad(this.handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return N.isLeaf(this.handle);
  }
  /** The accumulated gradient, or null. */
  get grad(): Tensor | null {
    const g = N.grad(this.handle);
    return g ? new Tensor(g) : null;
  }
  set grad(g: Tensor | null) {
    N.setGrad(this.handle, g ? g.handle : null);
  }
  retainGrad(): void {
    N.retainGrad(this.handle);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    N.backward(this.handle, gradient?.handle ?? null, opts.retainGraph ?? false, opts.createGraph ?? false);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Factories

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o?: TensorOptions): Tensor {
  if (o?.requiresGrad) t.requiresGrad_(true);
  return t;
}
const dt = (o?: TensorOptions) => (o?.dtype ? dtypeCode(o.dtype) : null);
const dev = (o?: TensorOptions) => o?.device ?? null;

/**
 * A tensor from a typed array (copied) or nested number arrays.
 * @example tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
 */
export function tensor(
  data: AnyTypedArray | number[] | number[][] | number[][][],
  shape?: number[],
  opts: TensorOptions = {},
): Tensor {
  let arr: AnyTypedArray;
  let inferred: number[];
  if (ArrayBuffer.isView(data)) {
    arr = data as AnyTypedArray;
    inferred = [arr.length];
  } else {
    inferred = [];
    let d: unknown = data;
    while (Array.isArray(d)) {
      inferred.push(d.length);
      d = d[0];
    }
    const flat = (data as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
    const want = opts.dtype ?? "float32";
    arr = want === "int64" ? BigInt64Array.from(flat, (x) => BigInt(x)) : fromNumbers(flat, want);
  }
  const dtype = opts.dtype ?? dtypeOfArray(arr);
  let t = new Tensor(N.fromBuffer(arr, dtypeCode(dtype), shape ?? inferred));
  if (opts.device && opts.device !== "cpu") {
    const moved = t.to(opts.device);
    t.dispose();
    t = moved;
  }
  return finish(t, opts);
}

function fromNumbers(flat: number[], d: DType): AnyTypedArray {
  switch (d) {
    case "float64":
      return Float64Array.from(flat);
    case "int32":
      return Int32Array.from(flat);
    case "int16":
      return Int16Array.from(flat);
    case "int8":
      return Int8Array.from(flat);
    case "uint8":
    case "bool":
      return Uint8Array.from(flat);
    case "float32":
      return Float32Array.from(flat);
    default:
      throw new TypeError(`tensor(): build ${d} tensors from float32 data and convert with .to('${d}')`);
  }
}

export function zeros(shape: number[], opts?: TensorOptions): Tensor {
  return finish(new Tensor(N.zeros(shape, dt(opts), dev(opts))), opts);
}
export function ones(shape: number[], opts?: TensorOptions): Tensor {
  return finish(new Tensor(N.ones(shape, dt(opts), dev(opts))), opts);
}
export function empty(shape: number[], opts?: TensorOptions): Tensor {
  return finish(new Tensor(N.empty(shape, dt(opts), dev(opts))), opts);
}
export function full(shape: number[], value: Scalar, opts?: TensorOptions): Tensor {
  return finish(new Tensor(N.full(shape, value, dt(opts), dev(opts))), opts);
}
export function scalarTensor(value: Scalar, opts?: TensorOptions): Tensor {
  return new Tensor(N.scalarTensor(value, dt(opts), dev(opts)));
}
/** [start, end) in steps; one argument means [0, end). Integer arguments give int64 unless dtype says otherwise. */
export function arange(start: number, end?: number, step = 1, opts?: TensorOptions): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  return new Tensor(N.arange(start, end, step, dt(opts), dev(opts)));
}
export function linspace(start: number, end: number, steps: number, opts?: TensorOptions): Tensor {
  return new Tensor(N.linspace(start, end, steps, dt(opts), dev(opts)));
}
export function eye(n: number, opts?: TensorOptions): Tensor {
  return new Tensor(N.eye(n, dt(opts), dev(opts)));
}
export function zerosLike(t: Tensor): Tensor {
  return new Tensor(N.zerosLike(t.handle));
}
export function onesLike(t: Tensor): Tensor {
  return new Tensor(N.onesLike(t.handle));
}
export function fullLike(t: Tensor, v: Scalar): Tensor {
  return new Tensor(N.fullLike(t.handle, v));
}

export function cat(ts: Tensor[], dim = 0): Tensor {
  return new Tensor(
    N.cat(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
export function stack(ts: Tensor[], dim = 0): Tensor {
  return new Tensor(
    N.stack(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}
/** Elementwise choice: `cond ? a : b`. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return new Tensor(N.where(cond.handle, h(a), h(b), a instanceof Tensor, b instanceof Tensor));
}
export function einsum(equation: string, ...ts: Tensor[]): Tensor {
  return new Tensor(
    N.einsum(
      equation,
      ts.map((t) => t.handle),
    ),
  );
}
export function kron(a: Tensor, b: Tensor): Tensor {
  return new Tensor(N.kron(a.handle, b.handle));
}
export function outer(a: Tensor, b: Tensor): Tensor {
  return new Tensor(N.outer(a.handle, b.handle));
}
/** input·beta + alpha·(a @ b), batched. */
export function baddbmm(input: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor {
  return new Tensor(N.baddbmm(input.handle, a.handle, b.handle, beta, alpha));
}
export function oneHot(t: Tensor, numClasses: number): Tensor {
  return new Tensor(N.oneHot(t.handle, numClasses));
}
export function bincount(t: Tensor, minlength = 0, weights?: Tensor): Tensor {
  return new Tensor(N.bincount(t.handle, weights?.handle ?? null, minlength));
}

// ---- random ----

/** A seeded random-number generator (a libtorch CPU generator). */
export class Generator {
  /** @internal */ readonly handle: unknown;
  constructor(seed: number) {
    this.handle = N.makeGenerator(seed);
  }
  /** The generator's full state (a uint8 tensor) for checkpoints. */
  getState(): Tensor {
    return new Tensor(N.generatorState(this.handle));
  }
  setState(state: Tensor): void {
    N.setGeneratorState(this.handle, state.handle);
  }
}

/** Seeds libtorch's default generator. */
export function manualSeed(seed: number): void {
  N.manualSeed(seed);
}
export function defaultGeneratorState(): Tensor {
  return new Tensor(N.defaultGeneratorState());
}
export function setDefaultGeneratorState(s: Tensor): void {
  N.setDefaultGeneratorState(s.handle);
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}
export function rand(shape: number[], opts?: RandomOptions): Tensor {
  return finish(new Tensor(N.rand(shape, opts?.generator?.handle ?? null, dt(opts), dev(opts))), opts);
}
export function randn(shape: number[], opts?: RandomOptions): Tensor {
  return finish(new Tensor(N.randn(shape, opts?.generator?.handle ?? null, dt(opts), dev(opts))), opts);
}
/** Integers in [low, high). */
export function randint(low: number, high: number, shape: number[], opts?: RandomOptions): Tensor {
  return new Tensor(N.randint(low, high, shape, opts?.generator?.handle ?? null, dt(opts), dev(opts)));
}
export function randperm(n: number, opts?: RandomOptions): Tensor {
  return new Tensor(N.randperm(n, opts?.generator?.handle ?? null, dt(opts), dev(opts)));
}
/** A 0/1 float tensor shaped like `like`, each element 1 with probability `p`. */
export function bernoulli(like: Tensor, p: number, generator?: Generator): Tensor {
  return new Tensor(N.bernoulli(like.handle, p, generator?.handle ?? null));
}

// ---- grad mode ----

/** Runs `fn` with gradient tracking off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = N.setGradEnabled(false);
  try {
    return fn();
  } finally {
    N.setGradEnabled(prev);
  }
}
export function isGradEnabled(): boolean {
  return N.isGradEnabled();
}
export function setGradEnabled(on: boolean): boolean {
  return N.setGradEnabled(on);
}

/**
 * Runs `fn` under automatic mixed precision (torch.autocast): matmuls, convolutions and linears run in
 * `dtype` on `device`, precision-sensitive ops stay in float32. Regions nest.
 */
export function autocast<T>(device: "cpu" | "cuda", dtype: "bfloat16" | "float16", fn: () => T): T {
  const [prev, prevDtype] = N.setAutocast(device, true, dtypeCode(dtype), true) as [boolean, number];
  try {
    return fn();
  } finally {
    N.setAutocast(device, prev, prevDtype, false);
  }
}

/** Gradients of `outputs` with respect to `inputs` (torch.autograd.grad). */
export function autogradGrad(
  outputs: Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): (Tensor | null)[] {
  const res: (H | null)[] = N.autogradGrad(
    outputs.map((t) => t.handle),
    inputs.map((t) => t.handle),
    opts.gradOutputs ? opts.gradOutputs.map((t) => t.handle) : null,
    opts.retainGraph ?? false,
    opts.createGraph ?? false,
    opts.allowUnused ?? false,
  );
  return res.map((x) => (x ? new Tensor(x) : null));
}

// ---- threads and diagnostics ----

export function setNumThreads(n: number): void {
  N.setNumThreads(n);
}
export function getNumThreads(): number {
  return N.getNumThreads();
}
export function hasCuda(): boolean {
  return N.hasCuda();
}
/** Bytes of tensor storage currently reported to V8 as external memory. */
export function liveTensorBytes(): number {
  return N.reportedBytes();
}

/** The CPU caching allocator's state for blocks of 1 MiB and more (native/src/allocator.cpp). */
export interface AllocatorStats {
  /** Bytes of freed blocks kept for reuse. */
  idleBytes: number;
  /** Capacity of every large block, in use or idle. */
  largeBytes: number;
  /** Large requests served from the cache. */
  hits: number;
  /** Large requests served by a new block (fresh pages the kernel has to fault in and clear). */
  misses: number;
  /** Capacity of all new blocks so far. */
  newBytes: number;
  /** Most large-block bytes in use at once since the previous reading (each reading starts a new peak). */
  peakInUseBytes: number;
}
export function allocatorStats(): AllocatorStats {
  return N.allocatorStats() as AllocatorStats;
}
/** Returns the CPU allocator's idle blocks to the system (memory other processes can then use). */
/**
 * Frees the allocator's idle blocks that no request took since the previous call: called once per unit of
 * work (an image, a training step), it bounds the cache by what the workload reuses. Returns the bytes freed.
 */
export function trimCache(): number {
  return N.trimCache();
}
export function emptyCache(): void {
  N.emptyCache();
}
