// Shared by test/diffusion/*.test.ts: the golden fixtures, a seeded tiny UNet of the fixture's architecture,
// and the distance between two tensors.
import { join } from "node:path";
import { UNet2DConditionModel } from "../../src/diffusion/unet.js";
import { unetConfigFromCase } from "../../src/parity/cases/diffusion.js";
import { type Fixture, loadFixture } from "../../src/parity/fixture.js";
import { Generator, type Tensor, tidy } from "../../src/torch/tensor.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

export const fixtures = join(PACKAGE_ROOT, "test/fixtures");

export const unetFixture = (): Fixture => loadFixture(join(fixtures, "sd_unet"));

export function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

/** A small UNet of the fixture's architecture with seeded random weights. */
export function tinyUnet(seed = 3, patch: object = {}): UNet2DConditionModel {
  return new UNet2DConditionModel(
    { ...unetConfigFromCase(unetFixture()), ...patch },
    { generator: new Generator(seed) },
  ).eval();
}
