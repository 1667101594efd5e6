import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { tempDir } from "../temp-dir.js";

const cli = (args: string[]) =>
  spawnSync(process.execPath, ["dist/src/cli/main.js", ...args], { encoding: "utf8" });

describe("dedos CLI", () => {
  it("demo writes a label PNG of the image's size, an overlay with a legend, and a summary", async () => {
    const out = tempDir("dedos-demo-");
    const r = cli([
      "demo",
      "--image",
      "assets/voc/1_image.png",
      "--classes",
      "person; sky; grass",
      "--out",
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /RANDOM weights/);
    const labels = await sharp(join(out, "1_image.labels.png")).metadata();
    assert.deepEqual([labels.width, labels.height, labels.channels], [513, 513, 1]);
    const overlay = await sharp(join(out, "1_image.overlay.png")).metadata();
    assert.equal(overlay.height, 513);
    assert.ok(overlay.width! > 513, "legend to the right of the image");
    const summary = JSON.parse(readFileSync(join(out, "1_image.json"), "utf8"));
    assert.deepEqual(summary.classes, ["person", "sky", "grass"]);
    const total = summary.present.reduce((s: number, p: { share: number }) => s + p.share, 0);
    assert.ok(Math.abs(total - 1) < 1e-3);
  });
  it("a corrupt image is an error naming the file; unknown commands and parity cases fail", () => {
    const r = cli(["demo", "--image", "package.json"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /package\.json: cannot decode image/);
    assert.equal(cli(["nonsense"]).status, 2);
    const p = cli(["parity", "test/fixtures/sd_unet_missing"]);
    assert.equal(p.status, 1);
  });
  it("parity passes on the cases it knows and prints max errors", () => {
    const r = cli([
      "parity",
      "test/fixtures/tokenizer",
      "test/fixtures/semseg_eval",
      "test/fixtures/clip_text",
      "test/fixtures/clip_vision",
    ]);
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /ok {3}outputs\.text_features: max abs error/);
    assert.match(r.stdout, /all passed/);
  });
});
