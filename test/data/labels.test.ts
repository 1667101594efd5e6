// The label-map API (src/data/labels.ts): writing and reading prepared ground truth as PNG and TIFF.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { encodeTiffGrey, type LabelMap, readLabelMap, writeLabelMap } from "../../src/data/labels.js";

const TMP = mkdtempSync(join(tmpdir(), "dedos-labels-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

function tmpDir(name: string): string {
  const d = join(TMP, name);
  mkdirSync(d, { recursive: true });
  return d;
}

describe("label map files", () => {
  it("writes and reads 16-bit TIFF (65535 and 459 kept), 8-bit TIFF and PNG label maps atomically", async () => {
    const dir = tmpDir("codec");
    const w = 9;
    const h = 5;
    const u16: LabelMap = {
      width: w,
      height: h,
      data: Uint16Array.from({ length: w * h }, (_, i) => [65535, 459, 846, 0, 300][i % 5]!),
    };
    await writeLabelMap(join(dir, "a.tif"), u16);
    const back = await readLabelMap(join(dir, "a.tif"));
    assert.ok(back.data instanceof Uint16Array);
    assert.deepEqual(back, u16);
    const meta = await sharp(join(dir, "a.tif")).metadata();
    assert.equal(meta.depth, "ushort");
    const u8: LabelMap = {
      width: w,
      height: h,
      data: Uint8Array.from({ length: w * h }, (_, i) => (i * 29) % 256),
    };
    await writeLabelMap(join(dir, "b.tif"), u8);
    assert.deepEqual(await readLabelMap(join(dir, "b.tif")), u8);
    await writeLabelMap(join(dir, "c.png"), u8);
    assert.deepEqual(await readLabelMap(join(dir, "c.png")), u8);
    await writeLabelMap(join(dir, "d.png"), u16);
    assert.deepEqual(await readLabelMap(join(dir, "d.png")), u16);
    // a TIFF written by sharp/libtiff (LZW) reads back the same
    const lzw = await sharp(u16.data, { raw: { width: w, height: h, channels: 1 } })
      .toColourspace("grey16")
      .tiff({ compression: "lzw" })
      .toBuffer();
    writeFileSync(join(dir, "e.tif"), lzw);
    assert.deepEqual((await readLabelMap(join(dir, "e.tif"))).data, u16.data);
    assert.deepEqual(encodeTiffGrey(u16).subarray(0, 4), Buffer.from([0x49, 0x49, 42, 0]));
    await assert.rejects(readLabelMap(join(dir, "missing.png")), /missing\.png: cannot read \(ENOENT\)/);
  });
});
