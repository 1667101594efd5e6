// The Stable Diffusion models' linear and conv layers: nn.Linear / nn.Conv2d (same parameters, same state-dict
// keys, same training behaviour) whose forward takes the engine's inference paths when no gradient is needed
// (F.linearInference / F.conv2dInference: oneDNN sgemm on the operands as they are, im2col + sgemm for the
// small 1280-channel maps). The UNet and VAE are frozen in DEDOS, so that is every forward they run there.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { type Tensor, tidy } from "../torch/tensor.js";

export class Linear extends nn.Linear {
  override forward(x: Tensor, o: { act?: F.LinearActivation; residual?: Tensor | null } = {}): Tensor {
    if (o.act || o.residual) return F.linearAct(x, this.weight, this.bias, o.act ?? "none", o.residual);
    return F.linearInference(x, this.weight, this.bias);
  }

  /**
   * Output features [start, start + length) only, as their own contiguous tensor (a slice of forward(x) would
   * be strided, and elementwise kernels run several times slower on it), optionally through an activation
   * (fused into the product at inference).
   */
  forwardRows(x: Tensor, start: number, length: number, act?: F.LinearActivation): Tensor {
    return tidy(() => {
      const b = this.bias;
      const w = this.weight.narrow(0, start, length);
      const bias = b ? b.narrow(0, start, length) : null;
      return act ? F.linearAct(x, w, bias, act) : F.linearInference(x, w, bias);
    });
  }
}

export class Conv2d extends nn.Conv2d {
  get weight(): Tensor {
    return this.get("weight");
  }
  get bias(): Tensor | null {
    return this.has("bias") ? this.get("bias") : null;
  }
  override forward(x: Tensor): Tensor {
    return this.forwardWithBias(x, this.bias);
  }

  /**
   * The convolution with another bias (e.g. the conv's own bias plus a per-channel time embedding), plus an
   * optional residual of the output's shape (added without a pass of its own where the conv runs on sgemm).
   */
  forwardWithBias(x: Tensor, bias: Tensor | null, residual?: Tensor | null): Tensor {
    return F.conv2dInference(x, this.weight, bias, this.opts, residual);
  }
}
