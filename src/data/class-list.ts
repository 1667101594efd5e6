// Class lists typed by a user ("sofa, couch; sky"): the one parser, free of Node modules (the browser page
// uses it too). An empty class is refused (or, in typed text, skipped with a warning) naming where it sits,
// and duplicates are warned about. Class list files are read by classes.ts.

export interface ClassListOptions {
  /** Where the list comes from, named in errors and warnings: a file, or a flag such as "--classes". */
  source?: string;
  /** Receives warnings (duplicate names, skipped empty classes); default: printed on stderr. */
  warn?: (message: string) => void;
}

export function defaultWarn(message: string): void {
  console.error(`warning: ${message}`);
}

/** "sofa,couch " → "sofa, couch": synonyms trimmed, empty ones dropped. */
export function normalizeClass(c: string): string {
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
export function warnDuplicates(
  classes: readonly string[],
  where: (i: number) => string,
  o: ClassListOptions,
): void {
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
export function listPositions(kind: "class" | "line", ns: readonly number[]): string {
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
