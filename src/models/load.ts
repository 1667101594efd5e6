// The one place a weights file becomes a module: read the checkpoint (any format the engine reads), build
// the module, load the tensors through a family's key rules, free the file's tensors either way.
import { withCheckpoint } from "../torch/io/load.js";
import { buildAndLoad, type Module } from "../torch/nn/module.js";
import type { Tensor } from "../torch/tensor.js";

/** Loads `tensors` (a checkpoint's, named `source`) into `module`, strictly. */
export type WeightsLoader<M extends Module> = (
  module: M,
  tensors: Map<string, Tensor>,
  source: string,
) => void;

/** `build()` then `load(module, file's tensors)`; a failed load frees the module. Returns it in eval mode. */
export function loadModuleFile<M extends Module>(file: string, build: () => M, load: WeightsLoader<M>): M {
  return withCheckpoint(file, (ckpt) => buildAndLoad(build, (m) => load(m, ckpt.tensors, file)));
}
