// A `weights` argument, wherever one is taken: an existing file or folder is used as it is; a registered
// name (dedos weights list) is fetched into the cache (or found there) and its local path returned.
import { existsSync } from "node:fs";
import { type FetchOptions, fetchWeights } from "./download.js";
import { findWeight, weightNames } from "./registry.js";

/** True for a registered weight name (built-in, registerWeight() or DEDOS_REGISTRY_EXTRA). */
export function isWeightName(s: string): boolean {
  return findWeight(s) !== undefined;
}

/**
 * The local path of `nameOrPath`: the path itself when it exists, else the cached (downloaded if needed)
 * file or folder of a registered name. Anything else is an error listing the registered names.
 *
 * @example
 *   const pth = await resolveWeights("catseg-vitb"); // ~/.cache/dedos/catseg-vitb/model_base.pth
 *   const own = await resolveWeights("runs/b/model_final.safetensors"); // returned as is
 */
export async function resolveWeights(nameOrPath: string, o: FetchOptions = {}): Promise<string> {
  if (existsSync(nameOrPath)) return nameOrPath;
  if (isWeightName(nameOrPath)) return fetchWeights(nameOrPath, o);
  throw new Error(
    `weights "${nameOrPath}": no such file or folder, and not a registered weight name ` +
      `(registered: ${weightNames().join(", ")}; see dedos weights list)`,
  );
}

/** The model config a registered weight goes with (e.g. "vitb_384" for catseg-vitb); undefined for a path. */
export function configOfWeight(nameOrPath: string | undefined): string | undefined {
  if (!nameOrPath || existsSync(nameOrPath) || !isWeightName(nameOrPath)) return undefined;
  return findWeight(nameOrPath)?.config;
}
