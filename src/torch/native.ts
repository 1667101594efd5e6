// Loads the compiled libtorch addon. Everything that touches it goes through src/torch/.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../util/assets.js";

/** A tensor in the addon's slot table: slot index plus generation, as a number (see native/src/tensor.cpp). */
export type NativeTensor = number;

/** The addon's functions; argument conventions are documented beside each op in native/src/*.cpp. */
// biome-ignore lint/suspicious/noExplicitAny: the addon surface is typed by the wrappers in tensor.ts and functional.ts.
export type NativeAddon = Record<string, (...args: any[]) => any>;

function load(): NativeAddon {
  const path = join(PACKAGE_ROOT, "native", "build", "Release", "dedos_native.node");
  if (!existsSync(path)) {
    throw new Error(
      `dedos: the native addon is not built (${path} is missing). Run 'make setup' (or 'npm run build:native').`,
    );
  }
  return createRequire(import.meta.url)(path) as NativeAddon;
}

export const native: NativeAddon = load();
