// Optimisers (libtorch's own AdamW and SGD, so updates are PyTorch's bit for bit) with parameter groups,
// per-group learning rates, state export for checkpoints, and gradient-norm clipping.
import { native as N } from "./native.js";
import { Tensor } from "./tensor.js";

export interface AdamWGroup {
  params: Tensor[];
  lr: number;
  weightDecay?: number; // default 0.01 (PyTorch AdamW)
  betas?: [number, number]; // default (0.9, 0.999)
  eps?: number; // default 1e-8
  amsgrad?: boolean;
}
export interface SGDGroup {
  params: Tensor[];
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** Per-parameter optimiser state (tensors are copies owned by the caller). */
export interface ParamState {
  step?: number;
  expAvg?: Tensor;
  expAvgSq?: Tensor;
  maxExpAvgSq?: Tensor;
  momentumBuffer?: Tensor;
}

abstract class Optimizer {
  /** @internal */ readonly handle: unknown;
  readonly groups: { params: Tensor[] }[];
  protected constructor(kind: string, groups: { params: Tensor[] }[]) {
    for (const [gi, g] of groups.entries()) {
      for (const [pi, p] of g.params.entries()) {
        if (!p.requiresGrad)
          throw new Error(
            `${kind}: parameter ${pi} of group ${gi} does not require grad (frozen parameters do not belong in an optimiser)`,
          );
      }
    }
    this.groups = groups;
    this.handle = N.optimCreate(
      kind,
      groups.map((g) => ({ ...g, params: g.params.map((p) => p.handle) })),
    );
  }
  /** Applies one update from the parameters' current gradients. */
  step(): void {
    N.optimStep(this.handle);
  }
  /** Clears gradients (sets them to none). */
  zeroGrad(): void {
    N.optimZeroGrad(this.handle);
  }
  getLr(group: number): number {
    return N.optimGetLr(this.handle, group);
  }
  setLr(group: number, lr: number): void {
    N.optimSetLr(this.handle, group, lr);
  }
  /** State of every parameter in group order (null where no step was taken yet). */
  getState(): (ParamState | null)[] {
    const raw: (Record<string, unknown> | null)[] = N.optimGetState(this.handle);
    return raw.map((s) => {
      if (!s) return null;
      const out: ParamState = {};
      for (const [k, v] of Object.entries(s)) {
        if (k === "step") out.step = v as number;
        else (out as Record<string, Tensor>)[k] = new Tensor(v as number);
      }
      return out;
    });
  }
  setState(states: (ParamState | null)[]): void {
    N.optimSetState(
      this.handle,
      states.map((s) =>
        s
          ? Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof Tensor ? v.handle : v]))
          : null,
      ),
    );
  }
}

/** AdamW (decoupled weight decay), as torch.optim.AdamW. */
export class AdamW extends Optimizer {
  constructor(groups: AdamWGroup[]) {
    super("adamw", groups);
  }
}

/** SGD with optional momentum / Nesterov / weight decay, as torch.optim.SGD. */
export class SGD extends Optimizer {
  constructor(groups: SGDGroup[]) {
    super("sgd", groups);
  }
}

/** Scales gradients so that their global norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  return N.clipGradNorm(
    params.map((p) => p.handle),
    maxNorm,
    normType,
  );
}
