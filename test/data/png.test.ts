// The PNG codec (src/data/png.ts): exact round trips, PNGs written by sharp/libpng and PIL, corrupt files,
// and the size cap that refuses a PNG before inflating more than its header declares.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { readLabelMap, vocPalette } from "../../src/data/labels.js";
import { decodePng, encodePng, MAX_PNG_PIXELS, pngToRgb } from "../../src/data/png.js";

describe("PNG codec", () => {
  it("round-trips 8-bit grey, 16-bit grey, palette and RGB PNGs; sharp agrees", async () => {
    const w = 13;
    const h = 7;
    const g8 = Uint8Array.from({ length: w * h }, (_, i) => (i * 37) % 256);
    const g16 = Uint16Array.from({ length: w * h }, (_, i) => (i * 4099) % 65536);
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 11) % 256);
    const d8 = decodePng(encodePng({ width: w, height: h, channels: 1, data: g8 }));
    assert.equal(d8.bitDepth, 8);
    assert.deepEqual(d8.data, g8);
    const d16 = decodePng(encodePng({ width: w, height: h, channels: 1, data: g16 }));
    assert.equal(d16.bitDepth, 16);
    assert.deepEqual(d16.data, g16);
    const pal = vocPalette();
    const idx = Uint8Array.from({ length: w * h }, (_, i) => [0, 1, 17, 255][i % 4]!);
    const dp = decodePng(encodePng({ width: w, height: h, channels: 1, data: idx, palette: pal }));
    assert.equal(dp.colorType, 3);
    assert.deepEqual(dp.data, idx);
    const d3 = decodePng(encodePng({ width: w, height: h, channels: 3, data: rgb }));
    assert.deepEqual(d3.data, rgb);
    // sharp reads our files the same way
    const s8 = await sharp(encodePng({ width: w, height: h, channels: 1, data: g8 }))
      .toColourspace("b-w")
      .raw()
      .toBuffer();
    assert.deepEqual(new Uint8Array(s8), g8);
    const sp = await sharp(encodePng({ width: w, height: h, channels: 1, data: idx, palette: pal }))
      .raw()
      .toBuffer();
    assert.deepEqual(new Uint8Array(sp), pngToRgb(dp));
  });
  it("decodes Adam7-interlaced and sub-byte PNGs written by sharp/libpng", async () => {
    const w = 19;
    const h = 11;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7) % 256);
    const inter = await sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } })
      .png({ progressive: true })
      .toBuffer();
    const d = decodePng(inter);
    assert.deepEqual(d.data, rgb);
    // a 2-colour palette image from sharp is written with a sub-byte bit depth
    const bw = Uint8Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3) % 3 === 0 ? 255 : 0));
    const pal = await sharp(Buffer.from(bw), { raw: { width: w, height: h, channels: 3 } })
      .png({ palette: true, colours: 2, dither: 0 })
      .toBuffer();
    const dp = decodePng(pal);
    assert.equal(dp.colorType, 3);
    assert.ok(dp.bitDepth < 8, `bit depth ${dp.bitDepth}`);
    assert.deepEqual(pngToRgb(dp), bw);
  });
  it("refuses corrupt PNGs with a reason", () => {
    const good = encodePng({ width: 4, height: 4, channels: 1, data: new Uint8Array(16) });
    const bad = Buffer.from(good);
    bad[bad.length - 20]! ^= 0xff;
    assert.throws(() => decodePng(bad), /CRC mismatch/);
    assert.throws(() => decodePng(good.subarray(0, 40)), /truncated|IEND/);
    assert.throws(() => decodePng(Buffer.from("not a png at all")), /bad signature/);
  });
});

/** `png` with its IHDR width and height replaced (CRC fixed). */
function withDeclaredSize(png: Uint8Array, width: number, height: number): Buffer {
  const b = Buffer.from(png);
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  return b;
}

/** `png` with its image data replaced by `raw` (filter bytes included), deflated. */
function withImageData(png: Uint8Array, raw: Uint8Array): Buffer {
  const b = Buffer.from(png);
  const ihdrEnd = 8 + 12 + 13;
  const z = deflateSync(raw);
  const idat = Buffer.alloc(12 + z.length);
  idat.writeUInt32BE(z.length, 0);
  idat.write("IDAT", 4, "latin1");
  z.copy(idat, 8);
  idat.writeUInt32BE(crc32(idat.subarray(4, 8 + z.length)), 8 + z.length);
  const iend = b.subarray(b.length - 12);
  return Buffer.concat([b.subarray(0, ihdrEnd), idat, iend]);
}

describe("PNG size cap", () => {
  const small = encodePng({ width: 4, height: 4, channels: 1, data: new Uint8Array(16) });

  it("refuses a header declaring more than MAX_PNG_PIXELS before inflating, naming the size", async () => {
    assert.equal(MAX_PNG_PIXELS, 0x3fff * 0x3fff);
    const huge = withDeclaredSize(small, 60000, 60000);
    assert.throws(
      () => decodePng(huge),
      /PNG: declared size 60000×60000 \(8-bit, 1 channel\) is over the limit of 268402689 pixels; not inflating it/,
    );
    // through the label-map reader the error also names the file
    const dir = mkdtempSync(join(tmpdir(), "dedos-png-"));
    try {
      writeFileSync(join(dir, "huge.png"), huge);
      await assert.rejects(readLabelMap(join(dir, "huge.png")), /huge\.png: PNG: declared size 60000×60000/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // at the limit the header itself is accepted (the data is then too short)
    assert.throws(() => decodePng(withDeclaredSize(small, 0x3fff, 0x3fff)), /image data too short/);
  });

  it("stops inflating at the byte count the declared size implies (a small file cannot inflate to gigabytes)", () => {
    // 4×4 8-bit grey: 4 rows of 1 filter byte + 4 samples = 20 bytes; a 64 MiB stream of zeros is refused.
    const bomb = withImageData(small, new Uint8Array(64 << 20));
    assert.ok(bomb.length < 100_000, `${bomb.length} bytes`);
    assert.throws(
      () => decodePng(bomb),
      /PNG: image data inflates to more than the 20 bytes its declared size 4×4 \(8-bit\) holds/,
    );
    // exactly the declared amount decodes
    const exact = decodePng(
      withImageData(
        small,
        Uint8Array.from({ length: 20 }, (_, i) => (i % 5 === 0 ? 0 : i)),
      ),
    );
    assert.deepEqual(Array.from(exact.data), [1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19]);
    // Adam7: the cap is the sum over the passes (4×4 8-bit grey: 2 + 2 + 3 + 6 + 10 bytes)
    const inter = Buffer.from(small);
    inter[28] = 1;
    const interlaced = withDeclaredSize(inter, 4, 4);
    assert.throws(() => decodePng(withImageData(interlaced, new Uint8Array(1000))), /more than the 23 bytes/);
    assert.deepEqual(decodePng(withImageData(interlaced, new Uint8Array(23))).data, new Uint8Array(16));
  });
});
