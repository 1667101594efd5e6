// The package root (the folder holding package.json) and the files bundled under it (assets/: the CLIP
// vocabulary, class lists, templates, sample images), found from this module's location (src/util when run
// from source, dist/src/util when compiled). Free of libtorch, so worker threads can import it.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest folder holding a package.json at or above `from` (default: this module's folder). */
export function findPackageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`dedos: cannot find the package root (package.json) above ${from}`);
    dir = up;
  }
  return dir;
}

/** The installed package's root folder. */
export const PACKAGE_ROOT: string = findPackageRoot();

/** A bundled file: `assetPath("classes", "ade150.json")` → <package>/assets/classes/ade150.json. */
export function assetPath(...parts: string[]): string {
  return join(PACKAGE_ROOT, "assets", ...parts);
}

/** The bytes of a bundled file (package data, like a constant table: not a user's file). */
export function readBundledFile(...parts: string[]): Buffer {
  return readFileSync(assetPath(...parts));
}
