// The declared surface of the libtorch addon (native/src/*.cpp): every function it exports, with its argument
// conventions and results as the C++ wrappers implement them. Types only, plus the list of op names that
// test/torch/native-api.test.ts checks against the loaded addon, so the C++ and this file cannot drift apart.

/** A tensor in the addon's slot table: slot index plus generation, as a number (see native/src/tensor.cpp). */
export type NativeTensor = number;
/** A dtype code: the value of at::ScalarType (see dtype.ts). */
export type NativeDTypeCode = number;
/** A device string ("cpu", "cuda", "cuda:1"). */
export type NativeDevice = string;
/** A scalar operand (ArgScalar): integral numbers act like Python ints, others like Python floats. */
export type NativeScalar = number | boolean | bigint;
/** A tensor-or-scalar operand; the op also receives a flag saying which it is. */
export type NativeOperand = NativeTensor | NativeScalar;
/** An integer list (ArgInts), e.g. dimensions or a kernel size; a single number means a one-element list. */
export type NativeInts = number | readonly number[];
/** A shape. */
export type NativeShape = readonly number[];
/** An N-API External (a libtorch Generator, an optimiser, a file mapping): opaque to JavaScript. */
export type NativeExternal = unknown;
/** Loss reductions (nn.cpp's Reduction). */
export type NativeReduction = "mean" | "sum" | "none";
/** Collective reductions (dist.cpp's ParseOp); "avg" is a sum divided by the world size. */
export type NativeReduceOp = "sum" | "avg" | "max" | "min" | "product";

/** One optimiser parameter group as optimCreate reads it (absent numbers take PyTorch's defaults). */
export type NativeOptimGroup = {
  params: readonly NativeTensor[];
  lr?: number;
  weightDecay?: number;
  betas?: readonly [number, number];
  eps?: number;
  amsgrad?: boolean;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
};
/** One parameter's optimiser state: AdamW's moments or SGD's momentum buffer (tensors are new handles). */
export type NativeParamState = {
  step?: number;
  expAvg?: NativeTensor;
  expAvgSq?: NativeTensor;
  maxExpAvgSq?: NativeTensor;
  momentumBuffer?: NativeTensor;
};
/** The CPU caching allocator's counters (allocator.cpp). */
export type NativeAllocatorStats = {
  idleBytes: number;
  largeBytes: number;
  hits: number;
  misses: number;
  newBytes: number;
  peakInUseBytes: number;
};

/** A 2-D convolution's arguments: input, weight, bias, then stride, padding, dilation, groups. */
type ConvArgs = [
  x: NativeTensor,
  weight: NativeTensor,
  bias: NativeTensor | null,
  stride: NativeInts,
  padding: NativeInts,
  dilation: NativeInts,
  groups: number,
];

/**
 * Every function the addon exports. Arguments marked `| null` may be null (or, when last, left out) for
 * "none"; `isTensor` flags say whether the preceding operand is a tensor handle or a scalar. Ops that return
 * a tensor return a new handle the caller owns; in-place ops (`…_`) return their first argument.
 */
/** Activations a linear layer can fuse (F.linear's epilogue). */
export type LinearActivation = "none" | "gelu" | "geluTanh" | "quickGelu" | "silu";

export interface NativeAddon {
  // ---- allocator.cpp ----
  emptyCache(): void;
  /** Frees the idle blocks no request took since the previous trimCache; returns the bytes freed. */
  trimCache(): number;
  allocatorStats(): NativeAllocatorStats;

  // ---- tensor.cpp: data in and out, metadata, lifetime ----
  /** Copies the bytes of `data` into a new tensor of `dtype` and `shape` (byte counts must match). */
  fromBuffer(data: ArrayBufferView | ArrayBuffer, dtype: NativeDTypeCode, shape: NativeShape): NativeTensor;
  /** A contiguous CPU copy of the elements. */
  toBuffer(t: NativeTensor): ArrayBuffer;
  /** The elements, consuming the handle (adopts the memory when the handle is its only owner). */
  takeBuffer(t: NativeTensor): ArrayBuffer;
  item(t: NativeTensor): number | boolean;
  /** [dtype code, device, shape, requiresGrad]. */
  info(t: NativeTensor): [NativeDTypeCode, NativeDevice, number[], boolean];
  shape(t: NativeTensor): number[];
  strides(t: NativeTensor): number[];
  dtype(t: NativeTensor): NativeDTypeCode;
  device(t: NativeTensor): NativeDevice;
  isContiguous(t: NativeTensor): boolean;
  storageNbytes(t: NativeTensor): number;
  /** Releases the handle; false when it was already free (or stale). */
  free(t: NativeTensor): boolean;
  liveHandles(): number;
  reportedBytes(): number;

  // ---- ops.cpp: creation ----
  zeros(shape: NativeShape, dtype?: NativeDTypeCode | null, device?: NativeDevice | null): NativeTensor;
  ones(shape: NativeShape, dtype?: NativeDTypeCode | null, device?: NativeDevice | null): NativeTensor;
  empty(shape: NativeShape, dtype?: NativeDTypeCode | null, device?: NativeDevice | null): NativeTensor;
  full(
    shape: NativeShape,
    value: NativeScalar,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  scalarTensor(
    value: NativeScalar,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  arange(
    start: NativeScalar,
    end: NativeScalar,
    step: NativeScalar,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  linspace(
    start: NativeScalar,
    end: NativeScalar,
    steps: number,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  eye(n: number, dtype?: NativeDTypeCode | null, device?: NativeDevice | null): NativeTensor;
  zerosLike(t: NativeTensor): NativeTensor;
  onesLike(t: NativeTensor): NativeTensor;
  fullLike(t: NativeTensor, value: NativeScalar): NativeTensor;
  clone(t: NativeTensor): NativeTensor;
  /** Converts to `dtype` and/or `device` (null keeps the tensor's own). */
  to(
    t: NativeTensor,
    dtype: NativeDTypeCode | null,
    device: NativeDevice | null,
    copy: boolean,
  ): NativeTensor;

  // ---- ops.cpp: shape and indexing ----
  view(t: NativeTensor, shape: NativeShape): NativeTensor;
  reshape(t: NativeTensor, shape: NativeShape): NativeTensor;
  permute(t: NativeTensor, dims: NativeInts): NativeTensor;
  transpose(t: NativeTensor, dim0: number, dim1: number): NativeTensor;
  contiguous(t: NativeTensor): NativeTensor;
  contiguousChannelsLast(t: NativeTensor): NativeTensor;
  flatten(t: NativeTensor, startDim: number, endDim: number): NativeTensor;
  unsqueeze(t: NativeTensor, dim: number): NativeTensor;
  /** Removes `dim` (every size-1 dimension when null). */
  squeeze(t: NativeTensor, dim?: number | null): NativeTensor;
  expand(t: NativeTensor, shape: NativeShape): NativeTensor;
  repeat(t: NativeTensor, repeats: NativeInts): NativeTensor;
  repeatInterleave(t: NativeTensor, repeats: number, dim: number): NativeTensor;
  flip(t: NativeTensor, dims: NativeInts): NativeTensor;
  roll(t: NativeTensor, shifts: NativeInts, dims: NativeInts): NativeTensor;
  /** Elements start..end (null: to the end) in steps along `dim`. */
  slice(t: NativeTensor, dim: number, start: number, end: number | null, step: number): NativeTensor;
  narrow(t: NativeTensor, dim: number, start: number, length: number): NativeTensor;
  select(t: NativeTensor, dim: number, index: number): NativeTensor;
  indexSelect(t: NativeTensor, dim: number, index: NativeTensor): NativeTensor;
  /** Advanced indexing with one index tensor (or null: keep the dimension) per leading dimension. */
  index(t: NativeTensor, indices: readonly (NativeTensor | null)[]): NativeTensor;
  /** Out of place `t[indices] = values` (`+=` with accumulate). */
  indexPut(
    t: NativeTensor,
    indices: readonly (NativeTensor | null)[],
    values: NativeTensor,
    accumulate: boolean,
  ): NativeTensor;
  gather(t: NativeTensor, dim: number, index: NativeTensor): NativeTensor;
  scatter(
    t: NativeTensor,
    dim: number,
    index: NativeTensor,
    src: NativeOperand,
    srcIsTensor: boolean,
  ): NativeTensor;
  scatterAdd(t: NativeTensor, dim: number, index: NativeTensor, src: NativeTensor): NativeTensor;
  where(
    cond: NativeTensor,
    a: NativeOperand,
    b: NativeOperand,
    aIsTensor: boolean,
    bIsTensor: boolean,
  ): NativeTensor;
  maskedFill(t: NativeTensor, mask: NativeTensor, value: NativeOperand, valueIsTensor: boolean): NativeTensor;
  maskedSelect(t: NativeTensor, mask: NativeTensor): NativeTensor;
  nonzero(t: NativeTensor): NativeTensor;
  cat(ts: readonly NativeTensor[], dim: number): NativeTensor;
  stack(ts: readonly NativeTensor[], dim: number): NativeTensor;
  /** Chunks of `size` (a number) or of the listed sizes (an array) along `dim`. */
  split(t: NativeTensor, sizeOrSizes: number | readonly number[], dim: number): NativeTensor[];
  chunk(t: NativeTensor, chunks: number, dim: number): NativeTensor[];
  /** Tensor.unfold: sliding windows of `size` with `step` along `dim`. */
  unfoldDim(t: NativeTensor, dim: number, size: number, step: number): NativeTensor;
  /** F.unfold. */
  im2col(
    x: NativeTensor,
    kernel: NativeInts,
    dilation: NativeInts,
    padding: NativeInts,
    stride: NativeInts,
  ): NativeTensor;
  /** F.fold. */
  col2im(
    x: NativeTensor,
    outputSize: NativeInts,
    kernel: NativeInts,
    dilation: NativeInts,
    padding: NativeInts,
    stride: NativeInts,
  ): NativeTensor;
  tril(t: NativeTensor, diagonal: number): NativeTensor;
  triu(t: NativeTensor, diagonal: number): NativeTensor;
  oneHot(t: NativeTensor, numClasses: number): NativeTensor;
  bincount(t: NativeTensor, weights: NativeTensor | null, minlength: number): NativeTensor;

  // ---- ops.cpp: elementwise math (binary ops: `b` is a tensor when bIsTensor, else a scalar) ----
  add(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  sub(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  mul(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  div(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  pow(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  remainder(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  fmod(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  maximum(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  minimum(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  eq(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  ne(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  lt(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  le(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  gt(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  ge(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  logicalAnd(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  logicalOr(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  atan2(a: NativeTensor, b: NativeOperand, bIsTensor: boolean): NativeTensor;
  /** s − t */
  rsub(t: NativeTensor, s: NativeScalar): NativeTensor;
  /** s / t */
  rdiv(t: NativeTensor, s: NativeScalar): NativeTensor;
  /** s ** t */
  rpow(t: NativeTensor, s: NativeScalar): NativeTensor;
  neg(t: NativeTensor): NativeTensor;
  exp(t: NativeTensor): NativeTensor;
  log(t: NativeTensor): NativeTensor;
  log2(t: NativeTensor): NativeTensor;
  log1p(t: NativeTensor): NativeTensor;
  expm1(t: NativeTensor): NativeTensor;
  sqrt(t: NativeTensor): NativeTensor;
  rsqrt(t: NativeTensor): NativeTensor;
  abs(t: NativeTensor): NativeTensor;
  sign(t: NativeTensor): NativeTensor;
  sin(t: NativeTensor): NativeTensor;
  cos(t: NativeTensor): NativeTensor;
  tanh(t: NativeTensor): NativeTensor;
  sigmoid(t: NativeTensor): NativeTensor;
  erf(t: NativeTensor): NativeTensor;
  floor(t: NativeTensor): NativeTensor;
  ceil(t: NativeTensor): NativeTensor;
  round(t: NativeTensor): NativeTensor;
  trunc(t: NativeTensor): NativeTensor;
  reciprocal(t: NativeTensor): NativeTensor;
  square(t: NativeTensor): NativeTensor;
  logicalNot(t: NativeTensor): NativeTensor;
  isnan(t: NativeTensor): NativeTensor;
  isfinite(t: NativeTensor): NativeTensor;
  /** Clamps to [min, max]; a null bound is open. */
  clamp(t: NativeTensor, min: number | null, max: number | null): NativeTensor;
  lerp(t: NativeTensor, end: NativeTensor, weight: NativeScalar): NativeTensor;

  // ---- ops.cpp: in place (return `t`) ----
  copy_(t: NativeTensor, src: NativeTensor): NativeTensor;
  fill_(t: NativeTensor, value: NativeScalar): NativeTensor;
  zero_(t: NativeTensor): NativeTensor;
  /** t += alpha·other (alpha only applies to a tensor operand; default 1). */
  add_(t: NativeTensor, other: NativeOperand, otherIsTensor: boolean, alpha?: NativeScalar): NativeTensor;
  mul_(t: NativeTensor, other: NativeOperand, otherIsTensor: boolean): NativeTensor;
  uniform_(t: NativeTensor, low: number, high: number, generator?: NativeExternal | null): NativeTensor;
  normal_(t: NativeTensor, mean: number, std: number, generator?: NativeExternal | null): NativeTensor;

  // ---- ops.cpp: reductions (null dims: over all elements) ----
  sum(
    t: NativeTensor,
    dims: NativeInts | null,
    keepdim: boolean,
    dtype: NativeDTypeCode | null,
  ): NativeTensor;
  mean(t: NativeTensor, dims: NativeInts | null, keepdim: boolean): NativeTensor;
  prod(t: NativeTensor, dim: number | null, keepdim: boolean): NativeTensor;
  var(t: NativeTensor, dims: NativeInts | null, correction: number, keepdim: boolean): NativeTensor;
  std(t: NativeTensor, dims: NativeInts | null, correction: number, keepdim: boolean): NativeTensor;
  norm(t: NativeTensor, p: number, dims: NativeInts | null, keepdim: boolean): NativeTensor;
  logsumexp(t: NativeTensor, dims: NativeInts, keepdim: boolean): NativeTensor;
  amax(t: NativeTensor, dims: NativeInts, keepdim: boolean): NativeTensor;
  amin(t: NativeTensor, dims: NativeInts, keepdim: boolean): NativeTensor;
  maxAll(t: NativeTensor): NativeTensor;
  minAll(t: NativeTensor): NativeTensor;
  /** [values, indices]. */
  maxDim(t: NativeTensor, dim: number, keepdim: boolean): [NativeTensor, NativeTensor];
  /** [values, indices]. */
  minDim(t: NativeTensor, dim: number, keepdim: boolean): [NativeTensor, NativeTensor];
  argmax(t: NativeTensor, dim: number | null, keepdim: boolean): NativeTensor;
  argmin(t: NativeTensor, dim: number | null, keepdim: boolean): NativeTensor;
  all(t: NativeTensor): NativeTensor;
  any(t: NativeTensor): NativeTensor;
  /** [values, indices]. */
  topk(
    t: NativeTensor,
    k: number,
    dim: number,
    largest: boolean,
    sorted: boolean,
  ): [NativeTensor, NativeTensor];
  /** [values, indices]. */
  sort(t: NativeTensor, dim: number, descending: boolean, stable: boolean): [NativeTensor, NativeTensor];
  cumsum(t: NativeTensor, dim: number): NativeTensor;
  cumprod(t: NativeTensor, dim: number): NativeTensor;
  allclose(a: NativeTensor, b: NativeTensor, rtol: number, atol: number): boolean;
  equal(a: NativeTensor, b: NativeTensor): boolean;

  // ---- ops.cpp: linear algebra ----
  matmul(a: NativeTensor, b: NativeTensor): NativeTensor;
  mm(a: NativeTensor, b: NativeTensor): NativeTensor;
  bmm(a: NativeTensor, b: NativeTensor): NativeTensor;
  /** input·beta + alpha·(a @ b), batched. */
  baddbmm(
    input: NativeTensor,
    a: NativeTensor,
    b: NativeTensor,
    beta: NativeScalar,
    alpha: NativeScalar,
  ): NativeTensor;
  einsum(equation: string, ts: readonly NativeTensor[]): NativeTensor;
  kron(a: NativeTensor, b: NativeTensor): NativeTensor;
  outer(a: NativeTensor, b: NativeTensor): NativeTensor;

  // ---- ops.cpp: random numbers (a null generator draws from libtorch's default one) ----
  manualSeed(seed: number | bigint): void;
  /** A new CPU generator (an External). */
  makeGenerator(seed: number | bigint): NativeExternal;
  /** The generator's state as a uint8 tensor. */
  generatorState(generator: NativeExternal): NativeTensor;
  setGeneratorState(generator: NativeExternal, state: NativeTensor): void;
  defaultGeneratorState(): NativeTensor;
  setDefaultGeneratorState(state: NativeTensor): void;
  rand(
    shape: NativeShape,
    generator?: NativeExternal | null,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  randn(
    shape: NativeShape,
    generator?: NativeExternal | null,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  /** Integers in [low, high). */
  randint(
    low: number,
    high: number,
    shape: NativeShape,
    generator?: NativeExternal | null,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  /** A permutation of 0..n−1 (int64 unless `dtype` says otherwise). */
  randperm(
    n: number,
    generator?: NativeExternal | null,
    dtype?: NativeDTypeCode | null,
    device?: NativeDevice | null,
  ): NativeTensor;
  /** 0/1 draws shaped like `like`, each 1 with probability `p`. */
  bernoulli(like: NativeTensor, p: number, generator?: NativeExternal | null): NativeTensor;

  // ---- nn.cpp ----
  conv2d(...a: ConvArgs): NativeTensor;
  convTranspose2d(
    x: NativeTensor,
    weight: NativeTensor,
    bias: NativeTensor | null,
    stride: NativeInts,
    padding: NativeInts,
    outputPadding: NativeInts,
    groups: number,
    dilation: NativeInts,
  ): NativeTensor;
  layerNorm(
    x: NativeTensor,
    normalizedShape: NativeShape,
    weight: NativeTensor | null,
    bias: NativeTensor | null,
    eps: number,
  ): NativeTensor;
  groupNorm(
    x: NativeTensor,
    groups: number,
    weight: NativeTensor | null,
    bias: NativeTensor | null,
    eps: number,
  ): NativeTensor;
  /** groupNorm then an activation, in place when no backward records it. */
  groupNormAct(
    x: NativeTensor,
    groups: number,
    w: NativeTensor | null,
    b: NativeTensor | null,
    eps: number,
    act: "none" | "silu" | "gelu",
  ): NativeTensor;
  batchNorm(
    x: NativeTensor,
    weight: NativeTensor | null,
    bias: NativeTensor | null,
    runningMean: NativeTensor | null,
    runningVar: NativeTensor | null,
    training: boolean,
    momentum: number,
    eps: number,
  ): NativeTensor;
  softmax(x: NativeTensor, dim: number): NativeTensor;
  logSoftmax(x: NativeTensor, dim: number): NativeTensor;
  gelu(x: NativeTensor, approximate?: "none" | "tanh"): NativeTensor;
  silu(x: NativeTensor): NativeTensor;
  relu(x: NativeTensor): NativeTensor;
  elu(x: NativeTensor, alpha: NativeScalar): NativeTensor;
  leakyRelu(x: NativeTensor, slope: NativeScalar): NativeTensor;
  /** x·σ(1.702x), CLIP's activation. */
  quickGelu(x: NativeTensor): NativeTensor;
  dropout(x: NativeTensor, p: number, training: boolean, generator?: NativeExternal | null): NativeTensor;
  /** Resizes a 4-d (N, C, H, W) tensor to `size` (H, W). */
  interpolate(
    x: NativeTensor,
    size: NativeInts,
    mode: "nearest" | "bilinear" | "bicubic",
    alignCorners: boolean,
  ): NativeTensor;
  /** F.pad: `pads` lists (left, right) pairs from the last dimension backwards. */
  pad(
    x: NativeTensor,
    pads: NativeInts,
    mode: "constant" | "reflect" | "replicate",
    value: NativeScalar,
  ): NativeTensor;
  avgPool2d(
    x: NativeTensor,
    kernel: NativeInts,
    stride: NativeInts,
    padding: NativeInts,
    ceilMode: boolean,
    countIncludePad: boolean,
  ): NativeTensor;
  maxPool2d(
    x: NativeTensor,
    kernel: NativeInts,
    stride: NativeInts,
    padding: NativeInts,
    dilation: NativeInts,
    ceilMode: boolean,
  ): NativeTensor;
  adaptiveAvgPool2d(x: NativeTensor, outputSize: NativeInts): NativeTensor;
  adaptiveMaxPool2d(x: NativeTensor, outputSize: NativeInts): NativeTensor;
  bceWithLogits(
    input: NativeTensor,
    target: NativeTensor,
    weight: NativeTensor | null,
    posWeight: NativeTensor | null,
    reduction: NativeReduction,
  ): NativeTensor;
  /** Cross entropy over class dimension 1 of (N, C, …) logits against int64 targets. */
  crossEntropy(
    input: NativeTensor,
    target: NativeTensor,
    weight: NativeTensor | null,
    reduction: NativeReduction,
    ignoreIndex: number,
    labelSmoothing: number,
  ): NativeTensor;
  nllLoss(
    input: NativeTensor,
    target: NativeTensor,
    weight: NativeTensor | null,
    reduction: NativeReduction,
    ignoreIndex: number,
  ): NativeTensor;
  smoothL1(input: NativeTensor, target: NativeTensor, reduction: NativeReduction, beta: number): NativeTensor;
  mseLoss(input: NativeTensor, target: NativeTensor, reduction: NativeReduction): NativeTensor;
  l1Loss(input: NativeTensor, target: NativeTensor, reduction: NativeReduction): NativeTensor;

  // ---- autograd.cpp: autograd ----
  /** Returns `t`. */
  setRequiresGrad(t: NativeTensor, on: boolean): NativeTensor;
  requiresGrad(t: NativeTensor): boolean;
  isLeaf(t: NativeTensor): boolean;
  retainGrad(t: NativeTensor): void;
  /** The accumulated gradient (a new handle), or null. */
  grad(t: NativeTensor): NativeTensor | null;
  setGrad(t: NativeTensor, grad: NativeTensor | null): void;
  detach(t: NativeTensor): NativeTensor;
  backward(t: NativeTensor, gradient: NativeTensor | null, retainGraph: boolean, createGraph: boolean): void;
  /** torch.autograd.grad: one gradient per input (null where unused and allowUnused). */
  autogradGrad(
    outputs: readonly NativeTensor[],
    inputs: readonly NativeTensor[],
    gradOutputs: readonly NativeTensor[] | null,
    retainGraph: boolean,
    createGraph: boolean,
    allowUnused: boolean,
  ): (NativeTensor | null)[];
  /** Sets grad mode; returns the previous one. */
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  /** Enters (entering) or leaves an autocast region; returns the previous [enabled, dtype code]. */
  setAutocast(
    device: "cpu" | "cuda",
    enabled: boolean,
    dtype: NativeDTypeCode,
    entering: boolean,
  ): [boolean, NativeDTypeCode];

  // ---- autograd.cpp: optimisers ----
  /** Scales the parameters' gradients to a global norm ≤ maxNorm; returns the norm before clipping. */
  clipGradNorm(params: readonly NativeTensor[], maxNorm: number, normType: number): number;
  /** A libtorch optimiser ("adamw" or "sgd") over the groups (an External). */
  optimCreate(kind: string, groups: readonly NativeOptimGroup[]): NativeExternal;
  optimStep(optimizer: NativeExternal): void;
  /** Sets every parameter's gradient to none. */
  optimZeroGrad(optimizer: NativeExternal): void;
  optimSetLr(optimizer: NativeExternal, group: number, lr: number): void;
  optimGetLr(optimizer: NativeExternal, group: number): number;
  /** Per parameter in group order: its state, or null before its first step. */
  optimGetState(optimizer: NativeExternal): (NativeParamState | null)[];
  optimSetState(optimizer: NativeExternal, states: readonly (NativeParamState | null)[]): void;

  // ---- io.cpp ----
  /** Maps a file copy-on-write (an External). */
  mapFile(path: string): NativeExternal;
  /** A tensor viewing a mapped file's bytes (null strides: C-contiguous). */
  fromMapped(
    mapping: NativeExternal,
    byteOffset: number,
    dtype: NativeDTypeCode,
    shape: NativeShape,
    strides: NativeInts | null,
  ): NativeTensor;

  // ---- dist.cpp ----
  distInit(
    rank: number,
    worldSize: number,
    host: string,
    port: number,
    timeoutMs: number,
    initTimeoutMs?: number | null,
  ): void;
  /** In place. */
  distAllReduce(t: NativeTensor, op: NativeReduceOp): void;
  /** In place. */
  distBroadcast(t: NativeTensor, root: number): void;
  distBarrier(): void;
  /** No-op when not initialised. */
  distDestroy(): void;
  distIsInitialized(): boolean;
  distRank(): number;
  distWorldSize(): number;
  /** "gloo" or "gloo+nccl". */
  distBackend(): string;

  // ---- gemm.cpp ----
  linear(x: NativeTensor, weight: NativeTensor, bias: NativeTensor | null): NativeTensor;
  linearInference(x: NativeTensor, weight: NativeTensor, bias: NativeTensor | null): NativeTensor;
  conv2dInference(...a: [...ConvArgs, residual?: NativeTensor | null]): NativeTensor;
  /** Attention (additive mask optional) on the fast path, or null when it does not apply. */
  attentionInference(
    q: NativeTensor,
    k: NativeTensor,
    v: NativeTensor,
    scale: number,
    mask?: NativeTensor | null,
  ): NativeTensor | null;
  setInferenceGemm(enabled: boolean): void;
  inferenceGemmAvailable(): boolean;
  /** Whether ATen's float32 CPU mm/addmm/bmm/baddbmm kernels run on oneDNN's sgemm (aten-gemm.cpp). */
  atenGemmRouted(): boolean;
  /** act(x·Wᵀ + b) + residual; fused on a prepacked weight at inference (packed.cpp), else the unfused ops. */
  linearAct(
    x: NativeTensor,
    w: NativeTensor,
    b: NativeTensor | null,
    act: LinearActivation,
    residual: NativeTensor | null,
  ): NativeTensor;
  /**
   * Replaces the handle's plain weight by its oneDNN-packed form (the linear ops read it as it is; any other use
   * unpacks it for good). Returns the plain bytes freed: 0 when it stays plain (no oneDNN, not a 2-d CPU float32
   * tensor, a gradient required, or other tensors sharing its storage).
   */
  prepackWeight(w: NativeTensor): number;
  isPrepacked(w: NativeTensor): boolean;
  setPrepack(on: boolean): void;
  prepackAvailable(): boolean;
  /** Bytes held by packed weights. */
  packedBytes(): number;

  // ---- addon.cpp ----
  /** libtorch's and OpenBLAS's thread count (≥ 1). */
  setNumThreads(n: number): void;
  getNumThreads(): number;
  hasCuda(): boolean;
  cudaDeviceCount(): number;
  /** at::show_config(). */
  config(): string;
  /** The loaded OpenBLAS's core and thread count ({} for another BLAS). */
  blasInfo(): { core?: string; threads?: number };
}

/** The name of an addon function. */
export type NativeOpName = keyof NativeAddon;

/**
 * Every name of NativeAddon, once (checked both ways by the compiler: a name that is not an op fails the
 * `satisfies`, an op left out fails NativeOpsListed; the test checks both against the built addon).
 */
export const NATIVE_OPS = [
  "emptyCache",
  "trimCache",
  "allocatorStats",
  "fromBuffer",
  "toBuffer",
  "takeBuffer",
  "item",
  "info",
  "shape",
  "strides",
  "dtype",
  "device",
  "isContiguous",
  "storageNbytes",
  "free",
  "liveHandles",
  "reportedBytes",
  "zeros",
  "ones",
  "empty",
  "full",
  "scalarTensor",
  "arange",
  "linspace",
  "eye",
  "zerosLike",
  "onesLike",
  "fullLike",
  "clone",
  "to",
  "view",
  "reshape",
  "permute",
  "transpose",
  "contiguous",
  "contiguousChannelsLast",
  "flatten",
  "unsqueeze",
  "squeeze",
  "expand",
  "repeat",
  "repeatInterleave",
  "flip",
  "roll",
  "slice",
  "narrow",
  "select",
  "indexSelect",
  "index",
  "indexPut",
  "gather",
  "scatter",
  "scatterAdd",
  "where",
  "maskedFill",
  "maskedSelect",
  "nonzero",
  "cat",
  "stack",
  "split",
  "chunk",
  "unfoldDim",
  "im2col",
  "col2im",
  "tril",
  "triu",
  "oneHot",
  "bincount",
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "remainder",
  "fmod",
  "maximum",
  "minimum",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "logicalAnd",
  "logicalOr",
  "atan2",
  "rsub",
  "rdiv",
  "rpow",
  "neg",
  "exp",
  "log",
  "log2",
  "log1p",
  "expm1",
  "sqrt",
  "rsqrt",
  "abs",
  "sign",
  "sin",
  "cos",
  "tanh",
  "sigmoid",
  "erf",
  "floor",
  "ceil",
  "round",
  "trunc",
  "reciprocal",
  "square",
  "logicalNot",
  "isnan",
  "isfinite",
  "clamp",
  "lerp",
  "copy_",
  "fill_",
  "zero_",
  "add_",
  "mul_",
  "uniform_",
  "normal_",
  "sum",
  "mean",
  "prod",
  "var",
  "std",
  "norm",
  "logsumexp",
  "amax",
  "amin",
  "maxAll",
  "minAll",
  "maxDim",
  "minDim",
  "argmax",
  "argmin",
  "all",
  "any",
  "topk",
  "sort",
  "cumsum",
  "cumprod",
  "allclose",
  "equal",
  "matmul",
  "mm",
  "bmm",
  "baddbmm",
  "einsum",
  "kron",
  "outer",
  "manualSeed",
  "makeGenerator",
  "generatorState",
  "setGeneratorState",
  "defaultGeneratorState",
  "setDefaultGeneratorState",
  "rand",
  "randn",
  "randint",
  "randperm",
  "bernoulli",
  "conv2d",
  "convTranspose2d",
  "layerNorm",
  "groupNorm",
  "groupNormAct",
  "batchNorm",
  "softmax",
  "logSoftmax",
  "gelu",
  "silu",
  "relu",
  "elu",
  "leakyRelu",
  "quickGelu",
  "dropout",
  "interpolate",
  "pad",
  "avgPool2d",
  "maxPool2d",
  "adaptiveAvgPool2d",
  "adaptiveMaxPool2d",
  "bceWithLogits",
  "crossEntropy",
  "nllLoss",
  "smoothL1",
  "mseLoss",
  "l1Loss",
  "setRequiresGrad",
  "requiresGrad",
  "isLeaf",
  "retainGrad",
  "grad",
  "setGrad",
  "detach",
  "backward",
  "autogradGrad",
  "setGradEnabled",
  "isGradEnabled",
  "setAutocast",
  "clipGradNorm",
  "optimCreate",
  "optimStep",
  "optimZeroGrad",
  "optimSetLr",
  "optimGetLr",
  "optimGetState",
  "optimSetState",
  "mapFile",
  "fromMapped",
  "distInit",
  "distAllReduce",
  "distBroadcast",
  "distBarrier",
  "distDestroy",
  "distIsInitialized",
  "distRank",
  "distWorldSize",
  "distBackend",
  "linear",
  "linearInference",
  "conv2dInference",
  "attentionInference",
  "setInferenceGemm",
  "inferenceGemmAvailable",
  "atenGemmRouted",
  "linearAct",
  "setPrepack",
  "prepackAvailable",
  "packedBytes",
  "prepackWeight",
  "isPrepacked",
  "setNumThreads",
  "getNumThreads",
  "hasCuda",
  "cudaDeviceCount",
  "config",
  "blasInfo",
] as const satisfies readonly NativeOpName[];

/** Compiles only when NATIVE_OPS lists every op of NativeAddon (the error names the ops left out). */
export type NativeOpsListed = MustBeEmpty<Exclude<NativeOpName, (typeof NATIVE_OPS)[number]>>;
type MustBeEmpty<Missing extends never> = Missing;
