// The browser page (web/) in a real headless Chromium: built with `npm run build:web`, served with an export
// folder from a local HTTP server, driven like a user (model URL, image file, class names, the button). Its
// label map must equal the Node onnx backend's for the same export, image and classes; the page's time per
// image (WebAssembly: the test browser has no GPU) is printed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import puppeteer, { type Browser } from "puppeteer-core";
import { Segmenter } from "../../src/api/segmenter.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { writeToyExport } from "../runtime/toy-export.js";
import { tempDir } from "../temp-dir.js";
import { serveFolders } from "./static-server.js";

const CHROMIUM = process.env.DEDOS_CHROMIUM ?? "/usr/bin/chromium";
const IMAGE = join(PACKAGE_ROOT, "assets/images/chelsea.png");
const CLASSES = "cat; wall; floor, ground; blanket";

/** What the page leaves on its window (web/main.ts). */
interface PageWindow {
  dedosResult?: PageResult;
  dedosError?: string;
}

interface PageResult {
  width: number;
  height: number;
  labels: number[];
  ms: number;
  providers: string[];
}

/** Segments in the page: model URL, image, classes, click; waits for the page's result (or its error). */
export async function segmentInPage(
  browser: Browser,
  pageUrl: string,
  modelUrl: string,
  image: string,
  classes: string,
  runs = 1,
) {
  const page = await browser.newPage();
  // 404s are the page probing for optional `*.onnx.data` files and a favicon.
  page.on(
    "console",
    (m) => m.type() === "error" && !/404/.test(m.text()) && console.error(`page: ${m.text()}`),
  );
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.$eval("#model-url", (el, v) => ((el as unknown as { value: string }).value = v), modelUrl);
  await page.$eval("#classes", (el, v) => ((el as unknown as { value: string }).value = v), classes);
  const input = await page.$("#image");
  await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(image);
  const results: PageResult[] = [];
  for (let i = 0; i < runs; i++) {
    await page.click("#run");
    await page.waitForFunction(
      () =>
        (globalThis as unknown as PageWindow).dedosResult || (globalThis as unknown as PageWindow).dedosError,
      {
        timeout: 100_000,
        polling: 100,
      },
    );
    const error = await page.evaluate(() => (globalThis as unknown as PageWindow).dedosError);
    assert.equal(error, undefined, `the page failed: ${error}`);
    results.push(
      (await page.evaluate(() => (globalThis as unknown as PageWindow).dedosResult)) as PageResult,
    );
  }
  await page.close();
  return results;
}

/** A fresh headless Chromium (no GPU, no network services, its own profile). */
export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${tempDir("dedos-chromium-")}`,
    ],
  });
}

/** Builds web/dist (the page bundle, wasm files, vocabulary) as `npm run build:web` does. */
export function buildWeb(): void {
  const r = spawnSync(process.execPath, [join(PACKAGE_ROOT, "web/build.mjs")], { encoding: "utf8" });
  assert.equal(r.status, 0, `build:web failed\n${r.stdout}\n${r.stderr}`);
}

describe("web page in headless Chromium", {
  skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}`,
}, () => {
  let browser: Browser;
  let server: Awaited<ReturnType<typeof serveFolders>>;
  const model = tempDir("dedos-web-model-");
  before(async () => {
    buildWeb();
    writeToyExport(model);
    server = await serveFolders({ "/": join(PACKAGE_ROOT, "web/dist"), "/model/": model });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it("labels equal the Node onnx backend's for the same export, image and classes", async () => {
    const [first, warm] = await segmentInPage(browser, `${server.url}/`, "/model/", IMAGE, CLASSES, 2);
    const seg = await Segmenter.create({ backend: "onnx", model });
    const node = await seg.segment(IMAGE, CLASSES);
    await seg.dispose();
    for (const r of [first!, warm!]) {
      assert.equal(r.width, node.width);
      assert.equal(r.height, node.height);
      let same = 0;
      for (let i = 0; i < node.labels.length; i++) if (node.labels[i] === r.labels[i]) same++;
      assert.ok(same / node.labels.length >= 0.999, `${same} of ${node.labels.length} labels equal`);
    }
    console.log(
      `page (${first!.providers.join(", ")}): ${first!.width}×${first!.height}, ${first!.ms.toFixed(0)} ms first image, ${warm!.ms.toFixed(0)} ms warm`,
    );
  });
});
