// `dedos export` of a tiny DEDOS: the view graph holds what runs at inference (proxy queries, query-refined
// CLIP, text memory, the mask-decoder head fused with cost aggregation and, with diffusion conditioning, the
// VAE and UNet of the frozen Stable Diffusion). onnxruntime equals libtorch at untraced class counts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DedosModel } from "../../src/dedos/model.js";
import { DiffusionBranch } from "../../src/diffusion/branch.js";
import { exportSegmentationModel } from "../../src/export/segmentation.js";
import { OnnxChecker } from "../../src/export/verify.js";
import { Generator, noGrad, rand, randn, tidy } from "../../src/torch/index.js";
import { tempDir } from "../temp-dir.js";
import { tinyDedosConfig, tinyDiffusion } from "../tiny-models.js";

const KERNEL = 64;

async function exportAndCheck(conditioning: "static" | "diffusion"): Promise<void> {
  const cfg = tinyDedosConfig((c) => {
    c.proxy.conditioning = conditioning;
    c.consistency.enabled = false;
  });
  const model = new DedosModel(cfg, { generator: new Generator(2) }).eval();
  const sd = conditioning === "diffusion" ? tinyDiffusion() : null;
  if (sd) model.attachDiffusion(new DiffusionBranch(sd, cfg.diffusion));
  const out = tempDir(`dedos-export-${conditioning}-`);
  try {
    const topK = conditioning === "static";
    const r = await exportSegmentationModel(model, out, { version: "test", kernel: KERNEL, topK });
    const m = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    assert.equal(m.arch, "dedos");
    assert.equal(m.scoreKind, "probabilities");
    assert.deepEqual(m.config, model.config);
    if (sd) assert.ok(r.view.nodes > 2000, "the view graph holds the VAE and UNet");
    if (topK) assert.ok(r.viewTopK && r.viewTopK.maxAbsError <= 1e-4);
    const checker = await OnnxChecker.open(join(out, "view.onnx"));
    const g = new Generator(9);
    try {
      for (const T of [2, 4, 7]) {
        const image = rand([1, 3, KERNEL, KERNEL], { generator: g }).mul(255);
        const text = randn([T, 1, cfg.catseg.clip.text.embedDim], { generator: g });
        const want = noGrad(() =>
          tidy(() => model.head(model.encodeImage(image), text, { poolingSize: [1, 1] })),
        );
        const c = await checker.compare({ image, text }, "logits", want);
        assert.ok(c.maxAbsError <= 1e-4, `${conditioning}, T = ${T}: ${c.maxAbsError}`);
      }
    } finally {
      await checker.close();
    }
  } finally {
    model.dispose();
    sd?.dispose();
  }
}

describe("dedos export (tiny DEDOS)", () => {
  it("static proxy queries: view.onnx equals libtorch for T = 2, 4, 7", () => exportAndCheck("static"));
  it("diffusion-conditioned proxy queries (VAE + UNet in the graph): equal for T = 2, 4, 7", () =>
    exportAndCheck("diffusion"));
});
