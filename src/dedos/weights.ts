// DEDOS weights files (written by `dedos train`): safetensors with every tensor of the model (CLIP, the
// CAT-Seg head and the DEDOS modules in their module-tree names) and the config in the metadata. Stable
// Diffusion is not in them (it comes from its own diffusers folder). Pure: metadata in, config out.

import { type DedosConfig, upgradeDedosConfig } from "./config.js";

/** safetensors metadata `format` of a DEDOS weights file. */
export const DEDOS_WEIGHTS_FORMAT = "dedos";

/** The metadata a DEDOS weights file carries. */
export function dedosWeightsMetadata(config: DedosConfig): Record<string, string> {
  return { format: DEDOS_WEIGHTS_FORMAT, config: JSON.stringify(config) };
}

/** Whether a checkpoint's metadata marks a DEDOS weights file. */
export function isDedosWeightsMetadata(meta: Record<string, unknown>): boolean {
  return meta.format === DEDOS_WEIGHTS_FORMAT && typeof meta.config === "string";
}

/** The config stored in a DEDOS weights file's metadata (older configs upgraded); errors name the file. */
export function dedosConfigFromMetadata(meta: Record<string, unknown>, source: string): DedosConfig {
  if (!isDedosWeightsMetadata(meta))
    throw new Error(
      `${source}: not a DEDOS weights file (no "${DEDOS_WEIGHTS_FORMAT}" config in its metadata)`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(meta.config as string);
  } catch (e) {
    throw new Error(`${source}: the DEDOS config in its metadata is not JSON (${(e as Error).message})`);
  }
  return upgradeDedosConfig(raw as DedosConfig);
}
