// Driving the browser page (web/) from tests: build it, launch a fresh headless Chromium, segment in the page
// like a user (model URL, image file, class names, the button) and read the page's result.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";

export const CHROMIUM = process.env.DEDOS_CHROMIUM ?? "/usr/bin/chromium";

/** What the page leaves on its window (web/main.ts). */
interface PageWindow {
  dedosResult?: PageResult;
  dedosError?: string;
}

export interface PageResult {
  width: number;
  height: number;
  labels: number[];
  ms: number;
  stages: Record<string, number>;
  providers: string[];
  /** Read from the page's canvas by `segmentInPage`. */
  canvas?: { width: number; height: number; rgb: number[] };
}

/**
 * Segments in the page: the model (a URL typed in, or files picked with the file input), image, classes,
 * click; waits for the page's result (or its error).
 */
export async function segmentInPage(
  browser: Browser,
  pageUrl: string,
  model: string | { files: string[] },
  image: string,
  classes: string,
  runs = 1,
  timeoutMs = 100_000,
) {
  const page = await browser.newPage();
  // 404s are the page probing for optional `*.onnx.data` files and a favicon.
  page.on(
    "console",
    (m) => m.type() === "error" && !/404/.test(m.text()) && console.error(`page: ${m.text()}`),
  );
  await page.goto(pageUrl, { waitUntil: "load" });
  type FileInput = { uploadFile(...paths: string[]): Promise<void> };
  if (typeof model === "string")
    await page.$eval("#model-url", (el, v) => ((el as unknown as { value: string }).value = v), model);
  else await ((await page.$("#model-files")) as unknown as FileInput).uploadFile(...model.files);
  await page.$eval("#classes", (el, v) => ((el as unknown as { value: string }).value = v), classes);
  await ((await page.$("#image")) as unknown as FileInput).uploadFile(image);
  const results: PageResult[] = [];
  for (let i = 0; i < runs; i++) {
    await page.click("#run");
    await page.waitForFunction(
      () =>
        (globalThis as unknown as PageWindow).dedosResult || (globalThis as unknown as PageWindow).dedosError,
      {
        timeout: timeoutMs,
        polling: 100,
      },
    );
    const error = await page.evaluate(() => (globalThis as unknown as PageWindow).dedosError);
    assert.equal(error, undefined, `the page failed: ${error}`);
    const result = (await page.evaluate(
      () => (globalThis as unknown as PageWindow).dedosResult,
    )) as PageResult;
    // What the canvas shows: its size, and the overlay's RGB at every 97th pixel of the image part.
    result.canvas = await page.evaluate(
      (w: number, h: number) => {
        const c = (
          globalThis as unknown as { document: { getElementById(id: string): unknown } }
        ).document.getElementById("out") as {
          width: number;
          height: number;
          getContext(k: string): { getImageData(...a: number[]): { data: Uint8ClampedArray } };
        };
        const px = c.getContext("2d").getImageData(0, 0, w, h).data;
        const rgb: number[] = [];
        for (let i = 0; i < w * h; i += 97) rgb.push(px[4 * i]!, px[4 * i + 1]!, px[4 * i + 2]!);
        return { width: c.width, height: c.height, rgb };
      },
      result.width,
      result.height,
    );
    results.push(result);
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
