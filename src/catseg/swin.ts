// CAT-Seg's spatial aggregation: Swin Transformer blocks modified for guidance
// (cat_seg/modeling/transformer/model.py `WindowAttention`, `SwinTransformerBlock`,
// `SwinTransformerBlockWrapper`), with the reference's parameter and buffer names.
//
// Differences from the original Swin: the (projected, LayerNormed) appearance guidance is concatenated to the
// normalised tokens before the cyclic shift, so q and k see [x, guidance] while v sees x only; there is no
// relative-position bias. The shifted block's additive mask (0 within a region, −100 across regions) is a
// persistent buffer `attn_mask`, so it is part of the state dict like in the reference.
//
//   x (B', H·W, C), g (B', H·W, Cg) → norm1(x) ‖ g → roll(−s) → windows (B'·nW, ws², C+Cg)
//   → window attention (+ mask) → merge → roll(+s) → + x → + mlp(norm2(·))

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module } from "../torch/nn/module.js";
import { cat, type Tensor, tensor, tidy } from "../torch/tensor.js";
import { AGGREGATOR_CONSTANTS } from "./config.js";

/** (B, H, W, C) → (B·nW, ws·ws, C), windows in row-major (h, w) order (Swin `window_partition` + view). */
export function windowPartition(x: Tensor, ws: number): Tensor {
  return tidy(() => {
    const [B, H, W, C] = x.shape as [number, number, number, number];
    return x
      .reshape(B, H / ws, ws, W / ws, ws, C)
      .permute(0, 1, 3, 2, 4, 5)
      .reshape(B * (H / ws) * (W / ws), ws * ws, C);
  });
}

/** (B·nW, ws·ws, C) → (B, H, W, C), the inverse of `windowPartition` (Swin `window_reverse`). */
export function windowReverse(windows: Tensor, ws: number, H: number, W: number): Tensor {
  return tidy(() => {
    const C = windows.size(-1);
    const B = windows.size(0) / ((H / ws) * (W / ws));
    return windows
      .reshape(B, H / ws, W / ws, ws, ws, C)
      .permute(0, 1, 3, 2, 4, 5)
      .reshape(B, H, W, C);
  });
}

/**
 * The SW-MSA mask (nW, ws², ws²) exactly as SwinTransformerBlock builds it: the H×W grid is cut into 3×3
 * regions by the slices [0, −ws), [−ws, −shift), [−shift, end) on each axis and numbered row-major; two tokens
 * of the same window attend freely (0) when their region ids match, else −100.
 */
export function shiftedWindowMask(H: number, W: number, ws: number, shift: number): Tensor {
  const region = (p: number, n: number) => (p < n - ws ? 0 : p < n - shift ? 1 : 2);
  const nWh = H / ws;
  const nWw = W / ws;
  const N = ws * ws;
  const ids = new Int32Array(nWh * nWw * N); // region id per (window, token)
  for (let wh = 0; wh < nWh; wh++) {
    for (let ww = 0; ww < nWw; ww++) {
      for (let i = 0; i < ws; i++) {
        for (let j = 0; j < ws; j++) {
          ids[(wh * nWw + ww) * N + i * ws + j] = region(wh * ws + i, H) * 3 + region(ww * ws + j, W);
        }
      }
    }
  }
  const mask = new Float32Array(nWh * nWw * N * N);
  for (let w = 0; w < nWh * nWw; w++) {
    for (let a = 0; a < N; a++) {
      for (let b = 0; b < N; b++) {
        // reference: mask_windows[w, b] − mask_windows[w, a], then ≠ 0 → −100
        if (ids[w * N + b] !== ids[w * N + a]) mask[(w * N + a) * N + b] = AGGREGATOR_CONSTANTS.maskValue;
      }
    }
  }
  return tensor(mask, [nWh * nWw, N, N]);
}

/** Window multi-head self-attention with guidance in q/k (`WindowAttention`): q, k, v, proj. */
export class WindowAttention extends Module {
  readonly q: nn.Linear;
  readonly k: nn.Linear;
  readonly v: nn.Linear;
  readonly proj: nn.Linear;
  readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly guidanceDim: number,
    readonly numHeads: number,
    o: nn.InitOptions = {},
  ) {
    super();
    this.headDim = Math.floor(dim / numHeads);
    const attnDim = this.headDim * numHeads;
    this.q = this.child("q", new nn.Linear(dim + guidanceDim, attnDim, true, o));
    this.k = this.child("k", new nn.Linear(dim + guidanceDim, attnDim, true, o));
    this.v = this.child("v", new nn.Linear(dim, attnDim, true, o));
    this.proj = this.child("proj", new nn.Linear(attnDim, dim, true, o));
  }

  /**
   * x (B'·nW, N, dim + guidanceDim) → (B'·nW, N, dim). `mask` (nW, N, N) is added to the scores of every
   * window with the same index (windows are ordered batch-major, as `windowPartition` makes them).
   */
  forward(x: Tensor, mask?: Tensor | null): Tensor {
    return tidy(() => {
      const [Bw, N] = x.shape as [number, number, number];
      const h = this.numHeads;
      const d = this.headDim;
      const nW = mask ? mask.size(0) : 1;
      // (B'·nW, N, h·d) → (B', nW, h, N, d)
      const heads = (t: Tensor) => t.reshape(Bw / nW, nW, N, h, d).permute(0, 1, 3, 2, 4);
      const q = heads(this.q.forward(x));
      const k = heads(this.k.forward(x));
      const v = heads(this.v.forward(x.narrow(-1, 0, this.dim)));
      const out = F.attention(q, k, v, {
        scale: d ** -0.5,
        mask: mask ? mask.unsqueeze(1) : null, // (nW, 1, N, N) broadcast over B' and heads
      }); // (B', nW, h, N, d)
      return this.proj.forward(out.permute(0, 1, 3, 2, 4).reshape(Bw, N, h * d));
    });
  }
}

/** timm `Mlp`: fc1 → GELU (exact) → fc2. */
export class SwinMlp extends Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(dim: number, hidden: number, o: nn.InitOptions = {}) {
    super();
    this.fc1 = this.child("fc1", new nn.Linear(dim, hidden, true, o));
    this.fc2 = this.child("fc2", new nn.Linear(hidden, dim, true, o));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(F.gelu(this.fc1.forward(x))));
  }
}

/** One (shifted) window block (`SwinTransformerBlock`): norm1, attn, norm2, mlp and, when shifted, attn_mask. */
export class SwinTransformerBlock extends Module {
  readonly norm1: nn.LayerNorm;
  readonly attn: WindowAttention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: SwinMlp;
  /** Effective window and shift: the window shrinks to the grid (and the shift drops) when it covers it. */
  readonly windowSize: number;
  readonly shiftSize: number;

  constructor(
    readonly dim: number,
    readonly guidanceDim: number,
    readonly inputResolution: [number, number],
    numHeads: number,
    windowSize: number,
    shiftSize: number,
    o: nn.InitOptions = {},
  ) {
    super();
    const [H, W] = inputResolution;
    let ws = windowSize;
    let shift = shiftSize;
    if (Math.min(H, W) <= ws) {
      shift = 0;
      ws = Math.min(H, W);
    }
    if (!(shift >= 0 && shift < ws))
      throw new Error(`SwinTransformerBlock: shift ${shift} not in [0, ${ws})`);
    if (H % ws !== 0 || W % ws !== 0)
      throw new Error(`SwinTransformerBlock: resolution ${H}×${W} is not a multiple of the window ${ws}`);
    this.windowSize = ws;
    this.shiftSize = shift;
    this.norm1 = this.child("norm1", new nn.LayerNorm(dim, AGGREGATOR_CONSTANTS.normEps));
    this.attn = this.child("attn", new WindowAttention(dim, guidanceDim, numHeads, o));
    this.norm2 = this.child("norm2", new nn.LayerNorm(dim, AGGREGATOR_CONSTANTS.normEps));
    this.mlp = this.child("mlp", new SwinMlp(dim, Math.floor(dim * AGGREGATOR_CONSTANTS.swinMlpRatio), o));
    // The reference registers None for unshifted blocks: no state-dict entry then.
    if (shift > 0) this.buffer("attn_mask", shiftedWindowMask(H, W, ws, shift));
  }

  /** (nW, ws², ws²) 0 / −100, or null for the unshifted block. */
  get attnMask(): Tensor | null {
    return this.has("attn_mask") ? this.get("attn_mask") : null;
  }

  /** x (B', H·W, C), guidance (B', H·W, Cg) or null → (B', H·W, C). */
  forward(x: Tensor, guidance: Tensor | null): Tensor {
    return tidy(() => {
      const [H, W] = this.inputResolution;
      const [B, L, C] = x.shape as [number, number, number];
      if (L !== H * W) throw new Error(`SwinTransformerBlock: ${L} tokens, the block is built for ${H}×${W}`);
      const ws = this.windowSize;
      const s = this.shiftSize;
      let h = this.norm1.forward(x).reshape(B, H, W, C);
      if (guidance) h = cat([h, guidance.reshape(B, H, W, -1)], -1); // (B', H, W, C + Cg)
      if (s > 0) h = h.roll([-s, -s], [1, 2]);
      const windows = windowPartition(h, ws); // (B'·nW, ws², C + Cg)
      const attended = this.attn.forward(windows, this.attnMask); // (B'·nW, ws², C)
      let y = windowReverse(attended, ws, H, W); // (B', H, W, C)
      if (s > 0) y = y.roll([s, s], [1, 2]);
      const r = x.add(y.reshape(B, H * W, C));
      return r.add(this.mlp.forward(this.norm2.forward(r)));
    });
  }
}

/**
 * The spatial half of an aggregation layer (`SwinTransformerBlockWrapper`): a window block, a shifted-window
 * block, and the LayerNorm of the appearance guidance (`guidance_norm`, absent when the guidance dim is 0).
 */
export class SwinTransformerBlockWrapper extends Module {
  readonly block_1: SwinTransformerBlock;
  readonly block_2: SwinTransformerBlock;
  readonly guidance_norm: nn.LayerNorm | null;

  constructor(
    dim: number,
    guidanceDim: number,
    inputResolution: [number, number],
    nheads: number,
    windowSize: number,
    o: nn.InitOptions = {},
  ) {
    super();
    this.block_1 = this.child(
      "block_1",
      new SwinTransformerBlock(dim, guidanceDim, inputResolution, nheads, windowSize, 0, o),
    );
    this.block_2 = this.child(
      "block_2",
      new SwinTransformerBlock(
        dim,
        guidanceDim,
        inputResolution,
        nheads,
        windowSize,
        Math.floor(windowSize / 2),
        o,
      ),
    );
    this.guidance_norm =
      guidanceDim > 0
        ? this.child("guidance_norm", new nn.LayerNorm(guidanceDim, AGGREGATOR_CONSTANTS.normEps))
        : null;
  }

  /** x (B, C, T, H, W), guidance (B, Cg, H, W) or null → (B, C, T, H, W). */
  forward(x: Tensor, guidance: Tensor | null): Tensor {
    return tidy(() => {
      const [B, C, T, H, W] = x.shape as [number, number, number, number, number];
      const tokens = x.permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C); // (B·T, H·W, C)
      let g: Tensor | null = null;
      if (guidance && this.guidance_norm) {
        // LayerNorm is per token, so normalising before repeating over T is the reference's repeat-then-norm.
        const Cg = guidance.size(1);
        const normed = this.guidance_norm.forward(guidance.permute(0, 2, 3, 1).reshape(B, 1, H * W, Cg));
        g = normed.expand(B, T, H * W, Cg).reshape(B * T, H * W, Cg); // (B·T, H·W, Cg)
      }
      let y = this.block_1.forward(tokens, g);
      y = this.block_2.forward(y, g);
      return y.reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3); // (B, C, T, H, W)
    });
  }
}
