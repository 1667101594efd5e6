// A tiny diffusers folder (the fixture VAE and UNet, a tiny text encoder, scheduler and tokenizer files) for
// the tests of the folder loader (test/models/diffusers.test.ts), the diffusion branch and the text encoder.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before } from "node:test";
import {
  CLIP_TEXT_MODEL_DEFAULTS,
  ClipTextModel,
  type ClipTextModelConfig,
} from "../../src/diffusion/text-encoder.js";
import { UNet2DConditionModel } from "../../src/diffusion/unet.js";
import { AutoencoderKL } from "../../src/diffusion/vae.js";
import { emptyPromptCacheName } from "../../src/models/diffusers.js";
import { unetConfigFromCase, vaeConfigFromCase } from "../../src/parity/cases/diffusion.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { loadCheckpoint, releaseMappings, saveSafetensors } from "../../src/torch/io/load.js";
import { arange, dispose, Generator, type Tensor, tidy } from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";

const fixtures = join(PACKAGE_ROOT, "test/fixtures");

export function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.float().sub(b.float()).abs().max().item());
}

/** Tiny text encoder: small vocabulary whose special ids come from the folder's tokenizer/vocab.json. */
export const TINY_TE: ClipTextModelConfig = {
  ...CLIP_TEXT_MODEL_DEFAULTS,
  vocab_size: 64,
  hidden_size: 32, // = the fixture UNet's cross_attention_dim
  intermediate_size: 64,
  projection_dim: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 77,
  hidden_act: "gelu",
};
export const TINY_VOCAB = { "!": 0, '"': 1, "<|startoftext|>": 62, "<|endoftext|>": 63 };

export function writeJson(file: string, v: unknown): void {
  writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

export function saveModule(
  file: string,
  m: { stateDict(): Map<string, Tensor> },
  extra?: Map<string, Tensor>,
): void {
  saveSafetensors(file, new Map([...m.stateDict(), ...(extra ?? [])]));
}

export function writeTextEncoder(dir: string, seed: number, extra?: Map<string, Tensor>): void {
  const te = new ClipTextModel(TINY_TE, { generator: new Generator(seed) });
  saveModule(join(dir, "text_encoder/model.safetensors"), te, extra);
  te.dispose();
}

/** A complete tiny diffusers folder. */
export function writeTinyFolder(dir: string): void {
  for (const s of ["vae", "unet", "text_encoder", "scheduler", "tokenizer"])
    mkdirSync(join(dir, s), { recursive: true });
  const vaeConfig = vaeConfigFromCase(loadFixture(join(fixtures, "sd_vae_encoder")));
  const unetConfig = unetConfigFromCase(loadFixture(join(fixtures, "sd_unet")));
  writeJson(join(dir, "vae/config.json"), { _class_name: "AutoencoderKL", ...vaeConfig });
  writeJson(join(dir, "unet/config.json"), { _class_name: "UNet2DConditionModel", ...unetConfig });
  writeJson(join(dir, "text_encoder/config.json"), { architectures: ["CLIPTextModel"], ...TINY_TE });
  writeJson(join(dir, "scheduler/scheduler_config.json"), {
    _class_name: "PNDMScheduler",
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    set_alpha_to_one: false,
    steps_offset: 1,
    clip_sample: false,
  });
  writeJson(join(dir, "tokenizer/special_tokens_map.json"), {
    bos_token: { content: "<|startoftext|>" },
    eos_token: { content: "<|endoftext|>" },
    pad_token: "!",
  });
  writeJson(join(dir, "tokenizer/vocab.json"), TINY_VOCAB);
  const g = new Generator(11);
  const vae = new AutoencoderKL(vaeConfig, { generator: g });
  saveModule(join(dir, "vae/diffusion_pytorch_model.safetensors"), vae);
  vae.dispose();
  const unet = new UNet2DConditionModel(unetConfig, { generator: g });
  saveModule(join(dir, "unet/diffusion_pytorch_model.safetensors"), unet);
  unet.dispose();
  // transformers < 4.31 saved the position_ids buffer: it must be ignored, as transformers does.
  writeTextEncoder(
    dir,
    5,
    new Map([["text_model.embeddings.position_ids", tidy(() => arange(0, 77).view(1, 77))]]),
  );
}

/**
 * A tiny diffusers folder written once before the file's tests (`base`), fresh copies of it for tests that
 * modify theirs (`copy()`), and a scratch folder (`tmp`).
 */
export function tinyDiffusersFolders(): { tmp: string; base: string; copy(): string } {
  const tmp = tempDir("dedos-diffusers-");
  const base = join(tmp, "base");
  let copies = 0;
  before(() => writeTinyFolder(base));
  return {
    tmp,
    base,
    copy() {
      const d = join(tmp, `copy${copies++}`);
      cpSync(base, d, { recursive: true });
      for (const p of ["none", "max-length"] as const)
        rmSync(join(d, emptyPromptCacheName(p)), { force: true });
      return d;
    },
  };
}

/** Rewrites one component's weight file through `edit`. */
export function editWeights(file: string, edit: (sd: Map<string, Tensor>) => Map<string, Tensor>): void {
  const ck = loadCheckpoint(file);
  const sd = new Map([...ck.tensors].map(([k, t]) => [k, t.clone()]));
  dispose(ck.tensors);
  releaseMappings();
  saveSafetensors(file, edit(sd));
  dispose(sd);
}

/** Renames one key of a weight file (a strict loader must then name both). */
export function renameKey(file: string, from: string, to: string): void {
  editWeights(file, (sd) => {
    const t = sd.get(from)!;
    sd.delete(from);
    sd.set(to, t);
    return sd;
  });
}
