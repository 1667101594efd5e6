// The texts behind class-name embeddings (CAT-Seg `class_embeddings`, DEDOS spec §1), free of any tensor
// engine: which texts to encode for a class list and how they group back into classes. The libtorch path
// (prompts.ts) and the onnxruntime / browser path (prompt-features.ts) both start here.

/** Python's `template.format(name)` for a single "{}" (a function replacer keeps "$" in names literal). */
export function fillTemplate(template: string, name: string): string {
  return template.replace("{}", () => name);
}

/** Synonyms of a class name as CAT-Seg splits them: on ", " exactly. */
export function splitSynonyms(name: string): string[] {
  return name.split(", ");
}

/** A template list checked: not empty, each template a string holding exactly one "{}". */
export function checkTemplates(list: unknown): string[] {
  if (!Array.isArray(list)) throw new Error("prompt templates: expected a list of strings");
  const templates = list as unknown[];
  if (templates.length === 0) throw new Error("prompt templates: the list is empty");
  for (const s of templates) {
    if (typeof s !== "string" || s.split("{}").length !== 2) {
      throw new Error(`prompt template ${JSON.stringify(s)} must contain exactly one "{}"`);
    }
  }
  return [...(templates as string[])];
}

/** Where a class's texts sit in the text list: `templates × synonyms` rows from `start`. */
export interface PromptGroup {
  start: number;
  synonyms: number;
}

/**
 * The texts of a class list, class by class, template-major and synonym-minor (CAT-Seg's order): with
 * synonyms "first" only the first synonym of "a, b, c", with "average" all of them.
 */
export function promptTexts(
  classNames: readonly string[],
  templates: readonly string[],
  synonyms: "first" | "average",
): { texts: string[]; groups: PromptGroup[] } {
  const texts: string[] = [];
  const groups: PromptGroup[] = [];
  for (const name of classNames) {
    const all = splitSynonyms(name);
    const names = synonyms === "average" ? all : all.slice(0, 1);
    groups.push({ start: texts.length, synonyms: names.length });
    for (const t of templates) for (const n of names) texts.push(fillTemplate(t, n));
  }
  return { texts, groups };
}
