// The noise schedule (src/diffusion/schedule.ts) against hand-computed values: ᾱ_t for each beta schedule,
// DDIM timesteps, x̂0 parameterisations and the DDIM step.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEDOS_SCHEDULER_CONFIG } from "../../src/diffusion/config.js";
import {
  ddimStep,
  ddimTimesteps,
  NoiseSchedule,
  noisyLabelX0,
  predictX0,
} from "../../src/diffusion/schedule.js";
import { tensor, tidy } from "../../src/torch/tensor.js";
import { assertClose } from "../helpers.js";
import { unetFixture } from "./helpers.js";

describe("noise schedule", () => {
  const s = new NoiseSchedule(DEDOS_SCHEDULER_CONFIG);

  /** ᾱ_t in float64 from the definition: β_i = (√β0 + i·(√β1 − √β0)/(T−1))², ᾱ_t = Π_{i≤t}(1 − β_i). */
  function handAlphaBar(t: number): number {
    const a = Math.sqrt(0.00085);
    const b = Math.sqrt(0.012);
    let p = 1;
    for (let i = 0; i <= t; i++) p *= 1 - (a + (i * (b - a)) / 999) ** 2;
    return p;
  }

  test("scaled-linear ᾱ_t matches the hand computation", () => {
    for (const t of [0, 1, 50, 100, 200, 537, 999]) {
      const want = handAlphaBar(t);
      const got = s.alphaProd(t);
      assert.ok(Math.abs(got - want) <= 2e-6 * want + 1e-7, `ᾱ_${t}: ${got} vs ${want}`);
    }
    assert.ok(Math.abs(s.alphaProd(0) - (1 - 0.00085)) < 1e-7);
    assert.equal(s.betas.length, 1000);
    assert.ok(Math.abs(s.betas[999]! - 0.012) < 1e-8);
    // The float32 values diffusers holds (case.json of sd_unet records them).
    const perT = unetFixture().json.scheduler.per_t;
    for (const t of [50, 100, 200]) {
      assert.equal(s.alphaProd(t), perT[`t${t}`].alpha_prod_t);
      assert.equal(s.alphaProd(t - 20), perT[`t${t}`].alpha_prod_t_prev);
    }
    assert.equal(s.alphaProd(-20), 1); // set_alpha_to_one
  });

  test("linear and squaredcos_cap_v2 betas", () => {
    const lin = new NoiseSchedule({
      ...DEDOS_SCHEDULER_CONFIG,
      beta_schedule: "linear",
      num_train_timesteps: 5,
    });
    assertClose(
      Array.from(lin.betas),
      [0, 1, 2, 3, 4].map((i) => 0.00085 + (i * (0.012 - 0.00085)) / 4),
      1e-9,
      1e-6,
    );
    const cos = new NoiseSchedule({
      ...DEDOS_SCHEDULER_CONFIG,
      beta_schedule: "squaredcos_cap_v2",
      num_train_timesteps: 4,
    });
    const abar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    // ᾱ_1 = (1 − β_0)(1 − β_1) = ᾱ(2/T) / ᾱ(0) (the product telescopes).
    assertClose([cos.alphasCumprod[1]!], [abar(2 / 4) / abar(0)], 1e-6);
  });

  test("DDIM inference timesteps (leading, offset, trailing, linspace)", () => {
    const lead = ddimTimesteps(DEDOS_SCHEDULER_CONFIG, 50);
    assert.equal(lead.length, 50);
    assert.deepEqual([lead[0], lead[1], lead[49]], [980, 960, 0]);
    assert.equal(ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, steps_offset: 1 }, 50)[0], 981);
    assert.deepEqual(
      ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, timestep_spacing: "trailing" }, 4),
      [999, 749, 499, 249],
    );
    assert.deepEqual(
      ddimTimesteps({ ...DEDOS_SCHEDULER_CONFIG, timestep_spacing: "linspace" }, 4),
      [999, 666, 333, 0],
    );
  });

  test("x̂0: epsilon (clamped / unclamped), v-prediction and sample on a tiny hand case", () => {
    const t = 100;
    const a = s.alphaProd(t);
    const x = [0.5, -1, 2, 0.25];
    const m = [0.2, 0.3, -0.1, 4];
    tidy(() => {
      const xt = tensor(x);
      const mt = tensor(m);
      const eps = x.map((xi, i) => (xi - Math.sqrt(1 - a) * m[i]!) / Math.sqrt(a));
      const unclamped = predictX0(s, mt, t, xt, { clipSample: false }).x0;
      assertClose(unclamped.toArray(), eps, 1e-6, 1e-6, "epsilon x̂0");
      const clamped = predictX0(s, mt, t, xt).x0; // DEDOS default: clip_sample true
      assertClose(
        clamped.toArray(),
        eps.map((v) => Math.max(-1, Math.min(1, v))),
        1e-6,
        1e-6,
        "clamped x̂0",
      );
      assertClose(noisyLabelX0(s, mt, t, xt).toArray(), clamped.toArray(), 0, 0, "noisyLabelX0");

      // v-prediction: x̂0 = √ᾱ·x − √(1−ᾱ)·v, ε = √ᾱ·v + √(1−ᾱ)·x.
      const v = predictX0(s, mt, t, xt, { predictionType: "v_prediction", clipSample: false });
      const vx0 = x.map((xi, i) => Math.sqrt(a) * xi - Math.sqrt(1 - a) * m[i]!);
      assertClose(v.x0.toArray(), vx0, 1e-6, 1e-6, "v x̂0");
      assertClose(
        v.epsilon.toArray(),
        x.map((xi, i) => Math.sqrt(a) * m[i]! + Math.sqrt(1 - a) * xi),
        1e-6,
        1e-6,
        "v ε",
      );
      // A v-prediction scheduler config does the same by default.
      const vs = new NoiseSchedule({
        ...DEDOS_SCHEDULER_CONFIG,
        prediction_type: "v_prediction",
        clip_sample: false,
      });
      assertClose(predictX0(vs, mt, t, xt).x0.toArray(), vx0, 1e-6, 1e-6, "v config");

      const smp = predictX0(s, mt, t, xt, { predictionType: "sample", clipSample: false });
      assertClose(smp.x0.toArray(), m.map(Math.fround), 0, 0, "sample x̂0");

      // DDIM step, eta 0: √ᾱ_prev·x̂0 (clamped) + √(1−ᾱ_prev)·ε̂.
      const ap = s.alphaProd(t - 20);
      const step = ddimStep(s, mt, t, xt, 50);
      const clampedEps = eps.map((v2) => Math.max(-1, Math.min(1, v2)));
      assertClose(
        step.prevSample.toArray(),
        clampedEps.map((x0, i) => Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * m[i]!),
        1e-6,
        1e-6,
        "prev sample",
      );
    });
  });
});
