// The assembly layer (src/models/factory.ts): weights files recognised by kind, models built from them, the
// matching loadWeights, and configs read from JSON checked field by field.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CatSegModel } from "../../src/catseg/model.js";
import { catsegStateDict } from "../../src/catseg/weights.js";
import { ClipModel } from "../../src/clip/model.js";
import { DedosModel } from "../../src/dedos/model.js";
import { createModel, detectWeightsKind, loadWeights, saveModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { Module } from "../../src/torch/nn/module.js";
import { dispose, Generator, noGrad, rand, type Tensor, tidy } from "../../src/torch/tensor.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG, TINY_CLIP, tinyDedosConfig } from "../tiny-models.js";

const dir = tempDir("dedos-factory-");
const file = (n: string) => join(dir, n);
const maxDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());

const catseg = new CatSegModel(TINY_CATSEG, { generator: new Generator(1) }).eval();
saveSafetensors(file("catseg.safetensors"), catsegStateDict(catseg));
const clip = new ClipModel(TINY_CLIP, { generator: new Generator(2) }).eval();
saveSafetensors(file("clip.safetensors"), clip.stateDict());
const dedosConfig = tinyDedosConfig((c) => {
  c.proxy.conditioning = "static";
});
const dedos = new DedosModel(dedosConfig, { generator: new Generator(3) }).eval();
saveModel(dedos, file("dedos.safetensors"));
writeFileSync(file("junk.safetensors"), Buffer.alloc(0));
saveSafetensors(file("other.safetensors"), new Map([["w", rand([2])]]));
after(() => dispose([catseg, clip, dedos]));

describe("createModel", () => {
  it("recognises each weights file by its keys and metadata", () => {
    assert.equal(detectWeightsKind(file("catseg.safetensors")), "catseg");
    assert.equal(detectWeightsKind(file("clip.safetensors")), "clip");
    assert.equal(detectWeightsKind(file("dedos.safetensors")), "dedos");
    assert.equal(detectWeightsKind(file("other.safetensors")), "unknown");
  });

  it("builds the model the file holds, with its weights bit for bit", () => {
    const img = rand([1, 3, 32, 32], { generator: new Generator(4) }).mul(255);
    const text = tidy(() => rand([3, 1, 16], { generator: new Generator(5) }).sub(0.5));
    const c = createModel({ config: TINY_CATSEG, weights: file("catseg.safetensors") });
    assert.ok(c instanceof CatSegModel);
    noGrad(() => assert.equal(maxDiff(c.forward(img, text), catseg.forward(img, text)), 0));
    const d = createModel({ weights: file("dedos.safetensors") }); // the config comes from the file
    assert.ok(d instanceof DedosModel);
    noGrad(() => assert.equal(maxDiff(d.forward(img, text), dedos.forward(img, text)), 0));
    const k = createModel({ weights: file("clip.safetensors"), clip: { headWidth: 16 } });
    assert.ok(k instanceof ClipModel);
    assert.deepEqual(k.config, TINY_CLIP);
    dispose([c, d, k, img, text]);
  });

  it("starts a DEDOS from CAT-Seg and CLIP weights (training), the DEDOS modules fresh", () => {
    const m = createModel({
      arch: "dedos",
      config: dedosConfig,
      weights: "random",
      startFrom: { catseg: file("catseg.safetensors"), clip: file("clip.safetensors") },
    });
    const sd = m.catseg.stateDict();
    for (const [k, t] of clip.stateDict())
      assert.equal(maxDiff(t, sd.get(`sem_seg_head.predictor.clip_model.${k}`)!), 0, k);
    const head = "sem_seg_head.predictor.transformer.conv1.weight";
    assert.equal(maxDiff(catseg.stateDict().get(head)!, sd.get(head)!), 0);
    assert.equal(m.training, true);
    m.dispose();
  });

  it("refuses what it cannot build, naming the file", () => {
    assert.throws(() => createModel({ weights: "" }), /weights is required/);
    assert.throws(() => createModel({ weights: file("junk.safetensors") }), /junk\.safetensors/);
    assert.throws(
      () => createModel({ arch: "dedos", weights: file("other.safetensors") }),
      /other\.safetensors: not a DEDOS weights file/,
    );
    assert.throws(
      () => createModel({ arch: "catseg", weights: file("dedos.safetensors") }),
      /a DEDOS weights file, not a CAT-Seg checkpoint/,
    );
    class Unknown extends Module {}
    assert.throws(() => loadWeights(new Unknown(), new Map()), /no weight layout known for Unknown/);
  });

  it("checks a JSON config field by field: missing, unknown and mistyped fields are all named", () => {
    const bad = structuredClone(TINY_CATSEG) as unknown as Record<string, Record<string, unknown>>;
    delete bad.clip!.vision;
    bad.aggregator!.nheads = "two";
    bad.extra = {};
    writeFileSync(file("bad.json"), JSON.stringify(bad));
    assert.throws(
      () => createModel({ arch: "catseg", config: file("bad.json"), weights: "random" }),
      (e: Error) =>
        /bad\.json: not a valid config/.test(e.message) &&
        e.message.includes("clip.vision: missing") &&
        e.message.includes("aggregator.nheads: expected number, got string") &&
        e.message.includes("extra: unknown field"),
    );
    writeFileSync(file("good.json"), JSON.stringify(TINY_CATSEG));
    const m = createModel({ arch: "catseg", config: file("good.json"), weights: "random" });
    assert.deepEqual(m.config.aggregator, TINY_CATSEG.aggregator);
    m.dispose();
  });
});
