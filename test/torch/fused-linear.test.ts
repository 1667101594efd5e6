// Prepacked linear weights (native/src/packed.cpp, nn/prepack.ts): a weight's handle holds its oneDNN-packed form
// in place of the plain tensor; F.linear / F.linearAct run it as one matmul with bias, activation and residual
// fused, equal to the unfused ops to rounding; any other use unpacks it, bit for bit; memory holds one copy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  autogradGrad,
  F,
  Generator,
  nn,
  noGrad,
  prepackForInference,
  randn,
  type Tensor,
  tidy,
} from "../../src/torch/index.js";
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
const same = (a: Tensor, b: Tensor) => tidy(() => a.equal(b));
/** A weight and its packed twin: `plain` stays plain, `packed` holds the same values packed. */
function packedPair(shape: [number, number]): { plain: Tensor; packed: Tensor } {
  const plain = rand(shape);
  const packed = plain.clone();
  assert.equal(native.prepackWeight(packed.handle), shape[0] * shape[1] * 4, "the plain bytes were freed");
  assert.equal(native.isPrepacked(packed.handle), true);
  return { plain, packed };
}

describe("prepacked linear weights (oneDNN matmul with fused epilogue)", () => {
  it("is available with Debian's libtorch and oneDNN headers", () => {
    assert.equal(native.prepackAvailable(), true);
  });

  for (const act of Object.keys(ACTS) as F.LinearActivation[]) {
    it(`${act}: with and without bias and residual, equals the unfused ops on the plain weight`, () =>
      noGrad(() =>
        tidy(() => {
          const x = rand([2, 37, 48]); // (B, L, k)
          const { plain, packed } = packedPair([80, 48]);
          const b = rand([80]);
          const r = rand([2, 37, 80]);
          const rb = rand([80]); // broadcast residual: added after the product
          for (const [bias, res] of [
            [b, undefined],
            [null, undefined],
            [b, r],
            [null, r],
            [b, rb],
          ] as const) {
            const ours = F.linearAct(x, packed, bias, act, res);
            const ref = reference(x, plain, bias, act, res);
            assert.deepEqual(ours.shape, [2, 37, 80]);
            const e = maxAbs(ours, ref);
            assert.ok(e <= 2e-5, `${act} bias=${bias !== null} residual=${res?.shape}: ${e}`);
          }
          assert.equal(native.isPrepacked(packed.handle), true, "the fused path kept it packed");
        }),
      ));
  }

  it("F.linear and F.linearInference read the packed weight too; a plain weight runs the unfused ops", () =>
    noGrad(() =>
      tidy(() => {
        const x = rand([300, 256]);
        const { plain, packed } = packedPair([512, 256]);
        const b = rand([512]);
        const ref = F.linear(x, plain, b);
        assert.ok(maxAbs(F.linear(x, packed, b), ref) <= 1e-4);
        assert.ok(maxAbs(F.linearInference(x, packed, b), ref) <= 1e-4);
        assert.equal(native.isPrepacked(packed.handle), true);
        // A plain weight is never packed behind the caller's back: the unfused ops, bit for bit.
        assert.equal(same(F.linearAct(x, plain, b, "gelu"), F.gelu(F.linear(x, plain, b))), true);
        assert.equal(native.isPrepacked(plain.handle), false);
      }),
    ));

  it("metadata leaves it packed; reading it unpacks it for good, bit for bit, and frees the packed bytes", () =>
    noGrad(() =>
      tidy(() => {
        const before = native.packedBytes();
        const { plain, packed } = packedPair([96, 40]);
        // (oneDNN pads to its blocks: 96 output rows → 128, 40 inputs → 48.)
        assert.equal(native.packedBytes() - before, 128 * 48 * 4);
        assert.deepEqual(packed.shape, [96, 40]);
        assert.equal(packed.dtype, "float32");
        assert.equal(packed.device, "cpu");
        assert.equal(packed.requiresGrad, false);
        assert.equal(packed.isContiguous(), true);
        packed.requiresGrad_(false); // freezing a prepacked model again
        assert.equal(native.isPrepacked(packed.handle), true, "metadata reads do not unpack");
        assert.equal(same(packed, plain), true, "unpacked values are the plain ones, bit for bit");
        assert.equal(native.isPrepacked(packed.handle), false);
        assert.equal(native.packedBytes(), before, "the packed buffer was freed");
      }),
    ));

  it("an in-place update unpacks first: the new values are used", () =>
    noGrad(() =>
      tidy(() => {
        const x = rand([10, 32]);
        const { plain, packed } = packedPair([64, 32]);
        packed.mul_(2);
        assert.equal(native.isPrepacked(packed.handle), false);
        assert.ok(maxAbs(F.linearAct(x, packed, null, "none"), F.linear(x, plain).mul(2)) <= 1e-5);
      }),
    ));

  it("rows on 64-row blocks stay packed (GEGLU halves); other slices unpack", () =>
    noGrad(() =>
      tidy(() => {
        const x = rand([10, 32]);
        const { plain, packed } = packedPair([256, 32]);
        for (const [start, length] of [
          [0, 128],
          [128, 128],
          [64, 64],
          [192, 64],
        ] as const) {
          const rows = packed.narrow(0, start, length);
          assert.equal(native.isPrepacked(rows.handle), true, `rows ${start}+${length}`);
          assert.deepEqual(rows.shape, [length, 32]);
          const ref = reference(x, plain.narrow(0, start, length), null, "gelu");
          assert.ok(maxAbs(F.linearAct(x, rows, null, "gelu"), ref) <= 1e-5);
          assert.equal(
            same(rows, plain.narrow(0, start, length)),
            true,
            "a packed slice unpacks to its rows",
          );
        }
        assert.equal(native.isPrepacked(packed.handle), true, "slicing left the weight packed");
        const odd = packed.narrow(0, 10, 100);
        assert.equal(native.isPrepacked(packed.handle), false, "an unaligned slice unpacks the weight");
        assert.equal(same(odd, plain.narrow(0, 10, 100)), true);
      }),
    ));

  it("a weight whose storage other tensors share, or that needs a gradient, stays plain", () =>
    tidy(() => {
      const w = rand([64, 32]);
      const view = w.narrow(0, 0, 32);
      assert.equal(native.prepackWeight(w.handle), 0, "packing would add a copy while the view lives");
      view.dispose();
      const t = rand([64, 32]).requiresGrad_();
      assert.equal(native.prepackWeight(t.handle), 0);
      assert.equal(native.isPrepacked(t.handle), false);
    }));

  it("with a gradient needed it unpacks and is the unfused ops exactly (training is unchanged)", () =>
    tidy(() => {
      const x = rand([9, 16]).requiresGrad_();
      const { plain, packed } = packedPair([24, 16]);
      const b = rand([24]).requiresGrad_();
      const r = rand([9, 24]);
      const ours = F.linearAct(x, packed, b, "quickGelu", r);
      assert.equal(native.isPrepacked(packed.handle), false);
      const ref = reference(x, plain, b, "quickGelu", r);
      assert.equal(maxAbs(ours, ref), 0);
      const ga = autogradGrad([ours.sum()], [x, b]) as Tensor[];
      const gb = autogradGrad([ref.sum()], [x, b]) as Tensor[];
      for (let i = 0; i < 2; i++) assert.equal(maxAbs(ga[i]!, gb[i]!), 0);
    }));

  it("prepackForInference packs a frozen model's linear weights, one copy each; outputs and state dict keep", () =>
    noGrad(() => {
      const mha = new nn.MultiheadAttention(128, 4, { generator: g });
      const fc = new nn.Linear(128, 192, true, { generator: g });
      const x = rand([7, 2, 128]); // (L, B, E)
      const run = () => tidy(() => fc.forward(mha.forward(x), { act: "gelu" }));
      const ref = run();
      const saved = new Map([...mha.stateDict("mha"), ...fc.stateDict("fc")].map(([k, t]) => [k, t.clone()]));
      fc.weight.requiresGrad_(true);
      assert.deepEqual(prepackForInference(mha), { packed: 0, bytes: 0, skipped: 2 }, "trainable: left");
      mha.requiresGrad_(false);
      fc.requiresGrad_(false);
      const before = native.packedBytes();
      for (const m of [mha, fc]) prepackForInference(m);
      const report = prepackForInference(fc);
      assert.deepEqual(report, { packed: 0, bytes: 0, skipped: 0 }, "already packed");
      // in_proj (384×128), out_proj (128×128), fc (192×128)
      assert.equal(native.packedBytes() - before, (384 + 128 + 192) * 128 * 4);
      assert.ok(maxAbs(run(), ref) <= 1e-5);
      for (const [k, t] of [...mha.stateDict("mha"), ...fc.stateDict("fc")])
        assert.equal(same(t, saved.get(k)!), true, `${k} reads back bit for bit`);
      assert.equal(native.packedBytes(), before, "reading the state dict unpacked them all");
      for (const t of [ref, x, ...saved.values()]) t.dispose();
    }));

  it("the switch turns packing off", () =>
    tidy(() => {
      native.setPrepack(false);
      try {
        assert.equal(native.prepackAvailable(), false);
        assert.equal(native.prepackWeight(rand([64, 32]).handle), 0);
      } finally {
        native.setPrepack(true);
      }
    }));

  it("names an unknown activation", () => {
    tidy(() => {
      assert.throws(
        () => F.linearAct(rand([2, 4]), rand([3, 4]), null, "relu6" as F.LinearActivation),
        /unknown activation "relu6"/,
      );
    });
  });
});
