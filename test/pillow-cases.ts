// Pillow-made references of detectron2's test-time resize (test/data/resize/pillow-resize.json, written by
// scripts/make-test-resize.py): the cases and their source images, for the resize and inference tests.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { type RgbImage, readImageRGB } from "../src/data/image-decode.js";

export interface PillowCase {
  what: string;
  source: string;
  crop: [number, number, number, number] | null;
  size: [number, number];
  shortSide: number;
  maxSize: number;
  resized: [number, number];
  sha256: string;
  bytes?: string;
}

export const PILLOW_CASES: PillowCase[] = JSON.parse(
  readFileSync("test/data/resize/pillow-resize.json", "utf8"),
).cases;

/** The case's source image, decoded and cropped as the script did (PIL's crop box: left, top, right, bottom). */
export async function pillowSource(c: PillowCase): Promise<RgbImage> {
  const img = await readImageRGB(c.source);
  if (!c.crop) return img;
  const [l, t, r, b] = c.crop;
  const w = r - l;
  const data = new Uint8Array(w * (b - t) * 3);
  for (let y = t; y < b; y++)
    data.set(img.data.subarray((y * img.width + l) * 3, (y * img.width + r) * 3), (y - t) * w * 3);
  return { width: w, height: b - t, data };
}

export const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
