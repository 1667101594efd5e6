// The whole DEDOS model on tiny random configs: an untrained DEDOS with the cost-aggregation head is exactly
// CAT-Seg; which parameters get gradients after one training step (and which must not); both heads' inference
// shapes and ranges; the requirement of a diffusion branch; weights round trip.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Segmenter } from "../../src/api/segmenter.js";
import { CatSegModel } from "../../src/catseg/model.js";
import { catsegStateDict, loadCatSegWeights } from "../../src/catseg/weights.js";
import { readLabelMap } from "../../src/data/labels.js";
import { DedosModel } from "../../src/dedos/model.js";
import { DiffusionBranch } from "../../src/diffusion/branch.js";
import { createModel, saveModel } from "../../src/models/factory.js";
import { nn, prepackForInference } from "../../src/torch/index.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { native } from "../../src/torch/native.js";
import {
  dispose,
  Generator,
  noGrad,
  rand,
  randint,
  randn,
  type Tensor,
  tidy,
} from "../../src/torch/tensor.js";
import { DEFAULT_SOLVER, maskFrozenGradients, setupTrainable } from "../../src/train/solver.js";
import { tinyDedosConfig, tinyDiffusion } from "../tiny-models.js";

const sd = tinyDiffusion(5);
const tmp = mkdtempSync(join(tmpdir(), "dedos-model-"));
after(() => {
  sd.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function unitText(T: number, seed: number): Tensor {
  return tidy(() => {
    const t = randn([T, 1, 16], { generator: new Generator(seed) });
    return t.div(t.norm(2, -1, true));
  });
}
function images(B: number, seed: number): Tensor {
  return rand([B, 3, 32, 32], { generator: new Generator(seed) }).mul(255);
}
function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}
function gradNorm(p: Tensor): number {
  return tidy(() => {
    const g = p.grad;
    return g ? g.abs().sum().item() : 0;
  });
}

describe("DEDOS model", () => {
  test("cost-aggregation head with fresh DEDOS modules equals CAT-Seg on the same weights", () => {
    for (const conditioning of ["diffusion", "static"] as const) {
      const config = tinyDedosConfig((c) => {
        c.head = "cost-aggregation";
        c.proxy.conditioning = conditioning;
      });
      const dedos = new DedosModel(config, { generator: new Generator(3) }).eval();
      dedos.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
      const catseg = new CatSegModel(config.catseg, { init: "empty" }).eval();
      loadCatSegWeights(catseg, catsegStateDict(dedos.catseg));
      tidy(() => {
        const img = images(2, 7);
        const text = unitText(5, 8);
        const a = noGrad(() => dedos.forward(img, text));
        const b = noGrad(() => catseg.forward(img, text));
        assert.deepEqual(a.shape, [2, 5, 16, 16]);
        const err = maxDiff(a, b);
        assert.ok(err <= 1e-6, `${conditioning}: max |DEDOS − CAT-Seg| = ${err}`);
        // The queries did run (the model is not trivially CAT-Seg): once the injection is non-zero it differs.
        noGrad(() => {
          for (const [k, p] of dedos.injection!.namedParameters())
            if (k.startsWith("fuse.")) p.copy_(randn(p.shape, { generator: new Generator(11) }).mul(0.1));
        });
        const c = noGrad(() => dedos.forward(img, text));
        assert.ok(maxDiff(c, b) > 1e-3, "a non-zero injection changes the output");
      });
      dedos.dispose();
      catseg.dispose();
    }
  });

  test("prepacked for inference with its Stable Diffusion branch (as the Segmenter builds it): the same outputs", () => {
    const config = tinyDedosConfig(); // diffusion conditioning: the proxy queries run inside the UNet
    const own = tinyDiffusion(6);
    const model = new DedosModel(config, { generator: new Generator(31) }).eval();
    model.attachDiffusion(new DiffusionBranch(own, config.diffusion));
    noGrad(() => {
      for (const [k, p] of model.injection!.namedParameters())
        if (k.startsWith("fuse.")) p.copy_(randn(p.shape, { generator: new Generator(12) }).mul(0.1));
    });
    const img = images(1, 13);
    const text = unitText(4, 14);
    const before = noGrad(() => model.forward(img, text));
    const packed = [model, own.unet, own.vae].map((m) => prepackForInference(m.requiresGrad_(false)));
    assert.ok(packed[1]!.packed > 10, `UNet: ${JSON.stringify(packed[1])}`);
    const after = noGrad(() => model.forward(img, text));
    const err = maxDiff(after, before);
    assert.ok(err <= 1e-5, `max |packed − plain| = ${err}`);
    // Only GEGLU projections whose halves do not fall on oneDNN's 64-row blocks were unpacked (by the narrow
    // that splits them; SD-2's halves, 1280 to 5120 rows, all do), and some halves stayed packed.
    const geglu = [...own.unet.namedModules()].filter(([n]) => n.endsWith("ff.net.0.proj")) as [
      string,
      nn.Linear,
    ][];
    const unpacked = [...own.unet.namedModules()]
      .filter(([, m]) => m instanceof nn.Linear && !native.isPrepacked(m.weight.handle))
      .map(([n, m]) => [n, (m as nn.Linear).outFeatures / 2] as const);
    for (const [n, half] of unpacked)
      assert.ok(n.endsWith("ff.net.0.proj") && half % 64 !== 0, `${n} (half ${half}) was unpacked`);
    assert.ok(
      geglu.some(([, m]) => native.isPrepacked(m.weight.handle)),
      "an aligned GEGLU stayed packed",
    );
    dispose([img, text, before, after]);
    model.dispose();
    own.dispose();
  });

  test("one training step: gradients reach every DEDOS part and never the frozen ones", () => {
    // mask-decoder head, fuse mean, diffusion conditioning, consistency on; the text tower frozen (the
    // switch; the default trains it, next test).
    const config = tinyDedosConfig((c) => {
      c.clip.finetuneText = false;
    });
    const model = new DedosModel(config, { generator: new Generator(4) }).train();
    model.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
    const setup = setupTrainable(model, { ...DEFAULT_SOLVER });
    tidy(() => {
      const img = images(2, 9);
      const labels = randint(0, 4, [2, 32, 32], { generator: new Generator(10) });
      const text = unitText(4, 12);
      const losses = model.trainingLosses(img, labels, text);
      for (const k of ["loss_ce", "loss_mask", "loss_dice", "loss_ce_0", "loss_cost", "loss_consistency"])
        assert.ok(k in losses, `missing ${k} in ${Object.keys(losses).join(", ")}`);
      for (const [k, v] of Object.entries(losses)) assert.ok(Number.isFinite(v.item()), `${k} = ${v.item()}`);
      let total = losses.loss_ce!;
      for (const [k, v] of Object.entries(losses)) if (k !== "loss_ce") total = total.add(v);
      total.backward();
    });
    const mustLearn = [
      "proxy.basic_kernel",
      "proxy.diffusion_kernel",
      "proxy.interaction.attn.q_proj.weight",
      "proxy.interaction.tap_proj.0.weight",
      "proxy.merge.weight",
      "injection.token_proj.0.weight",
      "injection.mlp.fc1.weight",
      "injection.fuse.0.weight",
      "consistency.proj_clip.weight",
      "consistency.proj_query.weight",
      "text_memory.layers.0.out_proj.weight",
      "mask_head.text_proj.layers.0.weight",
      "mask_head.predictor.text_aggregation.layers.0.text_to_query.q_proj.weight",
      "mask_head.predictor.class_embed.weight",
      "mask_head.pixel_decoder.mask_features.weight",
      "mask_head.query_pos_proj.weight",
      "catseg.sem_seg_head.predictor.transformer.conv1.weight",
      "catseg.sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.in_proj_weight",
    ];
    const params = new Map(model.namedParameters());
    for (const k of mustLearn) {
      const p = params.get(k);
      assert.ok(p, `no parameter ${k}`);
      assert.ok(gradNorm(p) > 0, `${k} has no gradient`);
    }
    // CLIP's k rows, the text tower (mask-decoder head), and everything else in CLIP stay frozen.
    const inProj = params.get(
      "catseg.sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.in_proj_weight",
    )!;
    const frozen = [
      "catseg.sem_seg_head.predictor.clip_model.transformer.resblocks.0.attn.in_proj_weight",
      "catseg.sem_seg_head.predictor.clip_model.visual.conv1.weight",
      "catseg.sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.mlp.c_fc.weight",
    ];
    for (const k of frozen) {
      const p = params.get(k)!;
      assert.equal(p.requiresGrad, false, `${k} should be frozen`);
      assert.equal(p.grad, null, `${k} got a gradient`);
    }
    assert.equal(
      setup.frozenRows.length,
      config.catseg.clip.vision.layers,
      "one k block per image-tower layer",
    );
    assert.ok(gradNorm(inProj) > 0);
    maskFrozenGradients(setup.frozenRows);
    const D = inProj.size(1);
    tidy(() => {
      const g = inProj.grad!;
      assert.equal(g.narrow(0, D, D).abs().sum().item(), 0, "k rows masked");
      assert.ok(g.narrow(0, 0, D).abs().sum().item() > 0, "q rows train");
      assert.ok(
        g
          .narrow(0, 2 * D, D)
          .abs()
          .sum()
          .item() > 0,
        "v rows train",
      );
    });
    for (const m of [sd.unet, sd.vae])
      for (const [k, p] of m.namedParameters()) assert.equal(p.grad, null, `SD ${k} got a gradient`);
    model.dispose();
  });

  test("default clip.finetuneText: q and v of the text tower train too, and get gradients through the text", () => {
    const config = tinyDedosConfig();
    assert.equal(config.clip.finetuneText, true);
    const model = new DedosModel(config, { generator: new Generator(4) }).train();
    model.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
    assert.equal(model.textTowerTrains, true);
    const setup = setupTrainable(model, { ...DEFAULT_SOLVER });
    const { vision, text } = config.catseg.clip;
    assert.equal(setup.frozenRows.length, vision.layers + text.layers, "k rows of both towers");
    tidy(() => {
      const names = ["cat", "dog", "sky", "grass"];
      const textEmb = model.textEmbeddings(names, { cache: false }); // with gradients, as the trainer does
      const labels = randint(0, 4, [2, 32, 32], { generator: new Generator(10) });
      const losses = model.trainingLosses(images(2, 9), labels, textEmb);
      let total: Tensor | null = null;
      for (const v of Object.values(losses)) total = total ? total.add(v) : v;
      total!.backward();
    });
    const params = new Map(model.namedParameters());
    const textQkv = params.get(
      "catseg.sem_seg_head.predictor.clip_model.transformer.resblocks.0.attn.in_proj_weight",
    )!;
    assert.equal(textQkv.requiresGrad, true);
    assert.ok(gradNorm(textQkv) > 0, "the text tower's q/v get a gradient");
    model.dispose();
  });

  test("the texture-separation loss trains only its projections and the queries, never CLIP", () => {
    const config = tinyDedosConfig((c) => {
      c.head = "cost-aggregation";
    });
    const model = new DedosModel(config, { generator: new Generator(6) }).train();
    model.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
    setupTrainable(model, { ...DEFAULT_SOLVER });
    tidy(() => {
      const losses = model.trainingLosses(images(1, 3), randint(0, 3, [1, 32, 32]), unitText(3, 2));
      losses.loss_consistency!.backward();
    });
    for (const [k, p] of model.catseg.namedParameters()) assert.equal(gradNorm(p), 0, `${k} got a gradient`);
    assert.ok(gradNorm(model.consistency!.namedParameters()[0]![1]) > 0);
    assert.ok(gradNorm(model.proxy!.namedParameters()[0]![1]) > 0);
    model.dispose();
  });

  test("mask-decoder inference gives probabilities; without SD a clear error", () => {
    const config = tinyDedosConfig();
    const model = new DedosModel(config, { generator: new Generator(8) }).eval();
    assert.equal(model.scoreKind, "probabilities");
    tidy(() => {
      assert.throws(
        () => noGrad(() => model.forward(images(1, 1), unitText(3, 1))),
        /Stable Diffusion branch/,
      );
      model.attachDiffusion(new DiffusionBranch(sd, config.diffusion));
      const p = noGrad(() => model.forward(images(1, 1), unitText(3, 1)));
      assert.deepEqual(p.shape, [1, 3, 16, 16]);
      assert.ok(p.min().item() >= 0 && p.max().item() <= 1, "probabilities in [0, 1]");
    });
    assert.throws(
      () => new DedosModel(config).attachDiffusion(new DiffusionBranch(sd, { timesteps: [50] })),
      /timesteps/,
    );
    model.dispose();
  });
});

describe("DEDOS weights and the Segmenter", () => {
  test("saveModel → createModel gives identical outputs; a CAT-Seg file is named as such", () => {
    const config = tinyDedosConfig((c) => {
      c.proxy.conditioning = "static";
    });
    const model = new DedosModel(config, { generator: new Generator(21) }).eval();
    const file = join(tmp, "dedos.safetensors");
    saveModel(model, file);
    const back = createModel({ weights: file });
    assert.ok(back instanceof DedosModel);
    tidy(() => {
      const img = images(1, 4);
      const text = unitText(3, 5);
      const a = noGrad(() => model.forward(img, text));
      const b = noGrad(() => back.forward(img, text));
      assert.equal(maxDiff(a, b), 0);
    });
    const catsegFile = join(tmp, "catseg.safetensors");
    saveSafetensors(catsegFile, catsegStateDict(model.catseg));
    assert.throws(
      () => createModel({ arch: "dedos", weights: catsegFile }),
      /not a DEDOS weights file.*CAT-Seg weights/,
    );
    // A DEDOS config and a CAT-Seg file: CLIP and the head from the file, DEDOS modules fresh.
    const fresh = createModel({ arch: "dedos", config, weights: catsegFile, seed: 1 });
    const w = fresh.catseg.stateDict();
    for (const [k, t] of model.catseg.stateDict()) assert.equal(maxDiff(t, w.get(k)!), 0, k);
    for (const m of [model, back, fresh]) m.dispose();
  });

  test("Segmenter and dedos segment recognise DEDOS weights; diffusion conditioning asks for --sd", async () => {
    const config = tinyDedosConfig((c) => {
      c.proxy.conditioning = "static";
    });
    const model = new DedosModel(config, { generator: new Generator(22) });
    const file = join(tmp, "static.safetensors");
    saveModel(model, file);
    model.dispose();
    const seg = await Segmenter.create({ weights: file });
    assert.equal(seg.kind, "dedos");
    const r = await seg.segment("assets/images/chelsea.png", "cat; wall; floor");
    assert.equal(r.labels.length, r.width * r.height);
    assert.ok(r.labels.every((v) => v < 3));
    await seg.dispose();

    const out = join(tmp, "seg");
    const cli = spawnSync(
      process.execPath,
      [
        "dist/src/cli/main.js",
        "segment",
        "assets/images/chelsea.png",
        "--classes",
        "cat; wall",
        "--weights",
        file,
        "--out",
        out,
      ],
      { encoding: "utf8" },
    );
    assert.equal(cli.status, 0, cli.stderr);
    const labels = await readLabelMap(join(out, "chelsea.labels.png"));
    assert.equal(labels.width * labels.height, r.width * r.height);

    const diffusionFile = join(tmp, "diffusion.safetensors");
    const m2 = new DedosModel(tinyDedosConfig(), { generator: new Generator(23) });
    saveModel(m2, diffusionFile);
    m2.dispose();
    await assert.rejects(
      () => Segmenter.create({ weights: diffusionFile }),
      /Stable Diffusion at inference.*--sd/,
    );
  });
});
