// The whole DEDOS model (spec §1–§6), read top to bottom:
//
//   images 0–255 (B, 3, H, W)
//   ├─ diffusion branch (frozen SD, no grad): z = VAE(image); per t: UNet(z, t, ∅) → ε̂, x̂0, 16 block taps
//   ├─ proxy queries: kron(basic, diffusion_t) → interaction with the taps of t → merge → Q (B, N, C)
//   ├─ query-refined CLIP: Q̂ = MLP(Q), T_l = Lin_l(Q̂); after every block f_l ← f_l + 𝒫^F_l([f_l; S_l T_l])
//   │    → dense features (cost volume), taps, ln_post maps; memory = Σ_l T_l (B, N, D)
//   ├─ head = mask-decoder: pyramid + FPN → masked transformer decoder (query position = memory) → per
//   │    query class logits against the aggregated text (+ "other") and masks; fused (mean) with the
//   │    cost-aggregation branch's sigmoid
//   └─ head = cost-aggregation: text attends to the memory (zero-init residual) → CAT-Seg's Aggregator
//   training only: texture-separation loss between the frozen CLIP features of the image and of the decoded
//   t = 50 x̂0 (the "denoised image"), through 𝒫^C and 𝒫^L(Q).
//
// Weights (./weights.ts, read and written by models/factory.ts): `catseg.*` holds CLIP and the CAT-Seg head
// in the official CAT-Seg layout (a CAT-Seg checkpoint loads into it), the DEDOS modules sit beside it. Stable Diffusion is not in the module tree: it is frozen,
// comes from its own diffusers folder and is attached with `attachDiffusion`.

import { type CatSegFeatures, CatSegModel, type CatSegTextOptions } from "../catseg/model.js";
import { prepareClipInput } from "../clip/vision.js";
import { type DiffusionBranch, type DiffusionStep, disposeSteps } from "../diffusion/branch.js";
import type { InitOptions } from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { type Generator, noGrad, type Tensor, tidy } from "../torch/tensor.js";
import { cloneDedosConfig, type DedosConfig, proxyShape, validateDedosConfig } from "./config.js";
import { TextureSeparationLoss } from "./consistency.js";
import { SetCriterion } from "./criterion.js";
import { MaskDecoderHead } from "./mask-head.js";
import { costAggregationLoss } from "./pixel-loss.js";
import { ProxyQueries } from "./proxy-queries.js";
import { QueryInjection } from "./query-injection.js";
import { TextMemoryAggregation } from "./text-aggregation.js";

/** Class-independent features of a batch of views (computed once, shared by class chunks). */
export interface DedosFeatures {
  /** CLIP dense features, guidance and (mask-decoder head) the CLIP maps. */
  catseg: CatSegFeatures;
  /** Proxy queries Q (B, N, C); null when DEDOS is disabled. */
  queries: Tensor | null;
  /** Query memory Σ_l T_l (B, N, D); null when DEDOS is disabled. */
  memory: Tensor | null;
}

/** The head's raw outputs for one batch. */
export interface DedosHeadOutput {
  /** Cost-aggregation logits (B, T, 4g, 4g), when that branch runs. */
  costLogits: Tensor | null;
  /** Mask-classification predictions, auxiliary first, final last (mask-decoder head). */
  predictions: { classLogits: Tensor; masks: Tensor }[];
}

export interface DedosForwardOptions {
  /** Class-layer pooling of the cost-aggregation branch (default: training (2, 2) / test (1, 1)). */
  poolingSize?: [number, number];
}

export class DedosModel extends Module {
  readonly config: DedosConfig;
  readonly catseg: CatSegModel;
  readonly proxy: ProxyQueries | null = null;
  readonly injection: QueryInjection | null = null;
  readonly text_memory: TextMemoryAggregation | null = null;
  readonly mask_head: MaskDecoderHead | null = null;
  readonly consistency: TextureSeparationLoss | null = null;
  private diffusion: DiffusionBranch | null = null;
  private releaseDiffusion: (() => void) | null = null;
  private criterion: SetCriterion | null = null;

  constructor(config: DedosConfig, o: InitOptions = {}) {
    super();
    validateDedosConfig(config);
    const c = cloneDedosConfig(config);
    this.config = c;
    this.catseg = this.child("catseg", new CatSegModel(c.catseg, o));
    if (!c.enabled) return;
    const { queries: N, dim: C } = proxyShape(c.proxy);
    const v = c.catseg.clip.vision;
    const E = c.catseg.clip.text.embedDim;
    this.proxy = this.child("proxy", new ProxyQueries(c.proxy, c.diffusion.timesteps.length, o));
    this.injection = this.child("injection", new QueryInjection(c.injection, C, v.width, v.layers, o));
    if (this.usesCostBranch)
      this.text_memory = this.child(
        "text_memory",
        new TextMemoryAggregation(E, v.width, c.textAggregation, o),
      );
    if (c.head === "mask-decoder") {
      this.mask_head = this.child(
        "mask_head",
        new MaskDecoderHead(
          {
            clipWidth: v.width,
            textDim: E,
            numQueries: N,
            head: c.maskHead,
            textAggregation: c.textAggregation,
          },
          o,
        ),
      );
      this.criterion = new SetCriterion(c.loss);
    }
    if (c.consistency.enabled)
      this.consistency = this.child("consistency", new TextureSeparationLoss(c.consistency, v.width, C, o));
  }

  /** Whether CAT-Seg's cost aggregation runs (as the head, or fused into the mask-decoder head). */
  get usesCostBranch(): boolean {
    const c = this.config;
    return !c.enabled || c.head === "cost-aggregation" || c.maskHead.fuse === "mean";
  }

  /** Whether `head()` returns probabilities (mask-decoder) or logits for a sigmoid (cost aggregation). */
  get scoreKind(): "logits" | "probabilities" {
    return this.config.enabled && this.config.head === "mask-decoder" ? "probabilities" : "logits";
  }

  /** Class-attention length of the cost-aggregation branch (sliding-window chunking bound). */
  get padLen(): number {
    return this.catseg.padLen;
  }

  /** Whether the model needs Stable Diffusion for inference (proxy conditioning on the diffusion taps). */
  get needsDiffusionAtInference(): boolean {
    return this.config.enabled && this.config.proxy.conditioning === "diffusion";
  }

  /**
   * Attaches the frozen diffusion branch (its timesteps must be the config's). `release` frees what the
   * branch runs on when this model lets it go (a folder the model owns); by default the branch is the caller's.
   */
  attachDiffusion(branch: DiffusionBranch | null, o: { release?: () => void } = {}): this {
    if (branch) {
      const want = this.config.diffusion.timesteps;
      if (branch.timesteps.join(",") !== want.join(","))
        throw new Error(
          `DedosModel: the diffusion branch runs timesteps [${branch.timesteps.join(", ")}], the config says [${want.join(", ")}]`,
        );
    }
    this.releaseDiffusion?.();
    this.diffusion = branch;
    this.releaseDiffusion = branch ? (o.release ?? null) : null;
    return this;
  }

  get diffusionBranch(): DiffusionBranch | null {
    return this.diffusion;
  }

  private requireDiffusion(why: string): DiffusionBranch {
    if (!this.diffusion)
      throw new Error(
        `DedosModel: ${why} needs the Stable Diffusion branch; attach one (a diffusers folder, e.g. --sd DIR) ` +
          `or set ${why === "the texture-separation loss" ? "consistency.enabled=false" : "proxy.conditioning=static"}`,
      );
    return this.diffusion;
  }

  /** Pooling used when none is given: training (2, 2) in train mode, test (1, 1) in eval mode. */
  defaultPooling(): [number, number] {
    return this.catseg.defaultPooling();
  }

  /**
   * Proxy queries Q (B, N, C) for raw 0–255 images: from the diffusion taps of `steps` (run here when not
   * given) or, with static conditioning, from the kernels alone.
   */
  proxyQueries(images: Tensor, steps?: DiffusionStep[]): Tensor {
    const proxy = this.proxy;
    if (!proxy) throw new Error("DedosModel: DEDOS is disabled (enabled = false): no proxy queries");
    const B = images.size(0);
    if (this.config.proxy.conditioning === "static") return proxy.forward(null, B);
    if (steps)
      return proxy.forward(
        steps.map((s) => s.taps),
        B,
      );
    const run = this.requireDiffusion("proxy.conditioning = diffusion").forward(images);
    try {
      return proxy.forward(
        run.steps.map((s) => s.taps),
        B,
      );
    } finally {
      disposeSteps(run.steps);
      run.z.dispose();
    }
  }

  /** Raw 0–255 images (B, 3, H, W) → class-independent features (queries, refined CLIP, guidance). */
  encodeImage(images: Tensor, steps?: DiffusionStep[]): DedosFeatures {
    if (images.ndim !== 4 || images.size(1) !== 3)
      throw new Error(`DedosModel: images must be (B, 3, H, W), got [${images.shape.join(", ")}]`);
    if (!this.config.enabled) return { catseg: this.catseg.encodeImage(images), queries: null, memory: null };
    const clipMaps = this.mask_head !== null;
    return tidy(() => {
      const queries = this.proxyQueries(images, steps);
      // The per-layer T_l live in this scope: the hook reads them during the CLIP pass, then they are freed.
      const injected = this.injection!.prepare(queries);
      const catseg = this.catseg.encodeImage(images, { blockHook: injected.hook, clipMaps });
      return { catseg, queries, memory: injected.memory };
    });
  }

  /** Text (T, P, E) shared by every image → the raw outputs of the head(s). */
  headOutputs(
    features: DedosFeatures,
    textEmbeds: Tensor,
    o: DedosForwardOptions & { finalOnly?: boolean } = {},
  ): DedosHeadOutput {
    if (textEmbeds.ndim !== 3)
      throw new Error(`DedosModel: text embeddings must be (T, P, E), got [${textEmbeds.shape.join(", ")}]`);
    return tidy(() => {
      const f = features.catseg;
      const B = f.img.size(0);
      const [T, P, E] = textEmbeds.shape as [number, number, number];
      const text = textEmbeds.unsqueeze(0).expand(B, T, P, E); // (B, T, P, E)
      let costLogits: Tensor | null = null;
      if (this.usesCostBranch) {
        const aggregated =
          this.text_memory && features.memory ? this.text_memory.forward(text, features.memory) : text;
        costLogits = this.catseg.aggregator.forward(f.img, aggregated, [f.img, ...f.guidance], {
          poolingSize: o.poolingSize ?? this.defaultPooling(),
        });
      }
      let predictions: DedosHeadOutput["predictions"] = [];
      if (this.mask_head) {
        const maps = f.clipMaps;
        if (!maps || !features.memory)
          throw new Error("DedosModel: features lack the CLIP maps of the mask head");
        // One text vector per class: the prompts averaged and renormalised (P = 1 for the presets).
        const perClass = P === 1 ? text.squeeze(2) : text.mean(2);
        const unit = perClass.div(perClass.norm(2, -1, true));
        predictions = this.mask_head.forward(
          { taps: maps.taps, final: maps.dense, queryPos: features.memory, text: unit },
          { finalOnly: o.finalOnly },
        ).predictions;
      }
      return { costLogits, predictions };
    });
  }

  /**
   * Per-class scores (B, T, 4g, 4g): cost-aggregation logits (`scoreKind` "logits"), or the mask-decoder
   * head's probabilities Σ_q softmax(class)_q · sigmoid(mask)_q, averaged with the cost branch's sigmoid
   * when `maskHead.fuse = mean`.
   */
  head(features: DedosFeatures, textEmbeds: Tensor, o: DedosForwardOptions = {}): Tensor {
    return tidy(() => {
      const out = this.headOutputs(features, textEmbeds, { ...o, finalOnly: true });
      if (!this.mask_head) return out.costLogits!;
      const last = out.predictions[out.predictions.length - 1]!;
      const probs = this.mask_head.semanticInference(last.classLogits, last.masks);
      return out.costLogits ? probs.add(out.costLogits.sigmoid()).div(2) : probs;
    });
  }

  /** Raw 0–255 images (B, 3, H, W), text (T, P, E) → scores (B, T, 4g, 4g) as `head`. */
  forward(images: Tensor, textEmbeds: Tensor, o: DedosForwardOptions = {}): Tensor {
    return tidy(() => this.head(this.encodeImage(images), textEmbeds, o));
  }

  /**
   * Training forward: images (B, 3, H, W) 0–255 and ground truth (B, H, W) int64 (classes 0..T−1, ignore per
   * `loss.ignoreLabel`) with the training classes' text (T, P, E) → named losses, each already weighted;
   * their sum is the training objective. Stable Diffusion runs once per batch for both the proxy queries and
   * the texture-separation loss.
   */
  trainingLosses(
    images: Tensor,
    labels: Tensor,
    textEmbeds: Tensor,
    o: { generator?: Generator } = {},
  ): Record<string, Tensor> {
    if (labels.ndim !== 3 || labels.size(0) !== images.size(0))
      throw new Error(
        `DedosModel: labels must be (B, H, W) for ${images.size(0)} images, got [${labels.shape.join(", ")}]`,
      );
    const c = this.config;
    // Returned through tidy, so the losses (and their graphs) belong to the caller's scope.
    return tidy(() => {
      const losses: Record<string, Tensor> = {};
      let steps: DiffusionStep[] | undefined;
      const needSd = c.enabled && (c.proxy.conditioning === "diffusion" || c.consistency.enabled);
      if (needSd) {
        const branch = this.requireDiffusion(
          c.consistency.enabled ? "the texture-separation loss" : "proxy.conditioning = diffusion",
        );
        const ts = c.proxy.conditioning === "diffusion" ? branch.timesteps : [c.consistency.timestep];
        steps = branch.run(branch.encodeImage(images), ts);
      }
      const features = this.encodeImage(images, c.proxy.conditioning === "diffusion" ? steps : undefined);
      const out = this.headOutputs(features, textEmbeds);
      const ignore = c.loss.ignoreLabel;
      if (out.costLogits)
        losses.loss_cost = costAggregationLoss(out.costLogits, labels, ignore).mul(
          c.loss.costAggregationWeight,
        );
      if (this.criterion) {
        const seg = this.criterion.forward(out.predictions, labels, { generator: o.generator });
        for (const [k, v] of Object.entries(seg)) losses[k] = v;
      }
      if (this.consistency && steps) {
        const step = steps.find((s) => s.t === c.consistency.timestep)!;
        losses.loss_consistency = this.consistencyLoss(images, step, features.queries!);
      }
      return losses;
    });
  }

  /** §4: frozen CLIP on the image and on the decoded x̂0, compared through 𝒫^C and 𝒫^L(Q). */
  private consistencyLoss(images: Tensor, step: DiffusionStep, queries: Tensor): Tensor {
    const c = this.config;
    return tidy(() => {
      const branch = this.diffusion!;
      const denoised = branch.decodeImage255(step.x0); // (B, 3, 8h, 8w) 0–255
      const [fa, fb] = noGrad(() =>
        [images, denoised].map((img) => {
          const out = this.catseg.clip.visual.forward(prepareClipInput(img, c.catseg.clipResolution), {
            dense: true,
            taps: c.consistency.layers,
          });
          const [gh, gw] = out.grid;
          const B = img.size(0);
          // "(H W) B D -> B D H W" on the patch rows of each tapped layer
          return out.taps.map((t) =>
            t
              .narrow(0, 1, gh * gw)
              .permute(1, 2, 0)
              .reshape(B, t.size(2), gh, gw)
              .contiguous(),
          );
        }),
      ) as [Tensor[], Tensor[]];
      return this.consistency!.forward(fa, fb, queries);
    });
  }

  /** Class-name embeddings (T, P, E) of the frozen or fine-tuned CLIP text tower (CAT-Seg's prompts). */
  textEmbeddings(classNames: readonly string[], o: CatSegTextOptions = {}): Tensor {
    return this.catseg.textEmbeddings(classNames, o);
  }

  /** Whether the CLIP text tower trains (so text embeddings must be recomputed with gradients each step). */
  get textTowerTrains(): boolean {
    const c = this.config;
    return c.clip.finetune === "attention" && c.clip.finetuneText;
  }

  /** Frees the weights, and the diffusion branch's folder when the model owns it. */
  override dispose(): void {
    this.attachDiffusion(null);
    super.dispose();
  }
}
