// DEDOS proxy queries (docs/DEDOS-SPEC.md §3).
//
//   basic kernel q^b (n1, c1), diffusion kernels q^κ (T, n2, c2)
//   → stage queries q_t = q^b ⊗ q^κ_t (Kronecker product): (N = n1·n2, C = c1·c2), row i1·n2 + i2,
//     column j1·c2 + j2 (torch.kron)
//   → conditioning "diffusion": the interaction module (one instance, shared across timesteps) updates every
//     q_t with the UNet taps of its timestep:
//       kv = LN(cat_i tap_proj_i(tokens_i))             (B, Σ h_i·w_i, C)
//       q ← q + MHA(LN(q), kv, kv)                      pre-LN cross-attention, cfg.heads heads
//       q ← q + fc2(GELU(fc1(LN(q))))                   pre-LN MLP, hidden mlpRatio·C
//   → merge: cat[max_t q_t, mean_t q_t, q_{T−1}] on channels → Linear(3C → C) → Q (B, N, C)
//
// conditioning "static" (the released code): Q is the merge of the raw stage queries, expanded to the batch;
// the interaction module is then not built at all.
//
// State-dict keys: basic_kernel (n1, c1), diffusion_kernel (T, n2, c2),
// interaction.tap_proj.{i}.{weight,bias}, interaction.tap_norm.{weight,bias}, interaction.norm1.*,
// interaction.attn.{q_proj,k_proj,v_proj,out_proj}.*, interaction.norm2.*, interaction.mlp.{fc1,fc2}.*
// (diffusion only), merge.{weight,bias}.

import type { UNetTap } from "../diffusion/unet.js";
import * as F from "../torch/functional.js";
import * as nn from "../torch/nn/layers.js";
import { Module, ModuleList } from "../torch/nn/module.js";
import { cat, einsum, empty, kron, stack, type Tensor, tidy } from "../torch/tensor.js";
import { type ProxyConfig, proxyShape } from "./config.js";

/** Patch size in the reference's VPT-style kernel initialisation bound √(6 / (3·p² + C)). */
export const PROXY_KERNEL_INIT_PATCH = 16;

/** The uniform bound of the kernels' initialisation: √(6 / (3·p² + C)) as the released code computes it. */
export function proxyKernelInitBound(queryDim: number, patch = PROXY_KERNEL_INIT_PATCH): number {
  return Math.sqrt(6 / (3 * patch * patch + queryDim));
}

/** torch.kron of two matrices: (m, n) ⊗ (p, q) → (m·p, n·q), element [i·p + k, j·q + l] = a[i,j]·b[k,l]. */
export function kron2d(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 2 || b.ndim !== 2)
    throw new Error(`kron2d: expects two matrices, got [${a.shape.join(", ")}] and [${b.shape.join(", ")}]`);
  return kron(a, b);
}

/** Linear → GELU (exact) → Linear, children `fc1`, `fc2`. */
export class GeluMlp extends Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(inDim: number, hidden: number, outDim: number, o: nn.InitOptions = {}) {
    super();
    this.fc1 = this.child("fc1", new nn.Linear(inDim, hidden, true, o));
    this.fc2 = this.child("fc2", new nn.Linear(hidden, outDim, true, o));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(F.gelu(this.fc1.forward(x))));
  }
}

/** Batch-first multi-head cross-attention with separate q/k/v/out projections (all with bias). */
export class CrossAttention extends Module {
  readonly q_proj: nn.Linear;
  readonly k_proj: nn.Linear;
  readonly v_proj: nn.Linear;
  readonly out_proj: nn.Linear;
  constructor(
    readonly dim: number,
    readonly heads: number,
    o: nn.InitOptions = {},
  ) {
    super();
    if (dim % heads !== 0) throw new Error(`CrossAttention: width ${dim} is not divisible by ${heads} heads`);
    this.q_proj = this.child("q_proj", new nn.Linear(dim, dim, true, o));
    this.k_proj = this.child("k_proj", new nn.Linear(dim, dim, true, o));
    this.v_proj = this.child("v_proj", new nn.Linear(dim, dim, true, o));
    this.out_proj = this.child("out_proj", new nn.Linear(dim, dim, true, o));
  }
  /** q (B, Lq, C), kv (B, Lk, C) → (B, Lq, C): softmax(q·kᵀ/√d)·v per head, then out_proj. */
  forward(q: Tensor, kv: Tensor): Tensor {
    return tidy(() => {
      const [B, Lq, C] = q.shape as [number, number, number];
      const Lk = kv.size(1);
      const H = this.heads;
      const d = C / H;
      const heads = (t: Tensor, L: number) => t.reshape(B, L, H, d).transpose(1, 2); // (B, H, L, d)
      const o = F.attention(
        heads(this.q_proj.forward(q), Lq),
        heads(this.k_proj.forward(kv), Lk),
        heads(this.v_proj.forward(kv), Lk),
      ); // (B, H, Lq, d)
      return this.out_proj.forward(o.transpose(1, 2).reshape(B, Lq, C));
    });
  }
}

/** The interaction module: stage queries attend to one timestep's projected UNet taps, then a pre-LN MLP. */
export class ProxyInteraction extends Module {
  readonly tap_proj: ModuleList<nn.Linear>;
  readonly tap_norm: nn.LayerNorm;
  readonly norm1: nn.LayerNorm;
  readonly attn: CrossAttention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: GeluMlp;

  constructor(
    readonly cfg: ProxyConfig,
    o: nn.InitOptions = {},
  ) {
    super();
    const C = proxyShape(cfg).dim;
    if (cfg.tapChannels.length === 0) throw new Error("ProxyInteraction: proxy.tapChannels is empty");
    this.tap_proj = this.child(
      "tap_proj",
      new ModuleList(cfg.tapChannels.map((ch) => new nn.Linear(ch, C, true, o))),
    );
    this.tap_norm = this.child("tap_norm", new nn.LayerNorm(C, cfg.normEps));
    this.norm1 = this.child("norm1", new nn.LayerNorm(C, cfg.normEps));
    this.attn = this.child("attn", new CrossAttention(C, cfg.heads, o));
    this.norm2 = this.child("norm2", new nn.LayerNorm(C, cfg.normEps));
    this.mlp = this.child("mlp", new GeluMlp(C, cfg.mlpRatio * C, C, o));
  }

  /** The key/value tokens of one timestep: LN(cat_i tap_proj_i(tokens_i)) (B, Σ h_i·w_i, C). */
  memory(taps: UNetTap[], batch: number, where = "taps"): Tensor {
    const chans = this.cfg.tapChannels;
    if (taps.length !== chans.length)
      throw new Error(
        `ProxyQueries: ${where} has ${taps.length} UNet taps, proxy.tapChannels lists ${chans.length}`,
      );
    taps.forEach((tap, i) => {
      const s = tap.tokens.shape;
      const [h, w] = tap.size;
      if (s.length !== 3 || s[0] !== batch || s[1] !== h * w || s[2] !== chans[i])
        throw new Error(
          `ProxyQueries: ${where}[${i}] (${tap.path}) tokens are [${s.join(", ")}], expected ` +
            `[${batch}, ${h * w}, ${chans[i]}] (batch, ${h}·${w} tokens, proxy.tapChannels[${i}])`,
        );
    });
    return tidy(() =>
      this.tap_norm.forward(
        cat(
          taps.map((tap, i) => this.tap_proj.at(i).forward(tap.tokens)),
          1,
        ),
      ),
    );
  }

  /** q (B, N, C), kv (B, L, C) from `memory` → updated q (B, N, C). */
  forward(q: Tensor, kv: Tensor): Tensor {
    return tidy(() => {
      const q1 = q.add(this.attn.forward(this.norm1.forward(q), kv));
      return q1.add(this.mlp.forward(this.norm2.forward(q1)));
    });
  }
}

export class ProxyQueries extends Module {
  readonly queries: number;
  readonly dim: number;
  /** Absent with conditioning "static". */
  readonly interaction: ProxyInteraction | null;
  readonly merge: nn.Linear;

  /**
   * @param timesteps T, the number of diffusion kernels (one per diffusion timestep).
   * Kernels are drawn from U(−v, v), v = proxyKernelInitBound(C), through `o.generator`.
   */
  constructor(
    readonly cfg: ProxyConfig,
    readonly timesteps: number,
    o: nn.InitOptions = {},
  ) {
    super();
    if (!Number.isInteger(timesteps) || timesteps <= 0)
      throw new Error(`ProxyQueries: timesteps must be a positive integer, got ${timesteps}`);
    const { queries, dim } = proxyShape(cfg);
    this.queries = queries;
    this.dim = dim;
    const v = proxyKernelInitBound(dim);
    const kernel = (shape: number[]) => {
      const t = empty(shape);
      return o.init === "empty" ? t : t.uniform_(-v, v, o.generator);
    };
    this.param("basic_kernel", kernel([cfg.basicQueries, cfg.basicDim]));
    this.param("diffusion_kernel", kernel([timesteps, cfg.diffusionQueries, cfg.diffusionDim]));
    this.interaction =
      cfg.conditioning === "diffusion" ? this.child("interaction", new ProxyInteraction(cfg, o)) : null;
    this.merge = this.child("merge", new nn.Linear(3 * dim, dim, true, o));
  }

  get basicKernel(): Tensor {
    return this.get("basic_kernel");
  }
  get diffusionKernel(): Tensor {
    return this.get("diffusion_kernel");
  }

  /** q_t = basic ⊗ diffusion[t] for every t: (T, N, C), q_t[i1·n2 + i2, j1·c2 + j2] = b[i1,j1]·κ_t[i2,j2]. */
  stageQueries(): Tensor {
    return tidy(() => {
      const T = this.timesteps;
      return einsum("ac,tbd->tabcd", this.basicKernel, this.diffusionKernel).reshape(
        T,
        this.queries,
        this.dim,
      );
    });
  }

  /** Merge over the leading timestep dimension: (T, …, N, C) → Linear(cat[max, mean, last]) (…, N, C). */
  mergeStages(stages: Tensor): Tensor {
    return tidy(() => {
      const T = stages.size(0);
      const merged = cat([stages.amax(0), stages.mean(0), stages.select(0, T - 1)], -1);
      return this.merge.forward(merged);
    });
  }

  /**
   * Q (B, N, C). `tapsPerTimestep[t]` are the UNet taps of timestep t (one entry per proxy.tapChannels, tokens
   * (B, h·w, C_i)); null, or conditioning "static", gives the merge of the raw kernels expanded to `batch`.
   */
  forward(tapsPerTimestep: UNetTap[][] | null, batch: number): Tensor {
    if (!Number.isInteger(batch) || batch <= 0)
      throw new Error(`ProxyQueries: batch must be a positive integer, got ${batch}`);
    const interaction = this.interaction;
    if (!interaction || !tapsPerTimestep) {
      return tidy(() =>
        this.mergeStages(this.stageQueries()).unsqueeze(0).expand(batch, this.queries, this.dim).contiguous(),
      );
    }
    if (tapsPerTimestep.length !== this.timesteps)
      throw new Error(
        `ProxyQueries: got UNet taps for ${tapsPerTimestep.length} timesteps, the module has ` +
          `${this.timesteps} diffusion kernels`,
      );
    return tidy(() => {
      const stages = this.stageQueries(); // (T, N, C)
      const updated = tapsPerTimestep.map((taps, t) =>
        tidy(() => {
          const kv = interaction.memory(taps, batch, `tapsPerTimestep[${t}]`);
          const q = stages.select(0, t).unsqueeze(0).expand(batch, this.queries, this.dim);
          return interaction.forward(q, kv);
        }),
      );
      return this.mergeStages(stack(updated, 0));
    });
  }
}
