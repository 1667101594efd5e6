// Class lists: the benchmark JSON files (assets/classes/*.json) or text typed by a user. The one parser of class
// lists: every command that reads one goes through parseClassList / readClassFile, so an empty class is refused
// (or, in typed text, skipped with a warning) naming where it sits, and duplicates are warned about.
import { existsSync, readFileSync, statSync } from "node:fs";
import { assetPath } from "../util/assets.js";
import {
  type ClassListOptions,
  defaultWarn,
  listPositions,
  normalizeClass,
  warnDuplicates,
} from "./class-list.js";

export { type ClassListOptions, parseClassList } from "./class-list.js";

/**
 * Reads a class list file: a JSON array of strings (the CAT-Seg benchmark lists), or plain text with one class
 * per line (blank lines skipped, with a warning when they shift the label values). A bare benchmark name
 * ("ade150", "coco", …) reads the bundled list. An empty name in a JSON list is refused naming the file and
 * its position; duplicate names are warned about and kept.
 */
export function readClassFile(fileOrName: string, o: Omit<ClassListOptions, "source"> = {}): string[] {
  const bundled = assetPath("classes", `${fileOrName}.json`);
  const file = existsSync(fileOrName) ? fileOrName : existsSync(bundled) ? bundled : undefined;
  if (!file)
    throw new Error(
      `class list '${fileOrName}' not found (a file path, or one of the bundled lists in assets/classes)`,
    );
  if (statSync(file).isDirectory()) throw new Error(`${file}: is a directory, not a class list file`);
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(v)) throw new Error(`${file}: expected a JSON array of class names`);
    if (v.length === 0) throw new Error(`${file}: the class list is empty`);
    v.forEach((x: unknown, i) => {
      if (typeof x !== "string")
        throw new Error(
          `${file}: class ${i + 1} of ${v.length} is not a string (${JSON.stringify(x)}); expected a JSON array of class names`,
        );
      if (!normalizeClass(x))
        throw new Error(
          `${file}: class ${i + 1} of ${v.length} is empty (${JSON.stringify(x)}); every class needs a name`,
        );
    });
    warnDuplicates(v as string[], (i) => `class ${i + 1}`, { ...o, source: file });
    return v as string[];
  }
  // Text: one class per line (a line may also hold several, separated by ";").
  const lines = text.replace(/\r/g, "").split("\n");
  const classes: string[] = [];
  const where: string[] = [];
  const blank: number[] = [];
  lines.forEach((line, l) => {
    const parts = line.split(";").map(normalizeClass);
    if (!parts.some(Boolean)) blank.push(l + 1);
    parts.forEach((c, k) => {
      if (!c) return;
      classes.push(c);
      where.push(parts.length > 1 ? `line ${l + 1} class ${k + 1}` : `line ${l + 1}`);
    });
  });
  if (classes.length === 0)
    throw new Error(`${file}: no class names (one class per line; synonyms separated by ",")`);
  const lastLine = Number(/\d+/.exec(where.at(-1)!)![0]);
  const shifting = blank.filter((n) => n < lastLine);
  if (shifting.length > 0)
    (o.warn ?? defaultWarn)(
      `${file}: blank ${listPositions("line", shifting)} skipped; the label values number the ${classes.length} classes given (0 = "${classes[0]}")`,
    );
  warnDuplicates(classes, (i) => where[i]!, { ...o, source: file });
  return classes;
}
