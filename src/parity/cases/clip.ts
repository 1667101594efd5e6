// Parity cases "clip_text" and "clip_vision": the CLIP towers built from case.json, weights loaded from the
// fixture file by the same strict loader real checkpoints use (`loadClipWeights` over `loadCheckpoint`),
// every `outputs.*` tensor and the intermediates compared under the case tolerance.
import type { ClipTextConfig, ClipVisionConfig } from "../../clip/config.js";
import { ClipTextEncoder } from "../../clip/text.js";
import { ClipVisionEncoder, normalizeClipPixels, resizeForClip } from "../../clip/vision.js";
import { checkModel, fixtureTensor } from "../checker.js";
import type { Comparison, Fixture } from "../fixture.js";
import { loadFixtureWeights } from "../fixture-weights.js";

/** case.json config fields carry explanations after the name ("input_resolution (pretraining; …)"). */
function cfg<T = number>(f: Fixture, name: string): T {
  const config = f.json.config as Record<string, unknown>;
  for (const [k, v] of Object.entries(config)) {
    if (k === name || k.startsWith(`${name} `)) return v as T;
  }
  throw new Error(`${f.dir}/case.json: config has no "${name}"`);
}

export function clipTextConfigFromCase(f: Fixture): ClipTextConfig {
  return {
    width: cfg(f, "transformer_width"),
    layers: cfg(f, "transformer_layers"),
    heads: cfg(f, "transformer_heads"),
    contextLength: cfg(f, "context_length"),
    vocabSize: cfg(f, "vocab_size"),
    embedDim: cfg(f, "embed_dim"),
  };
}

export function clipVisionConfigFromCase(f: Fixture): ClipVisionConfig {
  return {
    width: cfg(f, "width"),
    layers: cfg(f, "layers"),
    heads: cfg(f, "heads"),
    patchSize: cfg(f, "patch_size"),
    imageSize: cfg(f, "input_resolution"),
    outputDim: cfg(f, "output_dim"),
  };
}

/** `CLIP.encode_text` on the fixture's token rows, with every block and ln_final / EOT intermediates. */
export function runClipTextCase(f: Fixture): Comparison[] {
  const config = clipTextConfigFromCase(f);
  const model = new ClipTextEncoder(config, { init: "empty" }).eval();
  return checkModel(f, model, (c) => {
    loadFixtureWeights(f, model, "weights.");
    const ids = fixtureTensor(f, "inputs.text"); // (B, Lctx) int64
    const r = model.forwardDetailed(ids, { blocks: true });
    c.check("outputs.text_features", r.features);
    c.check("outputs.text_features_l2norm", r.features.div(r.features.norm(2, -1, true)));
    c.check("intermediates.x_embed", r.embed);
    r.blocks.forEach((b, i) => {
      c.check(`intermediates.resblock_${i}`, b);
    });
    c.check("intermediates.ln_final", r.lnFinal);
    c.check("intermediates.eot_pooled", r.eotPooled);
  });
}

/**
 * CATSeg.forward's CLIP part: normalise the raw image, bilinear resize to the run resolution, dense encode
 * with the hook layers tapped; then the native-resolution dense and pooled outputs.
 */
export function runClipVisionCase(f: Fixture): Comparison[] {
  const config = clipVisionConfigFromCase(f);
  const runRes: number = cfg(f, "run_resolution");
  const hooks: number[] = cfg(f, "hook_layers");
  const model = new ClipVisionEncoder(config, { init: "empty" }).eval();
  return checkModel(f, model, (c) => {
    loadFixtureWeights(f, model, "weights.visual.");
    const raw = fixtureTensor(f, "inputs.image_raw"); // (B, 3, H0, W0) 0–255
    const normalized = normalizeClipPixels(raw);
    c.check("intermediates.image_normalized", normalized);
    const resized = resizeForClip(normalized, runRes); // (B, 3, R, R)
    c.check("intermediates.image_resized", resized);

    const r = model.forward(resized, { dense: true, taps: hooks, debug: true });
    c.check("outputs.dense", r.tokens);
    hooks.forEach((l, i) => {
      c.check(`outputs.hook_layer${l}`, r.taps[i]!);
    });
    c.check("intermediates.resized_pos_embed", r.debug!.posEmbed);
    c.check("intermediates.ln_pre", r.debug!.lnPre);
    r.debug!.blocks.forEach((b, i) => {
      c.check(`intermediates.resblock_${i}`, b);
    });
    c.check("intermediates.ln_post_dense", r.lnPostDense);

    const native = fixtureTensor(f, "inputs.image_native"); // (B, 3, R0, R0) normalised
    c.check("outputs.dense_native", model.forward(native, { dense: true }).tokens);
    c.check("outputs.pooled_native", model.forward(native, { dense: false }).pooled!);
  });
}
