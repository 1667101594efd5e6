// The diffusion branch (src/diffusion/branch.ts) on a tiny diffusers folder.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DiffusionBranch, disposeSteps } from "../../src/diffusion/branch.js";
import { noisyLabelX0 } from "../../src/diffusion/schedule.js";
import { unetTapSpecs } from "../../src/diffusion/unet.js";
import { loadDiffusersFolder } from "../../src/models/diffusers.js";
import { dispose, Generator, noGrad, rand, tidy } from "../../src/torch/tensor.js";
import { maxDiff, tinyDiffusersFolders } from "./tiny-folder.js";

const folders = tinyDiffusersFolders();

describe("DiffusionBranch", () => {
  test("encode → per-t UNet pass with the empty prompt: ε̂, clamped x̂0, 11 taps; frozen, no grads", () => {
    const d = folders.copy();
    const f = loadDiffusersFolder(d);
    const branch = new DiffusionBranch(f, { timesteps: [50, 200] });
    const img = rand([2, 3, 16, 24], { generator: new Generator(2) }).mul(255);
    const z = branch.encodeImage(img);
    assert.deepEqual(z.shape, [2, 4, 4, 6]); // the fixture VAE downsamples by 4
    const steps = branch.run(z);
    assert.deepEqual(
      steps.map((s) => s.t),
      [50, 200],
    );
    const nTaps = unetTapSpecs(f.unet.config).length;
    assert.equal(nTaps, 11); // fixture UNet: down 2×2, mid 1, up 2×3
    const text = f.emptyPromptEmbedding();
    assert.deepEqual(text.shape, [1, 2, 32], "the default empty prompt is [BOS, EOS]");
    for (const s of steps) {
      assert.equal(s.taps.length, nTaps);
      assert.deepEqual(s.eps.shape, [2, 4, 4, 6]);
      assert.ok(tidy(() => s.x0.abs().max().item()) <= 1);
      // x̂0 is DEDOS's formula on the same ε̂, and ε̂ the UNet's output with the empty prompt.
      const ref = noisyLabelX0(branch.schedule, s.eps, s.t, z, true);
      assert.equal(maxDiff(ref, s.x0), 0);
      const direct = noGrad(() =>
        f.unet.forward(
          z,
          s.t,
          tidy(() => text.expand(2, 2, 32).contiguous()),
        ),
      );
      assert.ok(maxDiff(direct.sample, s.eps) < 1e-5);
      for (const o of [s.output, s.eps, s.x0, ...s.taps.map((t) => t.tokens)])
        assert.equal(o.requiresGrad, false);
      dispose([ref, direct]);
    }
    // A backward through anything the branch returned is impossible (no graph), and no parameter has .grad.
    assert.throws(() => steps[0]!.x0.sum().backward());
    for (const m of [f.vae, f.unet]) assert.ok(m.parameters().every((p) => p.grad === null));
    // The switch: the 77-token prompt conditions the UNet differently.
    const padded = new DiffusionBranch(f, { timesteps: [50], promptPadding: "max-length" }).run(z);
    const text77 = f.emptyPromptEmbedding("max-length");
    const direct77 = noGrad(() =>
      f.unet.forward(
        z,
        50,
        tidy(() => text77.expand(2, 77, 32).contiguous()),
      ),
    );
    assert.ok(maxDiff(direct77.sample, padded[0]!.eps) < 1e-5);
    assert.ok(maxDiff(padded[0]!.eps, steps[0]!.eps) > 1e-4, "max-length and none differ");
    disposeSteps(padded);
    dispose([direct77]);
    disposeSteps(steps);
    dispose([img, z]);
    f.dispose();
  });

  test("rejects timesteps outside the schedule", () => {
    const f = loadDiffusersFolder(folders.copy());
    assert.throws(() => new DiffusionBranch(f, { timesteps: [1000] }), /timestep 1000/);
    f.dispose();
  });
});
