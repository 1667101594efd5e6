// DEDOS texture-separation (consistency) loss (docs/DEDOS-SPEC.md §4), training only.
//
//   fa, fb: per compared layer, frozen CLIP features of the original and the denoised image (B, D, h, w)
//   Q (B, N, C): the proxy queries
//   f̂ = proj_clip(f) · proj_query(Q)ᵀ                 (B, hw, N): each token along the N query directions
//   "matrix":    target cos(f^a_i, f^b_j) (B, hw, hw), detached; prediction cos(f̂^a_i, f̂^b_j)
//   "per-pixel": target cos(f^a_i, f^b_i) (B, hw),      detached; prediction cos(f̂^a_i, f̂^b_i)
//   loss = Σ over layers of weight · SmoothL1_β(prediction, target) (mean over elements; the released code
//          sums its terms), or the average over layers with `reduction = mean`
//
// Cosines follow torch.nn.functional.cosine_similarity: x·y / (max(‖x‖, 1e-8)·max(‖y‖, 1e-8)).
// fa and fb never receive gradients (they are detached here as well); proj_clip, proj_query and Q do.
//
// State-dict keys: proj_clip.{weight,bias} (projDim, D), proj_query.{weight,bias} (projDim, C).

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { type Tensor, tidy } from "../torch/tensor.js";
import type { ConsistencyConfig } from "./config.js";

/** The eps of torch.nn.functional.cosine_similarity. */
export const COSINE_EPS = 1e-8;

/** x / max(‖x‖₂, eps) along the last dimension (one factor of torch's cosine_similarity). */
export function cosineNormalize(x: Tensor, eps = COSINE_EPS): Tensor {
  return tidy(() => x.div(x.norm(2, -1, true).clamp(eps)));
}

/** Cosine of every row of a (B, M, K) with every row of b (B, M', K): (B, M, M'). */
export function cosineMatrix(a: Tensor, b: Tensor, eps = COSINE_EPS): Tensor {
  return tidy(() => cosineNormalize(a, eps).matmul(cosineNormalize(b, eps).mT));
}

/** Cosine of matching rows of a and b (…, K): (…). */
export function cosineRows(a: Tensor, b: Tensor, eps = COSINE_EPS): Tensor {
  return tidy(() => cosineNormalize(a, eps).mul(cosineNormalize(b, eps)).sum(-1));
}

export class TextureSeparationLoss extends Module {
  readonly proj_clip: nn.Linear;
  readonly proj_query: nn.Linear;

  constructor(
    readonly cfg: ConsistencyConfig,
    readonly clipWidth: number,
    readonly queryDim: number,
    o: nn.InitOptions = {},
  ) {
    super();
    if (cfg.similarity !== "matrix" && cfg.similarity !== "per-pixel")
      throw new Error(`TextureSeparationLoss: unknown consistency.similarity "${cfg.similarity}"`);
    if (cfg.reduction !== "sum" && cfg.reduction !== "mean")
      throw new Error(`TextureSeparationLoss: unknown consistency.reduction "${cfg.reduction}"`);
    this.proj_clip = this.child("proj_clip", new nn.Linear(clipWidth, cfg.projDim, true, o));
    this.proj_query = this.child("proj_query", new nn.Linear(queryDim, cfg.projDim, true, o));
  }

  /** f̂ = proj_clip(f) · pq ᵀ: f (B, D, h, w), pq = proj_query(Q) (B, N, P) → (B, hw, N). */
  queryCoordinates(f: Tensor, pq: Tensor): Tensor {
    return tidy(() => {
      const [B, D] = f.shape as [number, number];
      const tokens = f.detach().reshape(B, D, -1).transpose(1, 2); // (B, hw, D)
      return this.proj_clip.forward(tokens).matmul(pq.mT);
    });
  }

  /** The scalar loss: weight · SmoothL1(prediction, target) per layer, summed (or averaged) over layers. */
  forward(fa: Tensor[], fb: Tensor[], Q: Tensor): Tensor {
    this.validate(fa, fb, Q);
    const matrix = this.cfg.similarity === "matrix";
    return tidy(() => {
      const pq = this.proj_query.forward(Q); // (B, N, P)
      let total: Tensor | null = null;
      for (let l = 0; l < fa.length; l++) {
        const term = tidy(() => {
          const [B, D] = fa[l]!.shape as [number, number];
          const a = fa[l]!.detach().reshape(B, D, -1).transpose(1, 2); // (B, hw, D)
          const b = fb[l]!.detach().reshape(B, D, -1).transpose(1, 2);
          const target = (matrix ? cosineMatrix(a, b) : cosineRows(a, b)).detach();
          const ha = this.queryCoordinates(fa[l]!, pq);
          const hb = this.queryCoordinates(fb[l]!, pq);
          const pred = matrix ? cosineMatrix(ha, hb) : cosineRows(ha, hb);
          return F.smoothL1Loss(pred, target, { beta: this.cfg.beta, reduction: "mean" });
        });
        total = total ? total.add(term) : term;
      }
      return total!.mul(this.cfg.reduction === "mean" ? this.cfg.weight / fa.length : this.cfg.weight);
    });
  }

  private validate(fa: Tensor[], fb: Tensor[], Q: Tensor): void {
    const bad = (msg: string): never => {
      throw new Error(`TextureSeparationLoss: ${msg}`);
    };
    if (fa.length === 0) bad("no layers to compare (fa is empty)");
    if (fa.length !== fb.length)
      bad(`${fa.length} original-image layers (fa) but ${fb.length} denoised-image layers (fb)`);
    if (Q.ndim !== 3 || Q.size(2) !== this.queryDim)
      bad(`Q must be (B, N, ${this.queryDim}) (batch, queries, query width), got [${Q.shape.join(", ")}]`);
    const B = Q.size(0);
    fa.forEach((a, l) => {
      const b = fb[l]!;
      if (a.ndim !== 4 || a.size(0) !== B || a.size(1) !== this.clipWidth)
        bad(
          `fa[${l}] is [${a.shape.join(", ")}], expected (${B}, ${this.clipWidth}, h, w) (batch of Q, CLIP width)`,
        );
      if (b.ndim !== a.ndim || b.shape.some((d, i) => d !== a.shape[i]))
        bad(`fb[${l}] is [${b.shape.join(", ")}] but fa[${l}] is [${a.shape.join(", ")}]`);
    });
  }
}
