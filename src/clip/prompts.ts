// Class-name text embeddings for open-vocabulary segmentation (CAT-Seg `class_embeddings`, DEDOS spec §1):
//   name "a, b, c" → synonyms (first only, or all averaged) → one text per (template, synonym)
//   → CLIP text features, L2-normalised per text → synonyms averaged and renormalised (CAT-Seg's order)
//   → templates averaged and renormalised (or kept apart as CAT-Seg's P prompt channels).
// Texts are encoded in batches, and results are cached per (model instance, class list, templates, options).
import { cat, noGrad, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { readBundledFile } from "../util/assets.js";
import { checkTemplates, promptTexts } from "./prompt-texts.js";
import type { ClipTextEncoder } from "./text.js";
import type { TokenizedBatch, TokenizeOptions } from "./tokenizer.js";

/** What the prompts need from the tokenizer (ClipTokenizer satisfies it). */
export interface PromptTokenizer {
  tokenize(texts: readonly string[], opts?: TokenizeOptions): TokenizedBatch;
}

export { fillTemplate, splitSynonyms } from "./prompt-texts.js";

/** The DEDOS / CAT-Seg single template. */
export const DEFAULT_TEMPLATE = "A photo of a {} in the scene";

/** Named template sets of assets/classes/imagenet_templates.json (CAT-Seg's `prompt_ensemble_type`). */
export type TemplateSetName = "single" | "imagenet" | "imagenet_select";

const TEMPLATE_KEYS: Record<TemplateSetName, string> = {
  single: "SINGLE",
  imagenet: "IMAGENET_TEMPLATES",
  imagenet_select: "IMAGENET_TEMPLATES_SELECT",
};

let templateFile: Record<string, unknown> | undefined;

/** A template list by name (each template holds exactly one "{}"), or the given list checked. */
export function resolveTemplates(t: TemplateSetName | readonly string[] = "single"): string[] {
  let list: unknown;
  if (typeof t === "string") {
    const key = TEMPLATE_KEYS[t];
    if (!key)
      throw new Error(`unknown template set "${t}" (one of ${Object.keys(TEMPLATE_KEYS).join(", ")})`);
    const file = ["classes", "imagenet_templates.json"];
    templateFile ??= JSON.parse(readBundledFile(...file).toString("utf8")) as Record<string, unknown>;
    list = templateFile[key];
    if (!Array.isArray(list)) throw new Error(`assets/${file.join("/")}: no "${key}" list`);
  } else {
    list = t;
  }
  return checkTemplates(list);
}

export interface ClassEmbeddingOptions {
  /** Template set name or list (default "single": "A photo of a {} in the scene"). */
  templates?: TemplateSetName | readonly string[];
  /** "first" (default): only the first synonym of "a, b, c"; "average": all, averaged. */
  synonyms?: "first" | "average";
  /** "mean" (default): templates averaged into one prompt, P = 1; "none": P = template count (CAT-Seg layout). */
  templateReduction?: "mean" | "none";
  /** Texts per text-encoder pass (default 256). */
  batchSize?: number;
  /** Cache the result per model instance (default true; computed without gradients). */
  cache?: boolean;
}

// Per model instance: a key of (classes, templates, options) → (T, P, E) kept tensor.
const caches = new WeakMap<ClipTextEncoder, Map<string, Tensor>>();

/** Frees and forgets the cached embeddings of a model (call after changing its weights). */
export function clearPromptCache(model: ClipTextEncoder): void {
  const c = caches.get(model);
  if (!c) return;
  for (const t of c.values()) t.dispose();
  caches.delete(model);
}

/** Number of cached embedding sets of a model (for tests and diagnostics). */
export function promptCacheSize(model: ClipTextEncoder): number {
  return caches.get(model)?.size ?? 0;
}

/**
 * Class-name embeddings (T, P, E), unit-norm along E: T classes, P = 1 (templates averaged) or the template
 * count. The returned tensor is the caller's (a copy of the cached one).
 */
export function embedClassNames(
  model: ClipTextEncoder,
  tokenizer: PromptTokenizer,
  classNames: readonly string[],
  o: ClassEmbeddingOptions = {},
): Tensor {
  if (classNames.length === 0) throw new Error("embedClassNames: no class names");
  const templates = resolveTemplates(o.templates);
  const synonyms = o.synonyms ?? "first";
  const reduction = o.templateReduction ?? "mean";
  const useCache = o.cache ?? true;
  if (!useCache)
    return computeClassEmbeddings(model, tokenizer, classNames, templates, synonyms, reduction, o.batchSize);

  const key = JSON.stringify([classNames, templates, synonyms, reduction]);
  let perModel = caches.get(model);
  if (!perModel) {
    perModel = new Map();
    caches.set(model, perModel);
  }
  let hit = perModel.get(key);
  if (!hit) {
    hit = noGrad(() =>
      computeClassEmbeddings(model, tokenizer, classNames, templates, synonyms, reduction, o.batchSize),
    ).keep();
    perModel.set(key, hit);
  }
  return hit.clone();
}

function computeClassEmbeddings(
  model: ClipTextEncoder,
  tokenizer: PromptTokenizer,
  classNames: readonly string[],
  templates: string[],
  synonyms: "first" | "average",
  reduction: "mean" | "none",
  batchSize = 256,
): Tensor {
  const { texts, groups } = promptTexts(classNames, templates, synonyms);
  const P = templates.length;
  return tidy(() => {
    const feats = l2normalize(encodeTexts(model, tokenizer, texts, batchSize)); // (N, E)
    const E = feats.size(1);
    const perClass = groups.map(({ start, synonyms: S }) =>
      tidy(() => {
        let e = feats.narrow(0, start, P * S).reshape(P, S, E); // (P, S, E)
        e = S > 1 ? l2normalize(e.mean(1)) : e.squeeze(1); // (P, E)
        if (reduction === "mean" && P > 1) e = l2normalize(e.mean(0, true)); // (1, E)
        return e;
      }),
    );
    return cat(
      perClass.map((e) => e.unsqueeze(0)),
      0,
    ); // (T, P', E)
  });
}

/**
 * Encodes texts in batches (B ≤ batchSize). Each batch is cut after its longest row's EOT: under the causal
 * mask the positions after it never reach an EOT feature, so the result equals the full 77-token pass.
 */
export function encodeTexts(
  model: ClipTextEncoder,
  tokenizer: PromptTokenizer,
  texts: readonly string[],
  batchSize = 256,
): Tensor {
  const ctx = model.textConfig.contextLength;
  const parts: Tensor[] = [];
  return tidy(() => {
    for (let i = 0; i < texts.length; i += batchSize) {
      const batch = texts.slice(i, i + batchSize);
      const tok = tokenizer.tokenize(batch, { contextLength: ctx });
      const used = Math.max(...tok.eotIndex) + 1;
      parts.push(
        tidy(() => {
          const ids = tensor(tok.ids, [batch.length, ctx]).narrow(1, 0, used).long(); // (B, used)
          return model.encodeText(ids); // (B, E)
        }),
      );
    }
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  });
}

/** x / ‖x‖ along the last dimension (as CAT-Seg divides by `norm(dim=-1, keepdim=True)`). */
export function l2normalize(x: Tensor): Tensor {
  return tidy(() => x.div(x.norm(2, -1, true)));
}
