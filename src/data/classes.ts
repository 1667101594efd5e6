// Class lists: the benchmark JSON files (assets/classes/*.json) or text typed by a user. The one parser of class
// lists: every command that reads one goes through parseClassList / readClassFile, so an empty class is refused
// (or, in typed text, skipped with a warning) naming where it sits, and duplicates are warned about.
import { existsSync, readFileSync, statSync } from "node:fs";
import { assetPath } from "../util/assets.js";

export interface ClassListOptions {
  /** Where the list comes from, named in errors and warnings: a file, or a flag such as "--classes". */
  source?: string;
  /** Receives warnings (duplicate names, skipped empty classes); default: printed on stderr. */
  warn?: (message: string) => void;
}

function defaultWarn(message: string): void {
  console.error(`warning: ${message}`);
}

/** "sofa,couch " → "sofa, couch": synonyms trimmed, empty ones dropped. */
function normalizeClass(c: string): string {
  return c
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .join(", ");
}

/** The key two names are the same class under (CLIP's tokenizer lower-cases and collapses spaces). */
function sameClassKey(c: string): string {
  return normalizeClass(c).toLowerCase().replace(/\s+/g, " ");
}

/** Warns about classes that repeat an earlier one (`where(i)` names position i); they are kept. */
function warnDuplicates(classes: readonly string[], where: (i: number) => string, o: ClassListOptions): void {
  const first = new Map<string, number[]>();
  classes.forEach((c, i) => {
    const k = sameClassKey(c);
    const l = first.get(k);
    if (l) l.push(i);
    else first.set(k, [i]);
  });
  const warn = o.warn ?? defaultWarn;
  const src = o.source ? `${o.source}: ` : "";
  for (const positions of first.values()) {
    if (positions.length < 2) continue;
    const spellings = [...new Set(positions.map((i) => `"${classes[i]}"`))].join(" / ");
    warn(
      `${src}duplicate class name ${spellings} (${positions.map(where).join(", ")}); ` +
        "all are kept as separate classes (a pixel goes to the first of equal scores)",
    );
  }
}

/** "class 2" / "classes 2, 3", "line 4" / "lines 4, 7" */
function listPositions(kind: "class" | "line", ns: readonly number[]): string {
  const word = ns.length === 1 ? kind : kind === "class" ? "classes" : "lines";
  return `${word} ${ns.join(", ")}`;
}

/**
 * Parses classes typed on a command line: classes separated by ";" (or new lines), synonyms inside a class
 * by ",". "sofa, couch; sky" → ["sofa, couch", "sky"] (the CAT-Seg convention: one string per class whose
 * comma-separated parts are synonyms). Empty classes ("a;;b") are skipped with a warning naming their position
 * (the label values number the classes kept); nothing but empty classes is refused, naming `o.source`.
 * Duplicate names are warned about and kept.
 */
export function parseClassList(text: string, o: ClassListOptions = {}): string[] {
  const entries = text.split(/[;\n]/).map(normalizeClass);
  const src = o.source ? `${o.source}: ` : "";
  const empty = entries.flatMap((c, i) => (c ? [] : [i + 1]));
  const classes = entries.filter(Boolean);
  if (classes.length === 0)
    throw new Error(
      `${src}no class names in ${JSON.stringify(text)} (${listPositions("class", empty)} ${empty.length > 1 ? "are" : "is"} empty; separate classes with ";", synonyms with ",")`,
    );
  // Empty entries before the last class shift the label values: say so (a trailing ";" is harmless).
  const lastClass = entries.findLastIndex(Boolean) + 1;
  const shifting = empty.filter((n) => n < lastClass);
  if (shifting.length > 0)
    (o.warn ?? defaultWarn)(
      `${src}empty ${listPositions("class", shifting)} skipped; the label values number the ${classes.length} classes given (0 = "${classes[0]}")`,
    );
  const kept = entries.flatMap((c, i) => (c ? [i + 1] : []));
  warnDuplicates(classes, (i) => `class ${kept[i]}`, o);
  return classes;
}

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
