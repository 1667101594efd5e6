// Real weights by name: where each file comes from, how large it is and its SHA-256 where known (unknown
// ones stay undefined: nothing here is guessed), the config it goes with and its licence. The table is data;
// `DEDOS_REGISTRY_EXTRA=<json file>` (or registerWeight()) adds private weights, e.g. an in-house mirror of
// a fine-tuned checkpoint or a test server's files.
//
// Hugging Face URLs are written against https://huggingface.co; DEDOS_ENDPOINT (like HF_ENDPOINT for the
// huggingface_hub client) replaces that host, for mirrors: DEDOS_ENDPOINT=https://hf-mirror.example.org.
import { readFileSync } from "node:fs";

/** The host that Hugging Face URLs of the table are written against (and DEDOS_ENDPOINT replaces). */
export const HF_HOST = "https://huggingface.co";

/** One file of a weight. */
export interface WeightFile {
  /** Path inside the weight's cache folder (a file name, or e.g. "unet/config.json" for a folder weight). */
  readonly path: string;
  /** Where it is downloaded from, as published (see {@link fileUrl} for the address actually used). */
  readonly url: string;
  /** Size in bytes, when published. */
  readonly size?: number;
  /** Lower-case hex SHA-256, when published. */
  readonly sha256?: string;
}

/** A named weight: one file, or a folder of files. */
export interface WeightEntry {
  readonly name: string;
  /** "file": the local path is the file itself; "folder": the local path is the folder holding `files`. */
  readonly kind: "file" | "folder";
  readonly files: readonly WeightFile[];
  /** The config it goes with (a CAT-Seg preset, a CLIP architecture, a diffusion preset …). */
  readonly config: string;
  /** One line: whose weights and under which licence. */
  readonly licence: string;
  /** One line: what it is. */
  readonly description: string;
}

const CATSEG_SPACE = `${HF_HOST}/spaces/hamacojr/CAT-Seg-weights/resolve/main`;
const CLIP_MODELS = "https://openaipublic.azureedge.net/clip/models";
const SD2_BASE = `${HF_HOST}/stabilityai/stable-diffusion-2-base/resolve/main`;

/** An openai/CLIP file: its URL's folder name is the file's SHA-256 (clip.py checks it after download). */
function clipFile(sha256: string, file: string): WeightFile {
  return { path: file, url: `${CLIP_MODELS}/${sha256}/${file}`, sha256 };
}

/** The diffusers-layout files of stable-diffusion-2-base that src/models/diffusers.ts reads. */
const SD2_FILES = [
  "unet/config.json",
  "unet/diffusion_pytorch_model.safetensors",
  "vae/config.json",
  "vae/diffusion_pytorch_model.safetensors",
  "text_encoder/config.json",
  "text_encoder/model.safetensors",
  "tokenizer/merges.txt",
  "tokenizer/special_tokens_map.json",
  "tokenizer/tokenizer_config.json",
  "tokenizer/vocab.json",
  "scheduler/scheduler_config.json",
];

const BUILT_IN: readonly WeightEntry[] = (
  [
    {
      name: "catseg-vitb",
      kind: "file",
      files: [{ path: "model_base.pth", url: `${CATSEG_SPACE}/model_base.pth` }],
      config: "vitb_384",
      licence: "CAT-Seg, MIT",
      description: "CAT-Seg ViT-B/16 (released checkpoint, detectron2 .pth)",
    },
    {
      name: "catseg-vitl",
      kind: "file",
      files: [{ path: "model_large.pth", url: `${CATSEG_SPACE}/model_large.pth` }],
      config: "vitl_336",
      licence: "CAT-Seg, MIT",
      description: "CAT-Seg ViT-L/14@336 (released checkpoint, detectron2 .pth)",
    },
    {
      name: "clip-vitb16",
      kind: "file",
      files: [clipFile("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt")],
      config: "ViT-B/16",
      licence: "OpenAI CLIP, MIT",
      description: "OpenAI CLIP ViT-B/16 (TorchScript archive)",
    },
    {
      name: "clip-vitl14-336",
      kind: "file",
      files: [
        clipFile("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt"),
      ],
      config: "ViT-L/14@336px",
      licence: "OpenAI CLIP, MIT",
      description: "OpenAI CLIP ViT-L/14 at 336 px (TorchScript archive)",
    },
    {
      name: "sd2-base",
      kind: "folder",
      files: SD2_FILES.map((path) => ({ path, url: `${SD2_BASE}/${path}` })),
      config: "sd-2-base",
      licence: "Stability AI, CreativeML Open RAIL++-M",
      description:
        "Stable Diffusion 2-base, diffusers layout (UNet, VAE, text encoder, tokenizer, scheduler)",
    },
  ] satisfies WeightEntry[]
).map((e) => validateEntry(e, "built-in weights"));

const runtime = new Map<string, WeightEntry>();

/**
 * Adds a weight for this process (tests, or an application shipping its own weights). A name of the
 * built-in table cannot be replaced (use DEDOS_ENDPOINT for a mirror of the Hub).
 */
export function registerWeight(entry: WeightEntry): void {
  const e = validateEntry(entry, "registerWeight");
  if (BUILT_IN.some((b) => b.name === e.name))
    throw new Error(`registerWeight: "${e.name}" is a built-in weight name and cannot be replaced`);
  runtime.set(e.name, e);
}

/** Removes a weight added by {@link registerWeight} (built-in ones stay). */
export function unregisterWeight(name: string): boolean {
  return runtime.delete(name);
}

/**
 * Every registered weight: the built-in table, then registerWeight() entries, then those of the
 * DEDOS_REGISTRY_EXTRA file (read on each call, so a changed file is seen at once).
 */
export function listWeights(): WeightEntry[] {
  const all = [...BUILT_IN, ...runtime.values()];
  for (const e of readExtraFile()) {
    if (all.some((a) => a.name === e.name))
      throw new Error(`DEDOS_REGISTRY_EXTRA: "${e.name}" is already registered and cannot be replaced`);
    all.push(e);
  }
  return all;
}

/** The registered names, in table order. */
export function weightNames(): string[] {
  return listWeights().map((e) => e.name);
}

/** The entry of a registered name, or undefined. */
export function findWeight(name: string): WeightEntry | undefined {
  return listWeights().find((e) => e.name === name);
}

/** The entry of a registered name; an unknown name is an error listing the known ones. */
export function getWeight(name: string): WeightEntry {
  const e = findWeight(name);
  if (!e) throw new Error(`unknown weight name "${name}" (registered: ${weightNames().join(", ")})`);
  return e;
}

/** The Hub host in use: DEDOS_ENDPOINT without a trailing slash, else https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const e = env.DEDOS_ENDPOINT?.trim();
  return e ? e.replace(/\/+$/, "") : HF_HOST;
}

/** The address a file is downloaded from: its URL, with the Hugging Face host replaced by DEDOS_ENDPOINT. */
export function fileUrl(file: WeightFile, env: NodeJS.ProcessEnv = process.env): string {
  return file.url.startsWith(`${HF_HOST}/`) ? hubEndpoint(env) + file.url.slice(HF_HOST.length) : file.url;
}

/** Total size of an entry's files, when every size is known. */
export function entrySize(entry: WeightEntry): number | undefined {
  let total = 0;
  for (const f of entry.files) {
    if (f.size === undefined) return undefined;
    total += f.size;
  }
  return total;
}

/**
 * The DEDOS_REGISTRY_EXTRA file: a JSON object of name → entry, where an entry is either one file
 *   { "url": "https://…/model.pth", "size": 123, "sha256": "…", "config": "vitb_384", "licence": "…" }
 * (its path is the URL's last segment unless "path" is given) or a folder
 *   { "files": [{ "path": "unet/config.json", "url": "…", "size": …, "sha256": … }, …], "config": …, … }.
 * size and sha256 are optional (unknown); config, licence and description default to "".
 */
function readExtraFile(env: NodeJS.ProcessEnv = process.env): WeightEntry[] {
  const file = env.DEDOS_REGISTRY_EXTRA;
  if (!file) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`DEDOS_REGISTRY_EXTRA=${file}: cannot read it as JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) throw new Error(`DEDOS_REGISTRY_EXTRA=${file}: expected an object of name → entry`);
  return Object.entries(json).map(([name, raw]) => {
    const where = `DEDOS_REGISTRY_EXTRA=${file}: "${name}"`;
    if (!isObject(raw)) throw new Error(`${where}: expected an object`);
    const r = raw as Record<string, unknown>;
    const folder = Array.isArray(r.files);
    const files = folder
      ? (r.files as unknown[])
      : [{ path: r.path, url: r.url, size: r.size, sha256: r.sha256 }];
    return validateEntry(
      {
        name,
        kind: folder ? "folder" : "file",
        files: files.map((f) => {
          const o = (isObject(f) ? f : {}) as Record<string, unknown>;
          const url = o.url as string;
          const path = o.path ?? (typeof url === "string" ? decodeURIComponent(lastSegment(url)) : undefined);
          return { path, url, size: o.size, sha256: o.sha256 } as WeightFile;
        }),
        config: String(r.config ?? ""),
        licence: String(r.licence ?? r.license ?? ""),
        description: String(r.description ?? ""),
      },
      where,
    );
  });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function lastSegment(url: string): string {
  try {
    return new URL(url).pathname.split("/").pop() ?? "";
  } catch {
    return "";
  }
}

/** Checks names, relative paths, URLs, sizes and hashes; returns a frozen copy without undefined fields. */
function validateEntry(e: WeightEntry, where: string): WeightEntry {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(e.name))
    throw new Error(`${where}: weight name "${e.name}" must be letters, digits, '.', '_' or '-'`);
  if (e.kind !== "file" && e.kind !== "folder") throw new Error(`${where}: kind must be "file" or "folder"`);
  if (e.files.length === 0 || (e.kind === "file" && e.files.length !== 1))
    throw new Error(`${where}: a file weight has one file, a folder weight at least one`);
  const files = e.files.map((f) => {
    const parts = typeof f.path === "string" ? f.path.split("/") : [];
    if (parts.length === 0 || parts.some((p) => p === "" || p === "." || p === "..") || f.path.includes("\\"))
      throw new Error(`${where}: file path ${JSON.stringify(f.path)} must be relative, without '.' or '..'`);
    let protocol = "";
    try {
      protocol = new URL(f.url).protocol;
    } catch {}
    if (protocol !== "https:" && protocol !== "http:")
      throw new Error(`${where}: ${f.path}: url ${JSON.stringify(f.url)} must be an absolute http(s) URL`);
    if (f.size !== undefined && !(Number.isSafeInteger(f.size) && f.size >= 0))
      throw new Error(`${where}: ${f.path}: size must be a whole number of bytes`);
    if (f.sha256 !== undefined && !(typeof f.sha256 === "string" && /^[0-9a-fA-F]{64}$/.test(f.sha256)))
      throw new Error(`${where}: ${f.path}: sha256 must be 64 hex digits`);
    const out: WeightFile = { path: f.path, url: f.url };
    return Object.freeze({
      ...out,
      ...(f.size !== undefined && { size: f.size }),
      ...(f.sha256 !== undefined && { sha256: f.sha256.toLowerCase() }),
    });
  });
  if (new Set(files.map((f) => f.path)).size !== files.length)
    throw new Error(`${where}: two files share a path`);
  return Object.freeze({ ...e, files: Object.freeze(files) });
}
