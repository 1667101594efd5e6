// Class lists: the benchmark JSON files (assets/classes/*.json) or text typed by a user.
import { existsSync, readFileSync } from "node:fs";
import { assetPath } from "../util/assets.js";

/**
 * Parses classes typed on a command line: classes separated by ";" (or new lines), synonyms inside a class
 * by ",". "sofa, couch; sky" → ["sofa, couch", "sky"] (the CAT-Seg convention: one string per class whose
 * comma-separated parts are synonyms).
 */
export function parseClassList(text: string): string[] {
  const classes = text
    .split(/[;\n]/)
    .map((c) =>
      c
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .join(", "),
    )
    .filter(Boolean);
  if (classes.length === 0)
    throw new Error(`no class names in "${text}" (separate classes with ";", synonyms with ",")`);
  return classes;
}

/**
 * Reads a class list file: a JSON array of strings (the CAT-Seg benchmark lists), or plain text with one class
 * per line. A bare benchmark name ("ade150", "coco", …) reads the bundled list.
 */
export function readClassFile(fileOrName: string): string[] {
  const bundled = assetPath("classes", `${fileOrName}.json`);
  const file = existsSync(fileOrName) ? fileOrName : existsSync(bundled) ? bundled : undefined;
  if (!file)
    throw new Error(
      `class list '${fileOrName}' not found (a file path, or one of the bundled lists in assets/classes)`,
    );
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
      throw new Error(`${file}: expected a JSON array of class names`);
    if (v.length === 0) throw new Error(`${file}: the class list is empty`);
    return v as string[];
  }
  return parseClassList(text.replace(/\r/g, ""));
}
