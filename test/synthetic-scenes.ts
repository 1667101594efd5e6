// Synthetic named scenes for training tests: sky above a wavy horizon of striped grass, a red ball somewhere,
// pixel noise everywhere. Every image is reproducible from its index; the label map is exact.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodePng, writeLabelMap } from "../src/data/labels.js";

export const SCENE_CLASSES = ["sky", "grass", "red ball"];

export interface Scene {
  name: string;
  width: number;
  height: number;
  /** HWC RGB. */
  rgb: Uint8Array;
  /** Class per pixel (0 sky, 1 grass, 2 ball). */
  label: Uint8Array;
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeScene(index: number, size = 32): Scene {
  const r = prng(1000 + index * 7919);
  const w = size;
  const h = size;
  const rgb = new Uint8Array(w * h * 3);
  const label = new Uint8Array(w * h);
  const horizon = h * (0.35 + 0.3 * r());
  const amp = 1 + 3 * r();
  const phase = 6.28 * r();
  const cx = w * (0.2 + 0.6 * r());
  const cy = h * (0.2 + 0.6 * r());
  const rad = size * (0.12 + 0.12 * r());
  const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v)));
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const noise = () => (r() - 0.5) * 40;
      let cls: number;
      let c: [number, number, number];
      if ((x - cx) ** 2 + (y - cy) ** 2 <= rad * rad) {
        cls = 2;
        c = [200, 40, 40];
      } else if (y > horizon + amp * Math.sin(x / 3 + phase)) {
        cls = 1;
        const stripe = (x + y) % 4 < 2 ? 30 : -10;
        c = [60, 150 + stripe, 50];
      } else {
        cls = 0;
        c = [110 + y * 2, 160 + y, 230];
      }
      label[i] = cls;
      rgb[3 * i] = clamp(c[0] + noise());
      rgb[3 * i + 1] = clamp(c[1] + noise());
      rgb[3 * i + 2] = clamp(c[2] + noise());
    }
  return { name: String(500000 + index).padStart(12, "0"), width: w, height: h, rgb, label };
}

/**
 * Writes scenes [first, first + n) as a prepared COCO-Stuff-171 split (coco-stuff/images/<split>2017 PNG
 * bytes under .jpg names, coco-stuff/annotations_detectron2/<split>2017 label PNGs).
 */
export async function writeScenes(
  root: string,
  first: number,
  n: number,
  split = "train",
  size = 32,
): Promise<Scene[]> {
  const imageDir = join(root, "coco-stuff", "images", `${split}2017`);
  const gtDir = join(root, "coco-stuff", "annotations_detectron2", `${split}2017`);
  mkdirSync(imageDir, { recursive: true });
  mkdirSync(gtDir, { recursive: true });
  const out: Scene[] = [];
  for (let k = first; k < first + n; k++) {
    const s = makeScene(k, size);
    writeFileSync(
      join(imageDir, `${s.name}.jpg`),
      encodePng({ width: s.width, height: s.height, channels: 3, data: s.rgb }),
    );
    await writeLabelMap(join(gtDir, `${s.name}.png`), { data: s.label, width: s.width, height: s.height });
    out.push(s);
  }
  return out;
}
