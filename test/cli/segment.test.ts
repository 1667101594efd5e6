import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { readLabelMap } from "../../src/data/labels.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

// A tiny CAT-Seg (same structure as vitb_384, small widths) so that the CLI runs in seconds.
const TINY = TINY_CATSEG;
// Windows of 32 px tiling a 64-px square (the geometry must tile exactly, as in CAT-Seg).
const cli = (args: string[]) =>
  spawnSync(process.execPath, ["dist/src/cli/main.js", ...args], { encoding: "utf8" });

describe("dedos segment", () => {
  const dir = tempDir("dedos-seg-");
  const config = join(dir, "tiny.json");
  writeFileSync(config, JSON.stringify(TINY));

  it("writes label maps of the input size, overlays whose legend lists exactly the classes present, and summaries", async () => {
    const out = join(dir, "out");
    const images = ["assets/voc/1_image.png", "assets/ade20k/images/ADE_val_00000001.jpg"];
    const r = cli([
      "segment",
      ...images,
      "--classes",
      "person; sky; grass, lawn; building; road",
      "--config",
      config,
      "--out",
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /RANDOM weights/);
    assert.match(r.stderr, /segment 2\/2 [\d.]+ img\/s/);
    for (const [img, name] of images.map(
      (p) => [p, p.replace(/^.*\//, "").replace(/\.[^.]+$/, "")] as const,
    )) {
      const meta = await sharp(img).metadata();
      const labels = await readLabelMap(join(out, `${name}.labels.png`));
      assert.deepEqual([labels.width, labels.height], [meta.width, meta.height]);
      const present = [...new Set(labels.data)].sort((a, b) => a - b);
      const summary = JSON.parse(readFileSync(join(out, `${name}.json`), "utf8"));
      assert.deepEqual(
        summary.present.map((p: { index: number }) => p.index).sort((a: number, b: number) => a - b),
        present,
      );
      assert.equal(
        summary.present.reduce((s: number, p: { pixels: number }) => s + p.pixels, 0),
        meta.width! * meta.height!,
      );
      const overlay = await sharp(join(out, `${name}.overlay.png`)).metadata();
      assert.equal(overlay.height, Math.max(meta.height!, 16 + 22 * (present.length + 1)));
    }
  });
  it("reports a bad image by name, skips it, and exits 1; refuses an empty class list", () => {
    const bad = join(dir, "broken.jpg");
    writeFileSync(bad, "not an image");
    const good = join(dir, "good.png");
    copyFileSync("assets/voc/23_image.png", good);
    const r = cli([
      "segment",
      bad,
      good,
      "--classes",
      "cat; dog",
      "--config",
      config,
      "--out",
      join(dir, "o2"),
    ]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /broken\.jpg: cannot decode image/);
    assert.match(r.stdout, /segmented 1\/2 image/);
    assert.notEqual(cli(["segment", good, "--classes", " ; ", "--config", config]).status, 0);
  });
});
