// The engine: libtorch tensors, autograd, nn modules, optimisers and checkpoint IO for TypeScript.
import { availableParallelism } from "node:os";
import { setNumThreads } from "./tensor.js";

export * as dist from "./distributed.js";
export * from "./dtype.js";
export * as F from "./functional.js";
export * from "./io/load.js";
export * as nn from "./nn/layers.js";
export {
  type LoadStateDictOptions,
  Module,
  ModuleList,
  type StateDict,
  StateDictError,
} from "./nn/module.js";
export * from "./optim.js";
export * from "./tensor.js";

// libtorch defaults to the number of physical cores; use every core unless DEDOS_NUM_THREADS says otherwise.
setNumThreads(Number(process.env.DEDOS_NUM_THREADS) || availableParallelism());
