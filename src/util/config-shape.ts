// Checks a configuration read from JSON against the shape of a known-good one (a preset): every field the
// preset has must be present with the same JSON type, and no other field may appear. Errors name each
// offending path, so "Cannot read properties of undefined" never reaches a user.

/** Problems of `value` against `template`, as "path: what" lines (empty when it fits). */
export function configShapeProblems(value: unknown, template: unknown, path = ""): string[] {
  const kind = (v: unknown): string =>
    v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" ? "number" : typeof v;
  const here = path || "(root)";
  if (kind(value) !== kind(template)) {
    return [`${here}: expected ${kind(template)}, got ${value === undefined ? "nothing" : kind(value)}`];
  }
  if (Array.isArray(template)) {
    const arr = value as unknown[];
    if (template.length === 0) return [];
    return arr.flatMap((v, i) => configShapeProblems(v, template[0], `${path}[${i}]`));
  }
  if (kind(template) !== "object") return [];
  const t = template as Record<string, unknown>;
  const v = value as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(t)) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in v)) out.push(`${p}: missing`);
    else out.push(...configShapeProblems(v[k], t[k], p));
  }
  for (const k of Object.keys(v)) if (!(k in t)) out.push(`${path ? `${path}.${k}` : k}: unknown field`);
  return out;
}

/** Throws one error listing every problem (first 20), prefixed by `what` (e.g. the file name). */
export function checkConfigShape<T>(value: unknown, template: T, what: string): T {
  const problems = configShapeProblems(value, template);
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).map((p) => `  ${p}`);
    if (problems.length > 20) shown.push(`  … and ${problems.length - 20} more`);
    throw new Error(`${what}: not a valid config:\n${shown.join("\n")}`);
  }
  return value as T;
}
