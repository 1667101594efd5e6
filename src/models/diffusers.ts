// A diffusers Stable Diffusion folder, read from disk and loaded frozen (the branch that runs on it is
// diffusion/branch.ts; the key layouts are diffusion/weights.ts):
//
//   <dir>/vae/config.json           + diffusion_pytorch_model.safetensors | .bin  (AutoencoderKL)
//   <dir>/unet/config.json          + diffusion_pytorch_model.safetensors | .bin  (UNet2DConditionModel)
//   <dir>/text_encoder/config.json  + model.safetensors | pytorch_model.bin        (transformers CLIPTextModel)
//   <dir>/scheduler/scheduler_config.json (or config.json)
//   <dir>/tokenizer/{special_tokens_map,tokenizer_config,vocab}.json              (optional: pad token)
//
// Everything is frozen: requiresGrad off, eval mode, and every forward of the branch runs under noGrad, so no
// autograd graph (activation memory) is kept. fp16 is allowed on CUDA only.
//
// The empty-prompt embedding is computed once with the folder's own text encoder (fp32, CPU) and cached as
// `<dir>/dedos-empty-prompt.safetensors` (written atomically). Its metadata records the text encoder's
// config, weight file (name, size, mtime) and the prompt ids; a changed weight file or config invalidates
// it. Once cached, the text encoder weights may be deleted (saving 1.4 GB for SD-2): with no weight file
// left to compare, a cache whose config and ids match is used.

import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { freeze, type PipelineDType } from "../diffusion/branch.js";
import {
  readAutoencoderKLConfig,
  readSchedulerConfig,
  readUNet2DConditionConfig,
  type SchedulerConfig,
} from "../diffusion/config.js";
import {
  ClipTextModel,
  type ClipTextModelConfig,
  emptyPromptIds,
  type PromptPadding,
  type PromptTokenSpec,
  readClipTextModelConfig,
  readPromptTokenSpec,
  type TokenizerFiles,
} from "../diffusion/text-encoder.js";
import { UNet2DConditionModel } from "../diffusion/unet.js";
import { AutoencoderKL } from "../diffusion/vae.js";
import { loadTextEncoderWeights, loadUNetWeights, loadVaeWeights } from "../diffusion/weights.js";
import type { Device } from "../torch/dtype.js";
import { loadCheckpoint, releaseMappings, saveSafetensors } from "../torch/io/load.js";
import type { Module } from "../torch/nn/module.js";
import { dispose, hasCuda, noGrad, type Tensor, tidy } from "../torch/tensor.js";
import { loadModuleFile } from "./load.js";

export interface LoadDiffusersOptions {
  /** Weights and activations dtype (default float32; float16 only on CUDA). */
  dtype?: PipelineDType;
  /** Default "cpu". */
  device?: Device;
  /** Prefer `<name>.<variant>.<ext>` weight files (diffusers' variant, e.g. "fp16"), falling back to plain. */
  variant?: string;
}

/** A model subfolder as found on disk. */
export interface ComponentFiles {
  dir: string;
  config: string;
  /** The weight file, or null when absent (allowed only for the text encoder with a valid cache). */
  weights: string | null;
}

/** The empty-prompt cache in a diffusers folder, per padding (`none` is the default one). */
export function emptyPromptCacheName(padding: PromptPadding): string {
  return padding === "none" ? "dedos-empty-prompt.safetensors" : `dedos-empty-prompt-${padding}.safetensors`;
}
const PROMPT_PADDINGS: readonly PromptPadding[] = ["none", "max-length"];
const CACHE_FORMAT = "dedos-empty-prompt/1";

const WEIGHT_NAMES = [
  "diffusion_pytorch_model.safetensors",
  "model.safetensors",
  "diffusion_pytorch_model.bin",
  "pytorch_model.bin",
];

function withVariant(name: string, variant: string): string {
  const dot = name.indexOf(".");
  return `${name.slice(0, dot)}.${variant}${name.slice(dot)}`;
}

/** Finds `<dir>/<sub>/` with its config and weight file; throws naming what is missing. */
export function resolveComponent(
  dir: string,
  sub: string,
  o: { configNames?: string[]; weightsRequired?: boolean; variant?: string } = {},
): ComponentFiles {
  const d = join(dir, sub);
  if (!existsSync(d) || !statSync(d).isDirectory())
    throw new Error(`diffusers folder ${dir}: missing subfolder "${sub}/" (${d})`);
  const configNames = o.configNames ?? ["config.json"];
  const config = configNames.map((n) => join(d, n)).find((f) => existsSync(f));
  if (!config)
    throw new Error(`diffusers folder ${dir}: missing ${configNames.map((n) => join(d, n)).join(" or ")}`);
  const names = o.variant
    ? [...WEIGHT_NAMES.map((n) => withVariant(n, o.variant!)), ...WEIGHT_NAMES]
    : WEIGHT_NAMES;
  const weights = names.map((n) => join(d, n)).find((f) => existsSync(f)) ?? null;
  if (!weights && (o.weightsRequired ?? true)) {
    const sharded = names.some((n) => existsSync(join(d, `${n}.index.json`)));
    throw new Error(
      `diffusers folder ${dir}: no weight file in ${d} (looked for ${names.join(", ")})` +
        (sharded ? "; sharded checkpoints (*.index.json) are not supported" : ""),
    );
  }
  return { dir: d, config, weights };
}

/** A diffusers `tokenizer/` folder's JSON files (each optional), or null without the folder. */
export function readTokenizerFiles(dir: string): TokenizerFiles | null {
  if (!existsSync(dir)) return null;
  const read = (name: string): Record<string, unknown> | null => {
    const f = join(dir, name);
    if (!existsSync(f)) return null;
    const v = readJson(f);
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  };
  return {
    dir,
    specialTokensMap: read("special_tokens_map.json"),
    tokenizerConfig: read("tokenizer_config.json"),
    vocab: read("vocab.json"),
  };
}

function readJson(file: string): object {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

function place<M extends Module>(m: M, device: Device, dtype: PipelineDType): M {
  if (device !== "cpu") m.to(device);
  if (dtype !== "float32") m.to(dtype);
  return freeze(m);
}

/** A loaded, frozen diffusers folder. */
export class DiffusersFolder {
  private textEncoderModel: ClipTextModel | null = null;
  private readonly emptyPrompts = new Map<PromptPadding, Tensor>();

  constructor(
    readonly dir: string,
    readonly vae: AutoencoderKL,
    readonly unet: UNet2DConditionModel,
    /** The folder's own scheduler config (DEDOS builds its own DDIM scheduler; see DiffusionBranch). */
    readonly scheduler: SchedulerConfig,
    readonly textEncoderConfig: ClipTextModelConfig,
    readonly tokens: PromptTokenSpec,
    readonly files: {
      vae: ComponentFiles;
      unet: ComponentFiles;
      textEncoder: ComponentFiles;
      scheduler: string;
    },
    readonly dtype: PipelineDType,
    readonly device: Device,
  ) {}

  /** `<dir>/dedos-empty-prompt.safetensors` (`none`), `<dir>/dedos-empty-prompt-max-length.safetensors`. */
  emptyPromptCacheFile(padding: PromptPadding = "none"): string {
    return join(this.dir, emptyPromptCacheName(padding));
  }

  /**
   * The folder's text encoder (fp32, CPU, frozen), loaded strictly on first use; kept until
   * `releaseTextEncoder()`.
   */
  textEncoder(): ClipTextModel {
    if (this.textEncoderModel) return this.textEncoderModel;
    const w = this.files.textEncoder.weights;
    if (!w || !existsSync(w))
      throw new Error(
        `diffusers folder ${this.dir}: the text encoder weights are missing (${w ?? join(this.files.textEncoder.dir, "model.safetensors")})`,
      );
    try {
      this.textEncoderModel = freeze(
        loadModuleFile(w, () => new ClipTextModel(this.textEncoderConfig), loadTextEncoderWeights),
      );
    } finally {
      releaseMappings();
    }
    return this.textEncoderModel;
  }

  /** Whether the text encoder is loaded now. */
  get textEncoderLoaded(): boolean {
    return this.textEncoderModel !== null;
  }

  releaseTextEncoder(): void {
    this.textEncoderModel?.dispose();
    this.textEncoderModel = null;
  }

  /** The empty prompt's last_hidden_state (1, L, D) on the folder's device and dtype, cached in memory too. */
  emptyPromptEmbedding(padding: PromptPadding = "none"): Tensor {
    let e = this.emptyPrompts.get(padding);
    if (!e) {
      e = emptyPromptEmbedding(this, padding).keep();
      this.emptyPrompts.set(padding, e);
    }
    return e;
  }

  /** Frees every weight (and the cached embedding). */
  dispose(): void {
    this.vae.dispose();
    this.unet.dispose();
    this.releaseTextEncoder();
    dispose([...this.emptyPrompts.values()]);
    this.emptyPrompts.clear();
  }
}

/**
 * Loads a diffusers SD folder: VAE and UNet strictly (errors name the file, the keys and both shapes), built
 * from their own config.json, frozen, on `device` in `dtype`. The text encoder's config and tokenizer are
 * read now; its weights only when the empty-prompt embedding has to be computed.
 */
export function loadDiffusersFolder(dir: string, o: LoadDiffusersOptions = {}): DiffusersFolder {
  const dtype = o.dtype ?? "float32";
  const device = o.device ?? "cpu";
  if (dtype !== "float32" && dtype !== "float16")
    throw new Error(
      `loadDiffusersFolder: dtype must be "float32" or "float16", got ${JSON.stringify(dtype)}`,
    );
  if (device.startsWith("cuda") && !hasCuda())
    throw new Error(`loadDiffusersFolder: device "${device}" asked for, but libtorch has no CUDA here`);
  if (dtype === "float16" && !device.startsWith("cuda"))
    throw new Error(
      `loadDiffusersFolder: float16 runs only on CUDA (device is "${device}"); use float32 on the CPU`,
    );
  if (!existsSync(dir)) throw new Error(`loadDiffusersFolder: ${dir} does not exist`);

  // Resolve everything first, so a missing piece is reported before any large file is read.
  const vaeFiles = resolveComponent(dir, "vae", { variant: o.variant });
  const unetFiles = resolveComponent(dir, "unet", { variant: o.variant });
  const cacheExists = PROMPT_PADDINGS.some((p) => existsSync(join(dir, emptyPromptCacheName(p))));
  const teFiles = resolveComponent(dir, "text_encoder", {
    variant: o.variant,
    weightsRequired: !cacheExists,
  });
  const schedFile = resolveComponent(dir, "scheduler", {
    configNames: ["scheduler_config.json", "config.json"],
    weightsRequired: false,
  }).config;

  const named = <T>(file: string, read: (j: object) => T): T => {
    try {
      return read(readJson(file));
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith(file) ? msg : `${file}: ${msg}`);
    }
  };
  const vaeConfig = named(vaeFiles.config, readAutoencoderKLConfig);
  const unetConfig = named(unetFiles.config, readUNet2DConditionConfig);
  const teConfig = named(teFiles.config, readClipTextModelConfig);
  const scheduler = named(schedFile, readSchedulerConfig);
  const tokens = readPromptTokenSpec(readTokenizerFiles(join(dir, "tokenizer")), teConfig);

  let vae: AutoencoderKL | null = null;
  try {
    vae = place(
      loadModuleFile(vaeFiles.weights!, () => new AutoencoderKL(vaeConfig), loadVaeWeights),
      device,
      dtype,
    );
    releaseMappings();
    const unet = place(
      loadModuleFile(unetFiles.weights!, () => new UNet2DConditionModel(unetConfig), loadUNetWeights),
      device,
      dtype,
    );
    releaseMappings();
    return new DiffusersFolder(
      dir,
      vae,
      unet,
      scheduler,
      teConfig,
      tokens,
      { vae: vaeFiles, unet: unetFiles, textEncoder: teFiles, scheduler: schedFile },
      dtype,
      device,
    );
  } catch (e) {
    vae?.dispose();
    releaseMappings();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Empty-prompt embedding cache

function fileStamp(file: string | null): string {
  if (!file || !existsSync(file)) return "absent";
  const s = statSync(file);
  return JSON.stringify({ name: file.split(/[\\/]/).pop(), size: s.size, mtimeMs: s.mtimeMs });
}

/** The cache key: everything the embedding depends on. */
function cacheKey(folder: DiffusersFolder, padding: PromptPadding): Record<string, string> {
  const sha = createHash("sha256").update(readFileSync(folder.files.textEncoder.config)).digest("hex");
  const ids = tidy(() =>
    Array.from(emptyPromptIds(folder.tokens, padding).toTypedArray() as BigInt64Array, Number),
  );
  return {
    format: CACHE_FORMAT,
    text_encoder_config_sha256: sha,
    text_encoder_weights: fileStamp(folder.files.textEncoder.weights),
    prompt_ids: ids.join(","),
  };
}

/** Why a cache's metadata does not fit `key` (null = it fits). */
function cacheMismatch(meta: Record<string, unknown>, key: Record<string, string>): string | null {
  for (const [k, v] of Object.entries(key)) {
    // Deleted weights (after caching) cannot be compared: the rest of the key still has to match.
    if (k === "text_encoder_weights" && v === "absent") continue;
    if (meta[k] !== v) return k;
  }
  return null;
}

/** Reads a valid cache: the (1, L, D) float32 embedding, or null (absent, stale or unreadable). */
function readCache(file: string, key: Record<string, string>): Tensor | null {
  if (!existsSync(file)) return null;
  try {
    const ck = loadCheckpoint(file);
    try {
      const t = ck.tensors.get("last_hidden_state");
      if (!t || cacheMismatch(ck.extra, key)) return null;
      return t.float().clone();
    } finally {
      dispose(ck.tensors);
    }
  } catch {
    return null;
  } finally {
    releaseMappings();
  }
}

export interface EmptyPromptResult {
  /** (1, L, D) on the folder's device and dtype. */
  embedding: Tensor;
  /** "cache" when read from the cache file, "computed" when the text encoder ran. */
  from: "cache" | "computed";
}

/**
 * The empty prompt's `last_hidden_state` (1, L, D) of the folder's text encoder (L = 2 with padding `none`,
 * what the released DEDOS code feeds the UNet; 77 with `max-length`, what diffusers' pipelines feed), read
 * from the folder's cache file when that is valid, else computed in fp32 on the CPU and written there
 * atomically (a write failure, e.g. a read-only folder, only warns).
 */
export function emptyPromptEmbeddingDetailed(
  folder: DiffusersFolder,
  padding: PromptPadding = "none",
): EmptyPromptResult {
  const key = cacheKey(folder, padding);
  const file = folder.emptyPromptCacheFile(padding);
  let from: EmptyPromptResult["from"] = "cache";
  let emb = readCache(file, key);
  if (!emb) {
    if (!folder.files.textEncoder.weights || !existsSync(folder.files.textEncoder.weights))
      throw new Error(
        `diffusers folder ${folder.dir}: the empty-prompt cache ${file} is missing or stale and the text encoder weights are missing in ${folder.files.textEncoder.dir}`,
      );
    const hadEncoder = folder.textEncoderLoaded;
    const te = folder.textEncoder();
    emb = noGrad(() => tidy(() => te.forward(emptyPromptIds(folder.tokens, padding))));
    if (!hadEncoder) folder.releaseTextEncoder();
    from = "computed";
    try {
      saveSafetensors(file, new Map([["last_hidden_state", emb.contiguous()]]), key);
    } catch (e) {
      console.warn(`dedos: could not cache the empty-prompt embedding at ${file}: ${(e as Error).message}`);
    }
  }
  const out = tidy(() => emb.to({ dtype: folder.dtype, device: folder.device }).detach());
  if (out !== emb) emb.dispose();
  return { embedding: out, from };
}

/** emptyPromptEmbeddingDetailed(folder, padding).embedding */
export function emptyPromptEmbedding(folder: DiffusersFolder, padding: PromptPadding = "none"): Tensor {
  return emptyPromptEmbeddingDetailed(folder, padding).embedding;
}
