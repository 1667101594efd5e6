// DEDOS query-refined CLIP (docs/DEDOS-SPEC.md §5): the proxy queries enter every CLIP block.
//
//   Q (B, N, C) → Q̂ = fc2(GELU(fc1(Q)))                         (B, N, C)
//   per block l: T_l = token_proj_l(Q̂)                           (B, N, D)
//   block output f_l (L, B, D) (LND, CLS first), per token and image:
//     S_l = softmax_N(f_l·T_lᵀ / √D)                             (L, B, N)
//     "concat-project": f_l ← f_l + fuse_l([f_l ; S_l·T_l])      fuse_l Linear(2D → D), weight and bias 0
//     "gated-residual": f_l ← f_l + s_l·fuse_l.mlp(S_l·T_l + f_l) s_l learnable scalar (init gateInit)
//   memory = Σ_l T_l (B, N, D): the decoder's query position and the text-aggregation memory.
//
// With the zero-initialised concat-project fuse an untrained DEDOS is CAT-Seg bit for bit (f + 0 = f).
//
// State-dict keys: mlp.fc1.*, mlp.fc2.*, token_proj.{l}.{weight,bias},
// concat-project: fuse.{l}.{weight,bias}; gated-residual: fuse.{l}.scale (0-d), fuse.{l}.mlp.{fc1,fc2}.*.

import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { cat, dispose, noGrad, scalarTensor, type Tensor, tidy } from "../torch/tensor.js";
import type { InjectionConfig } from "./config.js";
import { GeluMlp } from "./proxy-queries.js";

/** `gated-residual` fuse of one block: f + scale·mlp(S·T + f). */
export class GatedFuse extends Module {
  readonly mlp: GeluMlp;
  constructor(width: number, gateInit: number, o: nn.InitOptions = {}) {
    super();
    this.param("scale", scalarTensor(gateInit, { dtype: "float32" }));
    this.mlp = this.child("mlp", new GeluMlp(width, width, width, o));
  }
  get scale(): Tensor {
    return this.get("scale");
  }
  /** f (…, D), attended query tokens a = S·T (…, D) → f + scale·mlp(a + f). */
  forward(f: Tensor, a: Tensor): Tensor {
    return tidy(() => f.add(this.mlp.forward(a.add(f)).mul(this.scale)));
  }
}

/** What `prepare` hands to the CLIP forward. */
export interface PreparedInjection {
  /** ClipVisionForwardOptions.blockHook: block l's output x (L, B, D) → the refined output (L, B, D). */
  hook: (layer: number, x: Tensor) => Tensor;
  /** Σ_l T_l (B, N, D). */
  memory: Tensor;
  /** T_l (B, N, D) per block, read by `hook`; they must outlive the CLIP forward (see `prepare`). */
  tokens: Tensor[];
  /** Frees `tokens` and `memory` (for callers that do not run prepare and the CLIP forward in one tidy). */
  dispose: () => void;
}

export class QueryInjection extends Module {
  readonly mlp: GeluMlp;
  readonly token_proj: ModuleList<nn.Linear>;
  readonly fuse: ModuleList<nn.Linear> | ModuleList<GatedFuse>;

  constructor(
    readonly cfg: InjectionConfig,
    readonly queryDim: number,
    readonly clipWidth: number,
    readonly clipLayers: number,
    o: nn.InitOptions = {},
  ) {
    super();
    for (const [name, v] of [
      ["queryDim", queryDim],
      ["clipWidth", clipWidth],
      ["clipLayers", clipLayers],
      ["injection.mlpHidden", cfg.mlpHidden],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0)
        throw new Error(`QueryInjection: ${name} must be a positive integer, got ${v}`);
    }
    const C = queryDim;
    const D = clipWidth;
    this.mlp = this.child("mlp", new GeluMlp(C, cfg.mlpHidden, C, o));
    const layers = [...Array(clipLayers).keys()];
    this.token_proj = this.child(
      "token_proj",
      new ModuleList(layers.map(() => new nn.Linear(C, D, true, o))),
    );
    if (cfg.rule === "concat-project") {
      const fuse = layers.map(() => new nn.Linear(2 * D, D, true, o));
      noGrad(() => {
        for (const f of fuse) {
          f.weight.zero_();
          f.bias!.zero_();
        }
      });
      this.fuse = this.child("fuse", new ModuleList(fuse));
    } else if (cfg.rule === "gated-residual") {
      this.fuse = this.child("fuse", new ModuleList(layers.map(() => new GatedFuse(D, cfg.gateInit, o))));
    } else {
      throw new Error(`QueryInjection: unknown injection.rule "${(cfg as { rule: string }).rule}"`);
    }
  }

  /** Q̂ = MLP(Q) and T_l = token_proj_l(Q̂) for every block: (B, N, C) → [(B, N, D)] × clipLayers. */
  queryTokens(Q: Tensor): Tensor[] {
    if (Q.ndim !== 3 || Q.size(2) !== this.queryDim)
      throw new Error(
        `QueryInjection: Q must be (B, N, ${this.queryDim}) (batch, queries, query width), got [${Q.shape.join(", ")}]`,
      );
    return tidy(() => {
      const qHat = this.mlp.forward(Q);
      return this.token_proj.items.map((p) => p.forward(qHat));
    });
  }

  /**
   * Refines block `layer`'s output x (L, B, D) with that block's query tokens T (B, N, D): the injection rule.
   * Every token (CLS included) attends over the N queries.
   */
  inject(layer: number, x: Tensor, T: Tensor): Tensor {
    const [, B, D] = x.shape;
    if (x.ndim !== 3 || B !== T.size(0) || D !== this.clipWidth)
      throw new Error(
        `QueryInjection: block ${layer} output is [${x.shape.join(", ")}], expected (L, ${T.size(0)}, ` +
          `${this.clipWidth}) (tokens, batch of Q, CLIP width)`,
      );
    return tidy(() => {
      const f = x.transpose(0, 1); // (B, L, D)
      const S = F.softmax(f.matmul(T.mT).mul(1 / Math.sqrt(this.clipWidth)), -1); // (B, L, N)
      const attended = S.matmul(T); // (B, L, D)
      let out: Tensor;
      if (this.cfg.rule === "concat-project") {
        const fuse = (this.fuse as ModuleList<nn.Linear>).at(layer);
        out = f.add(fuse.forward(cat([f, attended], -1)));
      } else {
        out = (this.fuse as ModuleList<GatedFuse>).at(layer).forward(f, attended);
      }
      return out.transpose(0, 1); // (L, B, D)
    });
  }

  /**
   * The CLIP block hook and the query memory for proxy queries Q (B, N, C).
   *
   * Ownership: the T_l are created in the caller's scope and returned in `tokens` (with `memory`), so a
   * caller that runs `prepare` and the CLIP forward inside one tidy keeps them alive for the whole forward
   * and has them freed when that scope closes (unless it returns them). Outside a scope, call `dispose()`
   * once the CLIP forward is done. The hook itself allocates only inside the CLIP's scopes and keeps nothing.
   * Gradients flow from the hook's output and from `memory` to Q, the MLP, token_proj and fuse.
   */
  prepare(Q: Tensor): PreparedInjection {
    const tokens = this.queryTokens(Q);
    const memory = tidy(() => tokens.slice(1).reduce((acc, t) => acc.add(t), tokens[0]!.clone()));
    const hook = (layer: number, x: Tensor): Tensor => {
      if (!Number.isInteger(layer) || layer < 0 || layer >= this.clipLayers)
        throw new Error(`QueryInjection: block ${layer} is outside 0…${this.clipLayers - 1}`);
      const T = tokens[layer]!;
      if (T.isDisposed)
        throw new Error("QueryInjection: the query tokens of prepare() were freed before the CLIP forward");
      return this.inject(layer, x, T);
    };
    return { hook, memory, tokens, dispose: () => dispose([tokens, memory]) };
  }
}
