// Per-pixel loss of the CAT-Seg cost-aggregation head (DEDOS-SPEC §6; CAT-Seg's CATSeg.forward in training):
// logits bilinearly upsampled to the label size, one-hot targets over the T classes, BCE with logits.

import * as F from "../torch/functional.js";
import { type Tensor, tidy, where, zeros } from "../torch/tensor.js";

/** How pixels labelled `ignoreLabel` enter the loss. */
export type IgnoredPixels = "negative" | "exclude";

export interface CostAggregationLossOptions {
  /**
   * `negative` (default; CAT-Seg exactly): an ignored pixel's target is all zeros and the mean runs over all
   * B·H·W·T elements. `exclude`: ignored pixels are left out and the mean runs over the valid pixels × T.
   */
  ignored?: IgnoredPixels;
}

/**
 * CAT-Seg's training loss: `logits` (B, T, h, w) are upsampled (bilinear, align_corners = False) to the size
 * of `gt` (B, H, W) (integer labels in 0..T−1 or `ignoreLabel`), then BCE-with-logits against the one-hot
 * targets, averaged. Computed as Σ softplus(x) − Σ_valid x[label] without materialising the one-hot tensor.
 */
export function costAggregationLoss(
  logits: Tensor,
  gt: Tensor,
  ignoreLabel: number,
  opts: CostAggregationLossOptions = {},
): Tensor {
  if (logits.ndim !== 4)
    throw new Error(`costAggregationLoss: logits must be (B, T, h, w), got [${logits.shape}]`);
  if (gt.ndim !== 3 || gt.size(0) !== logits.size(0))
    throw new Error(
      `costAggregationLoss: gt must be (B, H, W) with B = ${logits.size(0)}, got [${gt.shape}]`,
    );
  const mode = opts.ignored ?? "negative";
  const [B, T] = [logits.size(0), logits.size(1)];
  const [H, W] = [gt.size(1), gt.size(2)];
  return tidy(() => {
    const x0 = logits.dtype === "float64" ? logits : logits.float();
    const x =
      x0.size(2) === H && x0.size(3) === W
        ? x0
        : F.interpolate(x0, { size: [H, W], mode: "bilinear", alignCorners: false });
    const g = gt.to({ dtype: "int64", device: logits.device });
    const valid = g.ne(ignoreLabel); // (B, H, W)
    const label = where(valid, g, 0);
    if (label.numel > 0) {
      const lo = label.min().item();
      const hi = label.max().item();
      if (lo < 0 || hi >= T)
        throw new Error(
          `costAggregationLoss: label ${lo < 0 ? lo : hi} is outside 0..${T - 1} (ignore label ${ignoreLabel})`,
        );
    }
    const validF = valid.to(x.dtype);
    // BCE(x, t) = softplus(x) − x·t: the negative part over every element, the positive part at the labels.
    const zero = zeros([1, 1, 1, 1], { dtype: x.dtype, device: x.device }).expand(B, T, H, W);
    const neg = F.binaryCrossEntropyWithLogits(x, zero, {
      reduction: "sum",
      ...(mode === "exclude" ? { weight: validF.unsqueeze(1) } : {}),
    });
    const pos = x.gather(1, label.unsqueeze(1)).squeeze(1).mul(validF).sum();
    const count = mode === "exclude" ? validF.sum().item() * T : B * H * W * T;
    if (count === 0) return x.sum().mul(0).add(0); // 0, still connected to the graph
    return neg.sub(pos).div(count);
  });
}
