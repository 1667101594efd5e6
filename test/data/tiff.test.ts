// The grey TIFF codec (src/data/tiff.ts): our writer read back through sharp/libtiff with the stored values,
// the byte-order signatures, and the refusals (colour TIFFs, headers over the pixel limit).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { decodeTiffGrey, encodeTiffGrey, isTiff, MAX_TIFF_PIXELS } from "../../src/data/tiff.js";

describe("grey TIFF codec", () => {
  it("round-trips 8 and 16-bit label maps (65535 and 459 kept)", async () => {
    const w = 9;
    const h = 5;
    const u16 = Uint16Array.from({ length: w * h }, (_, i) => [65535, 459, 846, 0, 300][i % 5]!);
    const back16 = await decodeTiffGrey(encodeTiffGrey({ width: w, height: h, data: u16 }));
    assert.ok(back16.data instanceof Uint16Array);
    assert.deepEqual(back16, { width: w, height: h, data: u16 });
    const u8 = Uint8Array.from({ length: w * h }, (_, i) => (i * 29) % 256);
    const back8 = await decodeTiffGrey(encodeTiffGrey({ width: w, height: h, data: u8 }));
    assert.ok(back8.data instanceof Uint8Array);
    assert.deepEqual(back8, { width: w, height: h, data: u8 });
    assert.throws(
      () => encodeTiffGrey({ width: w, height: h, data: new Uint8Array(3) }),
      /encodeTiffGrey: 3 values for 9×5/,
    );
  });

  it("recognises both byte orders and nothing else", () => {
    assert.ok(isTiff(Buffer.from([0x49, 0x49, 42, 0])));
    assert.ok(isTiff(Buffer.from([0x4d, 0x4d, 0, 42])));
    assert.ok(!isTiff(Buffer.from([0x49, 0x49, 0, 42])));
    assert.ok(!isTiff(Buffer.from([0x89, 0x50, 0x4e, 0x47])));
    assert.ok(!isTiff(new Uint8Array(2)));
  });

  it("refuses colour TIFFs and headers over the pixel limit, naming the source", async () => {
    const rgb = await sharp({ create: { width: 3, height: 2, channels: 3, background: "#102030" } })
      .tiff()
      .toBuffer();
    await assert.rejects(
      decodeTiffGrey(rgb, "x.tif"),
      /x\.tif: cannot decode TIFF \(3 channels, expected 1\)/,
    );
    // our writer's IFD holds ImageWidth/ImageLength as LONGs: declare 60000×60000 over 45 bytes of strip
    assert.equal(MAX_TIFF_PIXELS, 0x3fff * 0x3fff);
    const small = encodeTiffGrey({ width: 9, height: 5, data: new Uint8Array(45) });
    const huge = Buffer.from(small);
    const ifd = huge.readUInt32LE(4);
    for (let k = 0; k < huge.readUInt16LE(ifd); k++) {
      const e = ifd + 2 + 12 * k;
      if ([256, 257, 278].includes(huge.readUInt16LE(e))) huge.writeUInt32LE(60000, e + 8);
    }
    await assert.rejects(decodeTiffGrey(huge, "huge.tif"), /huge\.tif: cannot decode TIFF \(.*pixel limit/);
  });
});
