// Hostile and awkward images: a decompression bomb is refused from its header with bounded memory; a thin
// image is refused by name and does not poison the images after it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { Segmenter } from "../../src/api/segmenter.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const dir = tempDir("dedos-reliability-images-");

describe("hostile images", () => {
  it("a 16000² PNG bomb (under 1 MB) is refused before decoding, at bounded memory", async () => {
    const bomb = join(dir, "bomb.png");
    await sharp({ create: { width: 16000, height: 16000, channels: 3, background: "#888" } })
      .png({ compressionLevel: 9 })
      .toFile(bomb);
    // In a child process, so that its peak RSS is the load's own.
    const script = `import("${join(PACKAGE_ROOT, "dist/src/data/image-decode.js")}").then((m) => m.readImageRGB(process.argv[1])).then(
      () => console.log("decoded"), (e) => console.log(e.message)).finally(() => console.log("maxRSS " + process.resourceUsage().maxRSS));`;
    const r = spawnSync(process.execPath, ["-e", script, bomb], { encoding: "utf8" });
    assert.match(
      r.stdout,
      /bomb\.png: 16000×16000 = 256 megapixels is over the limit of 100 \(set DEDOS_MAX_IMAGE_PIXELS/,
    );
    const rssMb = Number(/maxRSS (\d+)/.exec(r.stdout)![1]) / 1024;
    assert.ok(rssMb < 300, `peak RSS ${rssMb.toFixed(0)} MB`);
  });

  it("a 20000×1 image is refused by name; the images after it still segment", async () => {
    const thin = join(dir, "thin.png");
    await sharp({ create: { width: 20000, height: 1, channels: 3, background: "#888" } })
      .png()
      .toFile(thin);
    const seg = await Segmenter.create({ config: TINY_CATSEG, weights: "random" });
    await assert.rejects(seg.segment(thin, "sky; road"), /20000×1 px cannot be resized/);
    for (const good of ["assets/images/chelsea.png", "assets/images/coffee.png"]) {
      const r = await seg.segment(good, "sky; road");
      assert.equal(r.labels.length, r.width * r.height);
    }
    await seg.dispose();
  });
});
