// The browser page (web/) in a real headless Chromium: built with `npm run build:web`, served with an export
// folder from a local HTTP server, driven like a user. Its label map must equal the Node onnx backend's for
// the same export, image and classes: the toy export (real graphs, tiny) and a real `dedos export` of a tiny
// random CAT-Seg (CLIP + cost aggregation; the top-k graph for more classes than pad_len with
// DEDOS_SLOW_TESTS=1, test/runtime/export-e2e.test.ts checks it in Node every run). The page's
// time per image (WebAssembly: the test browser has no GPU) is printed.
import assert from "node:assert/strict";
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "puppeteer-core";
import { Segmenter } from "../../src/api/segmenter.js";
import { readImageRGB } from "../../src/data/image-decode.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { blendOverlay } from "../../src/viz/legend.js";
import { exportTiny } from "../runtime/exported-model.js";
import { writeToyExport } from "../runtime/toy-export.js";
import { tempDir } from "../temp-dir.js";
import { buildWeb, CHROMIUM, launchChromium, segmentInPage } from "./browser.js";
import { serveFolders } from "./static-server.js";

const IMAGE = join(PACKAGE_ROOT, "assets/images/chelsea.png");

describe("web page in headless Chromium", {
  skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}`,
}, () => {
  let browser: Browser;
  let server: Awaited<ReturnType<typeof serveFolders>>;
  const models = tempDir("dedos-web-models-");
  before(async () => {
    buildWeb();
    server = await serveFolders({ "/": join(PACKAGE_ROOT, "web/dist"), "/models/": models });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Page vs Node on the export in models/`name`: ≥ 99.9 % equal labels, first and second (warm) image. */
  async function compare(name: string, classes: string): Promise<void> {
    const [first, warm] = await segmentInPage(
      browser,
      `${server.url}/`,
      `/models/${name}/`,
      IMAGE,
      classes,
      2,
    );
    const seg = await Segmenter.create({ backend: "onnx", model: join(models, name) });
    const node = await seg.segment(IMAGE, classes);
    await seg.dispose();
    // The overlay is the library's blend with the shared palette, and a legend sits to its right.
    const blended = blendOverlay(await readImageRGB(IMAGE), Uint16Array.from(first!.labels));
    const sampled: number[] = [];
    for (let i = 0; i < node.labels.length; i += 97) sampled.push(...blended.subarray(3 * i, 3 * i + 3));
    assert.deepEqual(first!.canvas!.rgb, sampled);
    assert.ok(first!.canvas!.width >= first!.width + 260, "the legend is drawn beside the image");
    for (const r of [first!, warm!]) {
      assert.equal(r.width, node.width);
      assert.equal(r.height, node.height);
      let same = 0;
      for (let i = 0; i < node.labels.length; i++) if (node.labels[i] === r.labels[i]) same++;
      assert.ok(same / node.labels.length >= 0.999, `${same} of ${node.labels.length} labels equal`);
    }
    const T = classes.split(";").length;
    console.log(
      `page, ${name}, ${T} classes (${first!.providers.join(", ")}): ${first!.width}×${first!.height}, ${first!.ms.toFixed(0)} ms first image, ${warm!.ms.toFixed(0)} ms warm (${Object.entries(
        warm!.stages,
      )
        .map(([k, v]) => `${k} done at ${v.toFixed(0)}`)
        .join(", ")})`,
    );
  }

  it("toy export: labels equal the Node onnx backend's (model by URL)", async () => {
    writeToyExport(join(models, "toy"));
    await compare("toy", "cat; wall; floor, ground; blanket");
  });

  it("toy export picked as files: the same labels as by URL", async () => {
    const dir = join(models, "toy-files");
    writeToyExport(dir);
    const classes = "cat; wall; blanket";
    const [byFiles] = await segmentInPage(
      browser,
      `${server.url}/`,
      {
        files: ["manifest.json", "text.onnx", "view.onnx"].map((f) => join(dir, f)),
      },
      IMAGE,
      classes,
    );
    const [byUrl] = await segmentInPage(browser, `${server.url}/`, "/models/toy-files/", IMAGE, classes);
    assert.deepEqual(byFiles!.labels, byUrl!.labels);
  });

  it("dedos export of a tiny CAT-Seg: labels equal the Node onnx backend's (and 12 > pad_len classes, opt-in)", async () => {
    const exp = exportTiny("catseg", 3);
    renameSync(exp.dir, join(models, "catseg"));
    await compare("catseg", "cat; wall; floor, ground; blanket");
    // The top-k graph (12 classes > pad_len 8): half a minute more, opt-in like the other slow checks.
    if (process.env.DEDOS_SLOW_TESTS === "1")
      await compare("catseg", "cat; wall; floor; blanket; person; sky; tree; road; car; dog; grass; water");
  });
});
