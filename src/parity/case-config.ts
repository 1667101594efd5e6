// Parity fixtures' configs → typed model configs (the case.json `config` of each fixture directory).
import { type AggregatorConfig, swinShiftSize, validateAggregatorConfig } from "../catseg/config.js";

/**
 * An AggregatorConfig from a parity case's `config` object (test/fixtures/catseg_aggregator*). Keys may carry
 * an explanation after the name ("prompt_channel (P)"); `pooling_size` there is prose (both sizes are run),
 * so the CAT-Seg training default (2, 2) is used unless it is a pair. The case's `shift_size` is checked
 * against the one the Swin blocks derive.
 */
export function aggregatorConfigFromCase(config: Record<string, unknown>): AggregatorConfig {
  const get = <T>(name: string, fallback?: T): T => {
    for (const [k, v] of Object.entries(config)) if (k === name || k.startsWith(`${name} `)) return v as T;
    if (fallback !== undefined) return fallback;
    throw new Error(`case.json config has no "${name}"`);
  };
  const pair = (name: string, fallback?: [number, number]): [number, number] => {
    const v = get<unknown>(name, fallback);
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number")) return [v[0], v[1]];
    if (typeof v === "number") return [v, v];
    if (fallback) return fallback;
    throw new Error(`case.json config "${name}" is not a pair: ${JSON.stringify(v)}`);
  };
  const c: AggregatorConfig = {
    textGuidanceDim: get("text_guidance_dim"),
    textGuidanceProjDim: get("text_guidance_proj_dim"),
    appearanceGuidanceDim: get("appearance_guidance_dim"),
    appearanceGuidanceProjDim: get("appearance_guidance_proj_dim"),
    decoderDims: pair("decoder_dims"),
    decoderGuidanceDims: pair("decoder_guidance_dims"),
    decoderGuidanceProjDims: pair("decoder_guidance_proj_dims"),
    numLayers: get("num_layers"),
    nheads: get("nheads"),
    hiddenDim: get("hidden_dim"),
    poolingSize: pair("pooling_size", [2, 2]),
    featureResolution: pair("feature_resolution"),
    windowSize: get("window_size"),
    attentionType: get("attention_type", "linear"),
    promptChannel: get("prompt_channel", 1),
    padLen: get("pad_len", 256),
  };
  const shift = get<number | null>("shift_size", null);
  if (shift !== null && shift !== swinShiftSize(c))
    throw new Error(`case.json shift_size ${shift} differs from the derived ${swinShiftSize(c)}`);
  validateAggregatorConfig(c);
  return c;
}
