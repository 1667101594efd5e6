// The libtorch addon, loaded on first use: importing dedos modules never needs it (so `--help`, `--version` or a
// `doctor` command work without a built addon or libtorch); the first op loads it, applies the default thread
// count and then runs. Everything that touches the addon goes through src/torch/.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../util/assets.js";
import { defaultNumThreads } from "../util/threads.js";
import { NATIVE_OPS, type NativeAddon } from "./native-api.js";

export type { NativeAddon, NativeTensor } from "./native-api.js";

/** Where the addon is loaded from: $DEDOS_NATIVE_ADDON when set, else the package's native/build/Release. */
export function addonPath(): string {
  return (
    process.env.DEDOS_NATIVE_ADDON || join(PACKAGE_ROOT, "native", "build", "Release", "dedos_native.node")
  );
}

/** The thread count set when the addon loads: DEDOS_NUM_THREADS when it is a count ≥ 1, else every core. */
export { defaultNumThreads };

const LIBTORCH_SOURCES =
  "on Debian/Ubuntu libtorch comes from `apt install libtorch-dev libopenblas0-openmp libgloo-dev`, elsewhere " +
  "download one from pytorch.org and build with `LIBTORCH=/path/to/libtorch npm run build:native`";

/** One paragraph: what is missing (the addon, or a library the loader could not find), and how to get it. */
function loadFailure(path: string, error: unknown): string {
  const head = "dedos: the libtorch engine is unavailable:";
  if (error === undefined) {
    return `${head} its native addon ${path} is not built. Build it with \`npm run build:native\` (or \`make setup\`, which also installs libtorch); ${LIBTORCH_SOURCES}.`;
  }
  const message = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim();
  // glibc: "libx.so.1: cannot open shared object file"; macOS: "Library not loaded: @rpath/libx.dylib".
  const lib =
    /([^\s:/]+\.so[\w.]*): cannot open shared object file/.exec(message)?.[1] ??
    /Library not loaded: \S*?([^\s/]+\.dylib)/.exec(message)?.[1];
  if (lib) {
    const what = /torch|c10/.test(lib) ? "libtorch" : "a library it needs";
    return `${head} its native addon ${path} is built, but the dynamic loader cannot find ${what} (${lib}): "${message}". Install libtorch and rebuild: \`make setup\` does both; ${LIBTORCH_SOURCES} (after apt, rebuild with \`npm run build:native\`).`;
  }
  return `${head} its native addon ${path} could not be loaded ("${message}"); it may have been built for another Node.js or libtorch. Rebuild it with \`npm run build:native\` (or \`make setup\`, which also installs libtorch); ${LIBTORCH_SOURCES}.`;
}

let loaded: NativeAddon | undefined;

/**
 * The addon, loading it on the first call: throws one paragraph saying what is missing (the addon file, or a
 * shared library the loader could not find) and how to get it. Loading sets the default thread count.
 */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) throw new Error(loadFailure(path, undefined));
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new Error(loadFailure(path, e), { cause: e });
  }
  const missing = NATIVE_OPS.filter((op) => typeof addon[op] !== "function");
  if (missing.length > 0) {
    throw new Error(
      `dedos: the native addon ${path} is out of date: it lacks ${missing.join(", ")}. Rebuild it with \`npm run build:native\`.`,
    );
  }
  addon.setNumThreads(defaultNumThreads());
  // From now on `native.op` is the addon's own function (entries someone replaced meanwhile stay theirs).
  const slots = native as unknown as Record<string, unknown>;
  for (const op of NATIVE_OPS) if (slots[op] === stubs[op]) slots[op] = addon[op];
  loaded = addon;
  return addon;
}

/** Whether the engine can be used: loads the addon if it is not loaded yet, never throws. */
export interface EngineStatus {
  loaded: boolean;
  /** Why it could not be loaded (the paragraph `loadAddon` throws). */
  error?: string;
  addonPath: string;
}
export function engineStatus(): EngineStatus {
  try {
    loadAddon();
    return { loaded: true, addonPath: addonPath() };
  } catch (e) {
    return { loaded: false, error: e instanceof Error ? e.message : String(e), addonPath: addonPath() };
  }
}

// Each entry starts as a stub that loads the addon and calls through; loading replaces the stubs by the
// addon's functions, so after the first op a call costs what a call on the addon object itself costs.
type AnyOp = (...args: unknown[]) => unknown;
const stubs: Record<string, AnyOp> = {};
for (const op of NATIVE_OPS) stubs[op] = (...args) => (loadAddon()[op] as AnyOp)(...args);

/** The addon's functions (typed by NativeAddon in native-api.ts); the first call loads the addon. */
export const native: NativeAddon = { ...stubs } as unknown as NativeAddon;
