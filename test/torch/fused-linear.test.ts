// F.linearAct (native/src/packed.cpp): act(x·Wᵀ + b) + residual as one oneDNN matmul on a prepacked weight at
// inference, against the unfused ops (F.linear, the activation op, add); its fallbacks; the packed-weight cache.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { autogradGrad, F, Generator, nn, noGrad, randn, type Tensor, tidy } from "../../src/torch/index.js";
import { native } from "../../src/torch/native.js";

const g = new Generator(5);
const rand = (shape: number[]) => randn(shape, { generator: g });
const ACTS: Record<F.LinearActivation, (y: Tensor) => Tensor> = {
  none: (y) => y,
  gelu: (y) => F.gelu(y),
  geluTanh: (y) => F.gelu(y, "tanh"),
  quickGelu: (y) => F.quickGelu(y),
  silu: (y) => F.silu(y),
};
/** The unfused definition. */
const reference = (x: Tensor, w: Tensor, b: Tensor | null, act: F.LinearActivation, r?: Tensor) =>
  tidy(() => {
    const y = ACTS[act](F.linear(x, w, b));
    return r ? y.add(r) : y;
  });
const maxAbs = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());
function packedOff<T>(fn: () => T): T {
  native.setPrepack(false);
  try {
    return fn();
  } finally {
    native.setPrepack(true);
  }
}

describe("fused linear (prepacked oneDNN matmul with epilogue)", () => {
  it("is available with Debian's libtorch and oneDNN headers", () => {
    assert.equal(native.prepackAvailable(), true);
  });

  for (const act of Object.keys(ACTS) as F.LinearActivation[]) {
    it(`${act}: with and without bias and residual, equals the unfused ops to rounding`, () =>
      noGrad(() =>
        tidy(() => {
          const x = rand([2, 37, 48]); // (B, L, k)
          const w = rand([80, 48]);
          const b = rand([80]);
          const r = rand([2, 37, 80]);
          for (const [bias, res] of [
            [b, undefined],
            [null, undefined],
            [b, r],
            [null, r],
          ] as const) {
            const ours = F.linearAct(x, w, bias, act, res);
            const ref = reference(x, w, bias, act, res);
            assert.deepEqual(ours.shape, [2, 37, 80]);
            const e = maxAbs(ours, ref);
            assert.ok(e <= 2e-5, `${act} bias=${bias !== null} residual=${res !== undefined}: ${e}`);
          }
        }),
      ));
  }

  it("runs the fused kernel (not the fallback), and the switch turns it off", () =>
    noGrad(() =>
      tidy(() => {
        native.releasePacked(true);
        const x = rand([300, 256]);
        const w = rand([512, 256]);
        const fused = F.linearAct(x, w, null, "gelu");
        assert.equal(native.packedBytes(), 512 * 256 * 4, "the weight was packed once");
        const unfused = packedOff(() => F.linearAct(x, w, null, "gelu"));
        assert.equal(
          maxAbs(unfused, reference(x, w, null, "gelu")),
          0,
          "switched off = the unfused ops, bit for bit",
        );
        assert.ok(maxAbs(fused, unfused) <= 1e-5);
      }),
    ));

  it("a weight changed in place is packed again; a disposed one's copy is released", () =>
    noGrad(() => {
      native.releasePacked(true);
      const w = rand([64, 32]);
      const x = rand([10, 32]);
      tidy(() => {
        const before = F.linearAct(x, w, null, "none");
        w.mul_(2);
        const after = F.linearAct(x, w, null, "none");
        assert.ok(maxAbs(after, before.mul(2)) <= 1e-5, "stale packed weight used after an in-place update");
      });
      assert.equal(native.packedBytes(), 64 * 32 * 4);
      w.dispose();
      assert.equal(native.releasePacked(false), 64 * 32 * 4);
      assert.equal(native.packedBytes(), 0);
      x.dispose();
    }));

  it("views of one weight made per call (GEGLU halves) reuse their packed copy", () =>
    noGrad(() =>
      tidy(() => {
        native.releasePacked(true);
        const w = rand([64, 32]);
        const x = rand([10, 32]);
        const sizes: number[] = [];
        for (let i = 0; i < 3; i++) {
          const half = w.narrow(0, 32, 32); // a new view object each time
          const y = F.linearAct(x, half, null, "gelu");
          assert.ok(maxAbs(y, reference(x, half, null, "gelu")) <= 1e-5);
          sizes.push(native.packedBytes());
        }
        // (oneDNN pads small dimensions to its blocks: 32×32 packs into 8 KiB.)
        assert.ok(sizes[0]! >= 32 * 32 * 4);
        assert.deepEqual(sizes, [sizes[0], sizes[0], sizes[0]], "packed once, not once per view");
      }),
    ));

  it("with a gradient needed it is the unfused ops exactly (training is unchanged)", () =>
    tidy(() => {
      const x = rand([9, 16]).requiresGrad_();
      const w = rand([24, 16]).requiresGrad_();
      const b = rand([24]).requiresGrad_();
      const r = rand([9, 24]);
      const ours = F.linearAct(x, w, b, "quickGelu", r);
      const ref = reference(x, w, b, "quickGelu", r);
      assert.equal(maxAbs(ours, ref), 0);
      const ga = autogradGrad([ours.sum()], [x, w, b]) as Tensor[];
      const gb = autogradGrad([ref.sum()], [x, w, b]) as Tensor[];
      for (let i = 0; i < 3; i++) assert.equal(maxAbs(ga[i]!, gb[i]!), 0);
    }));

  it("nn.Linear.forward(x, { act, residual }) is the same op", () =>
    noGrad(() =>
      tidy(() => {
        const lin = new nn.Linear(16, 8, true, { generator: g });
        const x = rand([5, 16]);
        const r = rand([5, 8]);
        assert.ok(
          maxAbs(
            lin.forward(x, { act: "silu", residual: r }),
            reference(x, lin.weight, lin.bias, "silu", r),
          ) <= 1e-5,
        );
      }),
    ));

  it("names an unknown activation", () => {
    tidy(() => {
      assert.throws(
        () => F.linearAct(rand([2, 4]), rand([3, 4]), null, "relu6" as F.LinearActivation),
        /unknown activation "relu6"/,
      );
    });
  });
});
