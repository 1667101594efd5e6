// The engine: libtorch tensors, autograd, nn modules, optimisers and checkpoint IO for TypeScript.
// Importing it loads nothing: the addon loads on the first op, and loading sets libtorch's thread count to
// every core (or DEDOS_NUM_THREADS); `setNumThreads(n)` changes it afterwards.

export * as dist from "./distributed.js";
export * from "./dtype.js";
export * as F from "./functional.js";
export * from "./io/load.js";
export { defaultNumThreads, type EngineStatus, engineStatus } from "./native.js";
export * as nn from "./nn/layers.js";
export {
  type LoadStateDictOptions,
  Module,
  ModuleList,
  type StateDict,
  StateDictError,
  StateDictValueError,
} from "./nn/module.js";
export { type PrepackReport, prepackForInference } from "./nn/prepack.js";
export * from "./optim.js";
export * from "./tensor.js";
