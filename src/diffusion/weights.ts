// Stable Diffusion weight layouts (diffusers folders: unet/, vae/, text_encoder/), pure: tensor maps in,
// loaded modules out (the folder is read by models/diffusers.ts). Each load is strict: every missing,
// unexpected or wrongly shaped key throws a StateDictError naming the file, the key and both shapes.

import { dispose, type Tensor } from "../torch/tensor.js";
import type { ClipTextModel } from "./text-encoder.js";
import type { UNet2DConditionModel } from "./unet.js";
import type { AutoencoderKL } from "./vae.js";

/** Keys that transformers ignores on load (a non-persistent buffer saved by transformers < 4.31). */
export const IGNORED_TEXT_ENCODER_KEYS: readonly string[] = ["text_model.embeddings.position_ids"];

const DEPRECATED_ATTENTION = /^(.*\bmid_block\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$/;
const RENAMED: Record<string, string> = { query: "to_q", key: "to_k", value: "to_v", proj_attn: "to_out.0" };

/**
 * diffusers < 0.14 VAE attention names → current ones, as diffusers' `_convert_deprecated_attention_blocks`
 * does on load: `…mid_block.attentions.i.{query,key,value,proj_attn}` → `{to_q,to_k,to_v,to_out.0}`. 1×1-conv
 * shaped weights (C, C, 1, 1) become (C, C) views (kept: dispose them with the input's tensors). Other keys
 * pass through; the input map is not modified.
 */
export function convertDeprecatedAttentionKeys(sd: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of sd) {
    const m = DEPRECATED_ATTENTION.exec(k);
    if (!m) {
      out.set(k, t);
      continue;
    }
    const squeeze = m[3] === "weight" && t.ndim === 4 && t.size(2) === 1 && t.size(3) === 1;
    out.set(`${m[1]}${RENAMED[m[2]!]}.${m[3]}`, squeeze ? t.view(t.size(0), t.size(1)).keep() : t);
  }
  return out;
}

/** A diffusers UNet state dict (`unet/diffusion_pytorch_model.safetensors`) into `unet`. */
export function loadUNetWeights(
  unet: UNet2DConditionModel,
  tensors: ReadonlyMap<string, Tensor>,
  source?: string,
): void {
  unet.loadStateDict(new Map(tensors), { source });
}

/** A diffusers VAE state dict into `vae`, legacy attention names converted first. */
export function loadVaeWeights(
  vae: AutoencoderKL,
  tensors: ReadonlyMap<string, Tensor>,
  source?: string,
): void {
  const converted = convertDeprecatedAttentionKeys(tensors);
  try {
    vae.loadStateDict(converted, { source });
  } finally {
    // The squeezed views the conversion made (the caller's tensors are the caller's to free).
    const given = new Set(tensors.values());
    dispose([...converted.values()].filter((t) => !given.has(t)));
  }
}

/** A transformers CLIPTextModel state dict into `model` (`position_ids`, a stale buffer, ignored). */
export function loadTextEncoderWeights(
  model: ClipTextModel,
  tensors: ReadonlyMap<string, Tensor>,
  source?: string,
): void {
  const sd = new Map([...tensors].filter(([k]) => !IGNORED_TEXT_ENCODER_KEYS.includes(k)));
  model.loadStateDict(sd, { source });
}
