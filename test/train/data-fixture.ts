// Small synthetic training sets in the prepared COCO-Stuff layout, for the data pipeline tests.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { encodePng, writeLabelMap } from "../../src/data/labels.js";

export interface FixtureSample {
  name: string;
  width: number;
  height: number;
  rgb: Uint8Array;
  label: Uint8Array;
}

/** Sample k: (16 + 2k) × (12 + k) pixels, a colour gradient, labels in four blocks with an ignored corner. */
export function fixtureSample(k: number): FixtureSample {
  const width = 16 + 2 * k;
  const height = 12 + k;
  const rgb = new Uint8Array(width * height * 3);
  const label = new Uint8Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      rgb[3 * i] = (x * 13 + k * 29) & 255;
      rgb[3 * i + 1] = (y * 17 + k * 7) & 255;
      rgb[3 * i + 2] = (x * y + 3 * k) & 255;
      label[i] = y < 3 && x < 3 ? 255 : (x < width / 2 ? 0 : 2) + (y < height / 2 ? 0 : 1) + ((k * 5) % 160);
    }
  return { name: String(100000 + k).padStart(12, "0"), width, height, rgb, label };
}

/**
 * Writes n samples under root/coco-stuff/{images,annotations_detectron2}/<split>2017. Images are PNG bytes
 * under the .jpg name (sharp goes by content, so values stay exact) unless `jpeg` is set.
 */
export async function writeCocoFixture(
  root: string,
  n: number,
  o: { split?: string; jpeg?: boolean } = {},
): Promise<{ imageDir: string; gtDir: string; samples: FixtureSample[] }> {
  const split = `${o.split ?? "train"}2017`;
  const imageDir = join(root, "coco-stuff", "images", split);
  const gtDir = join(root, "coco-stuff", "annotations_detectron2", split);
  mkdirSync(imageDir, { recursive: true });
  mkdirSync(gtDir, { recursive: true });
  const samples: FixtureSample[] = [];
  for (let k = 0; k < n; k++) {
    const s = fixtureSample(k);
    const bytes = o.jpeg
      ? await sharp(Buffer.from(s.rgb), { raw: { width: s.width, height: s.height, channels: 3 } })
          .jpeg({ quality: 95 })
          .toBuffer()
      : encodePng({ width: s.width, height: s.height, channels: 3, data: s.rgb });
    writeFileSync(join(imageDir, `${s.name}.jpg`), bytes);
    await writeLabelMap(join(gtDir, `${s.name}.png`), { data: s.label, width: s.width, height: s.height });
    samples.push(s);
  }
  return { imageDir, gtDir, samples };
}
