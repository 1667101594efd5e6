// The text encoder of a diffusers Stable Diffusion folder: HF transformers' CLIPTextModel
// (models/clip/modeling_clip.py), with its state-dict keys, so `text_encoder/model.safetensors` (or
// `pytorch_model.bin`) loads strictly without renaming:
//
//   text_model.embeddings.{token_embedding, position_embedding}.weight
//   text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1, fc2}, layer_norm2}.*
//   text_model.final_layer_norm.*
//
//   ids (B, L) → token + position embedding → N pre-LN layers (causal self-attention, MLP with hidden_act)
//   → final_layer_norm → last_hidden_state (B, L, D)
//
// last_hidden_state is what diffusers' StableDiffusionPipeline.encode_prompt passes to the UNet as
// encoder_hidden_states (clip_skip unset, no attention mask: SD configs do not set use_attention_mask).
// SD-2's OpenCLIP-H is stored with 23 of its 24 layers (the penultimate-layer output is baked in), so no
// layer skipping happens here: the config's num_hidden_layers is the truth.
//
// Prompt ids follow the diffusers call `tokenizer(prompt, padding="max_length", max_length=77,
// truncation=True)`: [BOS, …, EOS, pad…] with the folder tokenizer's own pad token — "!" (id 0) for SD-2,
// "<|endoftext|>" (49407) for SD-1.5. The text encoder's config.json pad/bos/eos ids are NOT used for
// padding (SD-2's says pad 1, bos 0, eos 2: transformers' old defaults, unrelated to its tokenizer).

import { join } from "node:path";
import { ClipTokenizer, EOT_ID, SOT_ID } from "../clip/tokenizer.js";
import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { arange, full, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { Linear } from "./layers.js";

// ---------------------------------------------------------------------------------------------------------
// Config (transformers CLIPTextConfig)

export interface ClipTextModelConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  /** Width of text_projection in CLIPTextModelWithProjection (informative only here). */
  projection_dim: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  /** "quick_gelu" (OpenAI CLIP, SD-1.5) or "gelu" (OpenCLIP, SD-2); also "gelu_new"/"gelu_pytorch_tanh", "relu". */
  hidden_act: string;
  layer_norm_eps: number;
  /** Config token ids: eos_token_id decides the pooled position (2 = legacy argmax of the ids). */
  pad_token_id: number;
  bos_token_id: number;
  eos_token_id: number;
}

/** transformers CLIPTextConfig defaults. */
export const CLIP_TEXT_MODEL_DEFAULTS: Readonly<ClipTextModelConfig> = Object.freeze({
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: "quick_gelu",
  layer_norm_eps: 1e-5,
  pad_token_id: 1,
  bos_token_id: 49406,
  eos_token_id: 49407,
});

const INT_FIELDS = [
  "vocab_size",
  "hidden_size",
  "intermediate_size",
  "projection_dim",
  "num_hidden_layers",
  "num_attention_heads",
  "max_position_embeddings",
  "pad_token_id",
  "bos_token_id",
  "eos_token_id",
] as const;

/**
 * CLIPTextConfig from a parsed (or raw) `text_encoder/config.json` (flat CLIPTextModel config, or a CLIPConfig
 * whose `text_config` is used). Missing keys take transformers' defaults; wrong types throw naming the key.
 */
export function readClipTextModelConfig(json: string | object): ClipTextModelConfig {
  let obj = (typeof json === "string" ? JSON.parse(json) : json) as Record<string, unknown>;
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    throw new Error("CLIPTextModel config: expected a JSON object");
  if (obj.text_config && typeof obj.text_config === "object")
    obj = obj.text_config as Record<string, unknown>;
  const c: ClipTextModelConfig = { ...CLIP_TEXT_MODEL_DEFAULTS };
  for (const k of INT_FIELDS) {
    if (!(k in obj) || obj[k] === null) continue;
    const v = obj[k];
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new Error(`CLIPTextModel config: "${k}" must be an integer, got ${JSON.stringify(v)}`);
    c[k] = v;
  }
  if ("layer_norm_eps" in obj) {
    const v = obj.layer_norm_eps;
    if (typeof v !== "number" || !(v > 0))
      throw new Error(
        `CLIPTextModel config: "layer_norm_eps" must be a positive number, got ${JSON.stringify(v)}`,
      );
    c.layer_norm_eps = v;
  }
  if ("hidden_act" in obj) {
    const v = obj.hidden_act;
    if (typeof v !== "string")
      throw new Error(`CLIPTextModel config: "hidden_act" must be a string, got ${JSON.stringify(v)}`);
    c.hidden_act = v;
  }
  textActivation(c.hidden_act); // validates
  if (c.hidden_size % c.num_attention_heads !== 0)
    throw new Error(
      `CLIPTextModel config: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
    );
  return c;
}

/** transformers ACT2FN for the activations CLIP configs use. */
export function textActivation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case "quick_gelu":
      return F.quickGelu;
    case "gelu":
      return (x) => F.gelu(x);
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return (x) => F.gelu(x, "tanh");
    case "relu":
      return F.relu;
    default:
      throw new Error(
        `CLIPTextModel config: hidden_act "${name}" is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu)`,
      );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Modules (names as in modeling_clip.py)

/** CLIPAttention: q/k/v/out projections, softmax(q·kᵀ/√d + mask)·v per head. */
export class ClipTextAttention extends Module {
  readonly q_proj: nn.Linear;
  readonly k_proj: nn.Linear;
  readonly v_proj: nn.Linear;
  readonly out_proj: nn.Linear;
  readonly headDim: number;
  constructor(
    readonly dim: number,
    readonly heads: number,
    o: nn.InitOptions = {},
  ) {
    super();
    this.headDim = dim / heads;
    this.k_proj = this.child("k_proj", new Linear(dim, dim, true, o));
    this.v_proj = this.child("v_proj", new Linear(dim, dim, true, o));
    this.q_proj = this.child("q_proj", new Linear(dim, dim, true, o));
    this.out_proj = this.child("out_proj", new Linear(dim, dim, true, o));
  }
  /** (B, L, D) → (B, L, D); `mask` additive, broadcast to (B, H, L, L). */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tidy(() => {
      const [B, L] = x.shape as [number, number];
      const split = (t: Tensor) => t.view(B, L, this.heads, this.headDim).transpose(1, 2); // (B, H, L, d)
      const q = split(this.q_proj.forward(x));
      const k = split(this.k_proj.forward(x));
      const v = split(this.v_proj.forward(x));
      const a = F.attention(q, k, v, { mask, scale: this.headDim ** -0.5 }); // (B, H, L, d)
      return this.out_proj.forward(a.transpose(1, 2).reshape(B, L, this.dim));
    });
  }
}

/** CLIPMLP: fc1 → hidden_act → fc2. */
export class ClipTextMlp extends Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  private readonly act: (x: Tensor) => Tensor;
  constructor(dim: number, hidden: number, act: string, o: nn.InitOptions = {}) {
    super();
    this.act = textActivation(act);
    this.fc1 = this.child("fc1", new Linear(dim, hidden, true, o));
    this.fc2 = this.child("fc2", new Linear(hidden, dim, true, o));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }
}

/** CLIPEncoderLayer: x + attn(ln1(x)), then + mlp(ln2(·)). */
export class ClipTextEncoderLayer extends Module {
  readonly self_attn: ClipTextAttention;
  readonly layer_norm1: nn.LayerNorm;
  readonly mlp: ClipTextMlp;
  readonly layer_norm2: nn.LayerNorm;
  constructor(c: ClipTextModelConfig, o: nn.InitOptions = {}) {
    super();
    this.self_attn = this.child("self_attn", new ClipTextAttention(c.hidden_size, c.num_attention_heads, o));
    this.layer_norm1 = this.child("layer_norm1", new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.child("mlp", new ClipTextMlp(c.hidden_size, c.intermediate_size, c.hidden_act, o));
    this.layer_norm2 = this.child("layer_norm2", new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return tidy(() => {
      const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
      return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
    });
  }
}

class ClipTextEmbeddings extends Module {
  readonly token_embedding: nn.Embedding;
  readonly position_embedding: nn.Embedding;
  constructor(c: ClipTextModelConfig, o: nn.InitOptions = {}) {
    super();
    this.token_embedding = this.child("token_embedding", new nn.Embedding(c.vocab_size, c.hidden_size, o));
    this.position_embedding = this.child(
      "position_embedding",
      new nn.Embedding(c.max_position_embeddings, c.hidden_size, o),
    );
  }
}

class ClipTextEncoderStack extends Module {
  readonly layers: ModuleList<ClipTextEncoderLayer>;
  constructor(c: ClipTextModelConfig, o: nn.InitOptions = {}) {
    super();
    const ls: ClipTextEncoderLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) ls.push(new ClipTextEncoderLayer(c, o));
    this.layers = this.child("layers", new ModuleList(ls));
  }
}

/** CLIPTextTransformer (`text_model`). */
export class ClipTextTransformer extends Module {
  readonly embeddings: ClipTextEmbeddings;
  readonly encoder: ClipTextEncoderStack;
  readonly final_layer_norm: nn.LayerNorm;
  constructor(c: ClipTextModelConfig, o: nn.InitOptions = {}) {
    super();
    this.embeddings = this.child("embeddings", new ClipTextEmbeddings(c, o));
    this.encoder = this.child("encoder", new ClipTextEncoderStack(c, o));
    this.final_layer_norm = this.child("final_layer_norm", new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
}

export interface ClipTextModelOutput {
  /** (B, L, D) after final_layer_norm: diffusers' prompt_embeds. */
  lastHiddenState: Tensor;
  /** (B, D) last_hidden_state at the EOS position (pooler_output). */
  pooled: Tensor;
  /** Embedding output and every layer's output (B, L, D), when asked for (transformers' hidden_states). */
  hiddenStates: Tensor[];
}

/** transformers CLIPTextModel. */
export class ClipTextModel extends Module {
  readonly text_model: ClipTextTransformer;
  constructor(
    readonly config: ClipTextModelConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    textActivation(config.hidden_act);
    if (config.hidden_size % config.num_attention_heads !== 0)
      throw new Error(
        `ClipTextModel: hidden_size ${config.hidden_size} is not divisible by ${config.num_attention_heads} heads`,
      );
    this.text_model = this.child("text_model", new ClipTextTransformer(config, o));
  }

  static fromConfig(json: string | object, o: nn.InitOptions = {}): ClipTextModel {
    return new ClipTextModel(readClipTextModelConfig(json), o);
  }

  /** ids (B, L ≤ max_position_embeddings), integer → last_hidden_state (B, L, D). */
  forward(ids: Tensor): Tensor {
    return tidy(() => this.run(ids).lastHiddenState);
  }

  /** The full pass (CLIPTextTransformer.forward without attention_mask). */
  run(ids: Tensor, o: { hiddenStates?: boolean } = {}): ClipTextModelOutput {
    const c = this.config;
    if (ids.ndim !== 2) throw new Error(`ClipTextModel: ids must be (B, L), got [${ids.shape.join(", ")}]`);
    const [B, L] = ids.shape as [number, number];
    if (L > c.max_position_embeddings)
      throw new Error(
        `ClipTextModel: ${L} tokens exceed max_position_embeddings ${c.max_position_embeddings}`,
      );
    const tm = this.text_model;
    return tidy(() => {
      const weight = tm.embeddings.token_embedding.weight;
      const tok = ids.to({ dtype: "int64", device: weight.device });
      const pos = tm.embeddings.position_embedding.weight.narrow(0, 0, L); // position_ids = arange(L)
      let h = tm.embeddings.token_embedding.forward(tok).add(pos); // (B, L, D)
      // _create_4d_causal_attention_mask: finfo.min above the diagonal; −inf gives the same softmax here
      // (every row keeps its diagonal).
      const mask = full([L, L], Number.NEGATIVE_INFINITY, { dtype: h.dtype, device: h.device }).triu(1);
      const hidden: Tensor[] = o.hiddenStates ? [h] : [];
      for (const layer of tm.encoder.layers) {
        h = layer.forward(h, mask);
        if (o.hiddenStates) hidden.push(h);
      }
      const last = tm.final_layer_norm.forward(h);
      // pooled: legacy configs (eos_token_id 2) take argmax(ids) (EOS is the largest id); others the first EOS.
      const eosPos = c.eos_token_id === 2 ? tok.argmax(-1) : tok.eq(c.eos_token_id).to("int32").argmax(-1);
      const pooled = last.index([arange(B, undefined, 1, { device: last.device }), eosPos]);
      return { lastHiddenState: last, pooled, hiddenStates: hidden };
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Prompt ids

/** What the folder's tokenizer puts around a prompt. */
export interface PromptTokenSpec {
  bosId: number;
  eosId: number;
  padId: number;
  /** model_max_length (77). */
  contextLength: number;
  /** Where each value came from (for cache keys and messages). */
  source: string;
}

/** The JSON files of a diffusers folder's `tokenizer/` (each optional; read by models/diffusers.ts). */
export interface TokenizerFiles {
  specialTokensMap?: Record<string, unknown> | null;
  tokenizerConfig?: Record<string, unknown> | null;
  vocab?: Record<string, unknown> | null;
  /** Where they came from, for messages. */
  dir?: string;
}

/** A special-token entry: "text" or {"content": "text", …} (AddedToken). */
function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return null;
}

/** Ids of the standard CLIP vocabulary for the pad tokens SD folders use. */
const KNOWN_TOKEN_IDS: Record<string, number> = {
  "!": 0,
  "<|startoftext|>": SOT_ID,
  "<|endoftext|>": EOT_ID,
};

/**
 * The token layout of a diffusers folder's `tokenizer/` (special_tokens_map.json, tokenizer_config.json,
 * vocab.json, each optional). Without a pad token there, the default follows the text encoder: "gelu"
 * (OpenCLIP, SD-2) pads with "!" (0), "quick_gelu" (OpenAI CLIP, SD-1.5) with "<|endoftext|>" (49407).
 */
export function readPromptTokenSpec(
  files: TokenizerFiles | null,
  config: ClipTextModelConfig,
): PromptTokenSpec {
  const tokenizerDir = files?.dir ?? (files ? "tokenizer/" : null);
  const map = files?.specialTokensMap ?? null;
  const tcfg = files?.tokenizerConfig ?? null;
  const vocab = files?.vocab ?? null;
  const idOf = (text: string, what: string): number => {
    const v = vocab?.[text];
    if (typeof v === "number") return v;
    const k = KNOWN_TOKEN_IDS[text];
    if (k !== undefined) return k;
    throw new Error(
      `tokenizer: ${what} token ${JSON.stringify(text)} is not in ${tokenizerDir ? join(tokenizerDir, "vocab.json") : "the standard CLIP vocabulary"}`,
    );
  };
  const special = (key: string) => tokenText(map?.[key]) ?? tokenText(tcfg?.[key]);
  const bosText = special("bos_token") ?? "<|startoftext|>";
  const eosText = special("eos_token") ?? "<|endoftext|>";
  let padText = special("pad_token");
  let source = padText ? `pad "${padText}" from ${tokenizerDir}` : "";
  if (!padText) {
    padText = config.hidden_act === "gelu" ? "!" : eosText;
    source = `pad "${padText}" by default for hidden_act ${config.hidden_act}`;
  }
  const mml = tcfg?.model_max_length;
  const contextLength =
    typeof mml === "number" && Number.isInteger(mml) && mml > 0 && mml <= config.max_position_embeddings
      ? mml
      : config.max_position_embeddings;
  const spec = {
    bosId: idOf(bosText, "bos"),
    eosId: idOf(eosText, "eos"),
    padId: idOf(padText, "pad"),
    contextLength,
    source,
  };
  for (const [k, v] of Object.entries(spec))
    if (typeof v === "number" && k !== "contextLength" && v >= config.vocab_size)
      throw new Error(`tokenizer: ${k} ${v} is outside the text encoder's vocab_size ${config.vocab_size}`);
  return spec;
}

/**
 * How the empty prompt is tokenized: "none" (BOS, EOS: 2 tokens, as the released DEDOS code encodes it with
 * `padding="do_not_pad"`) or "max-length" (padded to the context length, as diffusers' pipelines do).
 */
export type PromptPadding = "none" | "max-length";

/** The empty prompt "" as an int64 (1, L): [BOS, EOS] (`none`) or [BOS, EOS, pad…] to contextLength. */
export function emptyPromptIds(spec: PromptTokenSpec, padding: PromptPadding = "none"): Tensor {
  if (padding !== "none" && padding !== "max-length")
    throw new Error(`emptyPromptIds: padding must be "none" or "max-length", got ${JSON.stringify(padding)}`);
  const L = padding === "none" ? 2 : spec.contextLength;
  const ids = new Int32Array(L).fill(spec.padId);
  ids[0] = spec.bosId;
  ids[1] = spec.eosId;
  return tidy(() => tensor(ids, [1, L]).long());
}

let sharedTokenizer: ClipTokenizer | null = null;

/**
 * Prompts as diffusers tokenizes them (max_length padding with the folder's pad token, truncation): the BPE
 * of the standard CLIP vocabulary (the one SD folders ship) with `spec`'s special ids. (B, L) int64.
 */
export function promptIds(texts: string[], spec: PromptTokenSpec, tokenizer?: ClipTokenizer): Tensor {
  if (!tokenizer && !sharedTokenizer) sharedTokenizer = ClipTokenizer.load();
  const tk = tokenizer ?? sharedTokenizer!;
  const L = spec.contextLength;
  const b = tk.tokenize(texts, { contextLength: L, truncate: true });
  const ids = Int32Array.from(b.ids);
  texts.forEach((_, r) => {
    const row = ids.subarray(r * L, (r + 1) * L);
    const e = b.eotIndex[r]!;
    for (let i = 0; i < L; i++) {
      if (i === 0) row[i] = spec.bosId;
      else if (i === e) row[i] = spec.eosId;
      else if (i > e) row[i] = spec.padId;
    }
  });
  return tidy(() => tensor(ids, [texts.length, L]).long());
}
