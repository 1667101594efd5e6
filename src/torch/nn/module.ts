// nn.Module: parameters, buffers and children with PyTorch's dotted state_dict names, train/eval,
// strict state-dict loading whose errors name every key and both shapes.
import { type Device, type DType, isFloating } from "../dtype.js";
import { keep, noGrad, type Tensor, tidy } from "../tensor.js";

export type StateDict = Map<string, Tensor>;

/** Keys listed in a StateDictError message per kind; the rest are counted (DEDOS_VERBOSE=1 lists all). */
const LISTED_KEYS = 10;

function verbose(): boolean {
  const v = process.env.DEDOS_VERBOSE;
  return v !== undefined && v !== "" && v !== "0";
}

/** The first LISTED_KEYS items and "… and N more" (all of them when DEDOS_VERBOSE is set). */
function summarise(xs: string[]): string[] {
  return xs.length > LISTED_KEYS && !verbose()
    ? [...xs.slice(0, LISTED_KEYS), `… and ${xs.length - LISTED_KEYS} more`]
    : xs;
}

/**
 * A state-dict mismatch: missing and unexpected keys and shape disagreements. The message lists the first
 * ten of each kind with counts (DEDOS_VERBOSE=1 lists everything); the full lists are on the error.
 */
export class StateDictError extends Error {
  constructor(
    readonly source: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly shapeMismatches: { key: string; expected: number[]; got: number[] }[],
  ) {
    const lines: string[] = [];
    const shapes = shapeMismatches.map(
      (m) =>
        `  ${m.key}: the model expects shape [${m.expected.join(", ")}], ${source} has [${m.got.join(", ")}]`,
    );
    if (shapes.length > LISTED_KEYS && !verbose())
      lines.push(
        ...shapes.slice(0, LISTED_KEYS),
        `  … and ${shapes.length - LISTED_KEYS} more shape mismatches`,
      );
    else lines.push(...shapes);
    if (missing.length)
      lines.push(`  missing in ${source} (${missing.length}): ${summarise(missing).join(", ")}`);
    if (unexpected.length)
      lines.push(`  unexpected in ${source} (${unexpected.length}): ${summarise(unexpected).join(", ")}`);
    const all = Math.max(missing.length, unexpected.length, shapeMismatches.length);
    if (all > LISTED_KEYS && !verbose())
      lines.push(
        "  (set DEDOS_VERBOSE=1 for the full list; it is also on the error: missing, unexpected, mismatched)",
      );
    super(`state dict from ${source} does not fit the model:\n${lines.join("\n")}`);
    this.name = "StateDictError";
  }

  /** The keys whose shapes disagree (details in `shapeMismatches`). */
  get mismatched(): string[] {
    return this.shapeMismatches.map((m) => m.key);
  }
}

/**
 * A state dict whose keys and shapes fit but whose values cannot be right: integer or bool data for a
 * floating-point parameter, or NaN/Inf values. `problems` has every offending key.
 */
export class StateDictValueError extends Error {
  constructor(
    readonly source: string,
    readonly problems: { key: string; problem: string }[],
  ) {
    const lines = problems.map((p) => `  ${p.key}: ${p.problem}`);
    const shown =
      lines.length > LISTED_KEYS && !verbose()
        ? [
            ...lines.slice(0, LISTED_KEYS),
            `  … and ${lines.length - LISTED_KEYS} more (DEDOS_VERBOSE=1 lists all)`,
          ]
        : lines;
    super(`state dict from ${source} has unusable values:\n${shown.join("\n")}`);
    this.name = "StateDictValueError";
  }
}

export interface LoadStateDictOptions {
  /** Require the keys to match exactly (default true). Shape mismatches always throw. */
  strict?: boolean;
  /** Names the origin (a file path) in error messages. */
  source?: string;
  /**
   * Load floating-point values that are NaN or ±Inf (refused by default: such weights make a model
   * predict one class everywhere). DEDOS_ALLOW_NONFINITE=1 sets it too.
   */
  allowNonFinite?: boolean;
}

/**
 * What is wrong with `src` as the value of the model's `own` tensor, or undefined. A floating-point
 * parameter or buffer takes floating-point data only; floating values must be finite unless allowed.
 * Finiteness costs one reduction: a plain sum is finite exactly when every value is, unless it overflows,
 * and only then are NaN and Inf counted one by one. Measured on two cores for a ViT-B-size state dict
 * (150 M values): 45 ms as float32 (600 MB, about as long as the copy itself), 300 ms as float16.
 */
function valueProblem(own: Tensor, src: Tensor, source: string, allowNonFinite: boolean): string | undefined {
  if (!isFloating(own.dtype)) return undefined;
  if (!isFloating(src.dtype)) {
    return `${source} has ${src.dtype} data for the model's ${own.dtype} parameter (integer or bool tensors are not loaded into floating-point ones)`;
  }
  if (allowNonFinite || src.numel === 0) return undefined;
  const total = tidy(() => src.sum().item());
  if (Number.isFinite(total)) return undefined;
  const [bad, nan] = tidy(() => [src.numel - src.isfinite().sum().item(), src.isnan().sum().item()]);
  if (bad === 0) return undefined; // the sum overflowed; every value is finite
  const counts = [nan ? `${nan} NaN` : "", bad - nan ? `${bad - nan} Inf` : ""].filter(Boolean).join(" and ");
  return `${source} has ${counts} among its ${src.numel} values (pass allowNonFinite: true or set DEDOS_ALLOW_NONFINITE=1 to load them anyway)`;
}

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, { t: Tensor | null; persistent: boolean }>();
  private readonly _children = new Map<string, Module>();

  /** Registers a trainable tensor under `name` (requires grad unless `requiresGrad` is false). */
  protected param(name: string, t: Tensor | null, requiresGrad = true): Tensor {
    if (t) {
      keep(t);
      if (requiresGrad && !t.requiresGrad) t.requiresGrad_(true);
    }
    this._params.set(name, t);
    return t as Tensor;
  }
  /** Registers a non-trainable tensor; persistent buffers are part of the state dict. */
  protected buffer(name: string, t: Tensor | null, persistent = true): Tensor {
    if (t) keep(t);
    this._buffers.set(name, { t, persistent });
    return t as Tensor;
  }
  /** Registers a child module under `name`. */
  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }
  /** Replaces a registered buffer's tensor (disposing the old one). */
  protected setBuffer(name: string, t: Tensor): void {
    const b = this._buffers.get(name);
    if (!b) throw new Error(`no buffer '${name}'`);
    if (b.t && b.t !== t) b.t.dispose();
    b.t = keep(t);
  }

  /**
   * The tensors this module itself uses only as linear-layer weights (y = x·Wᵀ + b, through F.linear / F.linearAct):
   * what prepackForInference may pack. None by default.
   */
  linearWeights(): Tensor[] {
    return [];
  }

  children(): [string, Module][] {
    return [...this._children];
  }
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this._children) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules(prefix)) {
      for (const [n, t] of m._params) if (t) out.push([p ? `${p}.${n}` : n, t]);
    }
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(prefix = "", persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules(prefix)) {
      for (const [n, b] of m._buffers)
        if (b.t && (!persistentOnly || b.persistent)) out.push([p ? `${p}.${n}` : n, b.t]);
    }
    return out;
  }
  /** Parameters and persistent buffers by dotted name, in registration order (PyTorch's state_dict order). */
  stateDict(prefix = ""): StateDict {
    const sd: StateDict = new Map();
    const visit = (m: Module, p: string) => {
      for (const [n, t] of m._params) if (t) sd.set(p + n, t);
      for (const [n, b] of m._buffers) if (b.t && b.persistent) sd.set(p + n, b.t);
      for (const [n, c] of m._children) visit(c, `${p}${n}.`);
    };
    visit(this, prefix ? `${prefix}.` : "");
    return sd;
  }

  /**
   * Copies tensors from `sd` into this module's parameters and buffers (converting dtype and device).
   * Throws a StateDictError naming the missing/unexpected keys (when strict) and the shape mismatches,
   * and a StateDictValueError for integer data given to floating-point tensors and for NaN/Inf values
   * (unless `allowNonFinite`); either way before anything is copied.
   */
  loadStateDict(
    sd: Map<string, Tensor>,
    opts: LoadStateDictOptions = {},
  ): { missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const source = opts.source ?? "the state dict";
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !own.has(k));
    const mismatches: { key: string; expected: number[]; got: number[] }[] = [];
    for (const [k, t] of own) {
      const src = sd.get(k);
      if (src && !sameShape(t.shape, src.shape))
        mismatches.push({ key: k, expected: t.shape, got: src.shape });
    }
    if (mismatches.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(source, strict ? missing : [], strict ? unexpected : [], mismatches);
    }
    const env = process.env.DEDOS_ALLOW_NONFINITE;
    const allowNonFinite = opts.allowNonFinite ?? (env !== undefined && env !== "" && env !== "0");
    const problems: { key: string; problem: string }[] = [];
    for (const [k, t] of own) {
      const src = sd.get(k);
      const problem = src && valueProblem(t, src, source, allowNonFinite);
      if (problem) problems.push({ key: k, problem });
    }
    if (problems.length) throw new StateDictValueError(source, problems);
    noGrad(() => {
      for (const [k, t] of own) {
        const src = sd.get(k);
        if (src) t.copy_(src);
      }
    });
    return { missing, unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  /** Turns gradients on or off for every parameter (freezing a sub-model). */
  requiresGrad_(on: boolean): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
  /** Moves (or casts floating tensors of) every parameter and buffer in place of the registered ones. */
  to(target: DType | Device): this {
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        for (const [n, t] of m._params) {
          if (!t || (isDTypeName(target) && !isFloating(t.dtype))) continue;
          const rg = t.requiresGrad;
          const moved = keep(t.to(target).detach());
          if (rg) moved.requiresGrad_(true);
          if (moved !== t) t.dispose();
          m._params.set(n, moved);
        }
        for (const [, b] of m._buffers) {
          if (!b.t || (isDTypeName(target) && !isFloating(b.t.dtype))) continue;
          const moved = keep(b.t.to(target));
          b.t.dispose();
          b.t = moved;
        }
        m.onMoved();
      }
    });
    return this;
  }
  /** Called after `to()` replaced tensors, so that subclasses can refresh fields that point at them. */
  protected onMoved(): void {}

  /** Number of parameter elements (trainable only when asked). */
  numParameters(trainableOnly = false): number {
    let n = 0;
    for (const p of this.parameters()) if (!trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }
  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of m._params.values()) t?.dispose();
      for (const b of m._buffers.values()) b.t?.dispose();
    }
  }
  /** Reads a registered parameter or buffer of this module (after `to()` the tensor objects change). */
  protected get(name: string): Tensor {
    const p = this._params.get(name);
    if (p) return p;
    const b = this._buffers.get(name)?.t;
    if (b) return b;
    throw new Error(`${this.constructor.name}: no parameter or buffer '${name}'`);
  }
  protected has(name: string): boolean {
    return !!this._params.get(name) || !!this._buffers.get(name)?.t;
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
function isDTypeName(x: string): x is DType {
  return x !== "cpu" && !x.startsWith("cuda");
}

/** Children "0", "1", … like torch.nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    for (const [i, m] of items.entries()) this.child(String(i), m);
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    return this.items[i]!;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/**
 * Builds a module and loads it: `make()`, then `load(module)`; a failing load frees the half-built module
 * before the error goes on. Returns the module in eval mode.
 */
export function buildAndLoad<M extends Module>(make: () => M, load: (m: M) => void): M {
  const m = make();
  try {
    load(m);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m.eval();
}
