// A fixture's `weights.*` loaded the way real checkpoints are: through the assembly layer's `loadWeights`,
// with the key rules of the module's family (so every parity case also tests the checkpoint loader).
import { loadWeights } from "../models/factory.js";
import { tensorFromRecord } from "../torch/io/load.js";
import type { Module } from "../torch/nn/module.js";
import { dispose, type Tensor } from "../torch/tensor.js";
import type { Fixture } from "./fixture.js";

/**
 * Strictly loads the fixture's `<prefix>*` tensors into `module`. The records come from the fixture index
 * rather than `loadCheckpoint(file)` because the latter's format sniffing takes a safetensors file whose
 * header length has 0x80 as low byte for a legacy pickle.
 */
export function loadFixtureWeights(f: Fixture, module: Module, prefix: string): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, rec] of f.records) if (k.startsWith(prefix)) tensors.set(k, tensorFromRecord(rec).keep());
  try {
    loadWeights(module, tensors, { prefix, source: `${f.tensorsFile} (prefix "${prefix}")` });
  } finally {
    dispose([...tensors.values()]);
  }
}
