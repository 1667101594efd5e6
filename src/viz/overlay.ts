// Pictures of a labelling: colour overlay with a legend (colour, name, pixel share), and indexed label PNGs.

import sharp, { type Sharp } from "sharp";
import type { RgbImage } from "../data/image-decode.js";
import { writeAtomicWith, writeFileAtomic } from "../util/fs.js";
import { classColor } from "./palette.js";

export interface ClassShare {
  index: number;
  name: string;
  pixels: number;
  share: number;
}

/** Pixel count and share of every class present in `labels`, largest first. */
export function classShares(labels: ArrayLike<number>, names: readonly string[]): ClassShare[] {
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
  return [...counts]
    .map(([index, pixels]) => ({
      index,
      name: names[index] ?? `class ${index}`,
      pixels,
      share: pixels / labels.length,
    }))
    .sort((a, b) => b.pixels - a.pixels || a.index - b.index);
}

function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** Writes `file` atomically (util/fs.ts). */
async function writeAtomic(file: string, img: Sharp): Promise<void> {
  // sharp picks the format from the extension: name it explicitly, the temporary name has none.
  await writeAtomicWith(file, async (tmp) => void (await img.png().toFile(tmp)));
}

export interface OverlayOptions {
  /** Weight of the class colour over the image (default 0.5). */
  opacity?: number;
  /** Draw the legend (classes present, largest first, with their share) to the right (default true). */
  legend?: boolean;
  /** A bold first line of the legend. */
  title?: string;
}

/**
 * An overlay as PNG bytes: the image with each pixel's class colour blended in (`opacity`), and to its right
 * a legend listing the classes present with their pixel share.
 * @example
 *   const r = await seg.segment("street.jpg", "road; car; sky");
 *   writeFileSync("street.overlay.png", (await renderOverlay(await readImageRGB("street.jpg"), r.labels, r.classes)).png);
 */
export async function renderOverlay(
  image: RgbImage,
  labels: ArrayLike<number>,
  names: readonly string[],
  o: OverlayOptions = {},
): Promise<{ png: Buffer; shares: ClassShare[] }> {
  const { width: W, height: H } = image;
  if (labels.length !== W * H)
    throw new Error(`renderOverlay: ${labels.length} labels for a ${W}×${H} image`);
  const a = o.opacity ?? 0.5;
  const out = new Uint8Array(W * H * 3);
  const colors = new Map<number, [number, number, number]>();
  for (let i = 0; i < W * H; i++) {
    const k = labels[i]!;
    let c = colors.get(k);
    if (!c) {
      c = classColor(k);
      colors.set(k, c);
    }
    for (let ch = 0; ch < 3; ch++)
      out[i * 3 + ch] = Math.round(image.data[i * 3 + ch]! * (1 - a) + c[ch]! * a);
  }
  const shares = classShares(labels, names);
  const pixels = {
    input: Buffer.from(out.buffer, out.byteOffset, out.length),
    raw: { width: W, height: H, channels: 3 as const },
    left: 0,
    top: 0,
  };
  if (o.legend === false)
    return { png: await sharp(pixels.input, { raw: pixels.raw }).png().toBuffer(), shares };
  const legend = legendSvg(shares, H, o.title);
  const canvas = sharp({
    create: {
      width: W + legend.width,
      height: Math.max(H, legend.height),
      channels: 3,
      background: "#ffffff",
    },
  }).composite([pixels, { input: Buffer.from(legend.svg), left: W, top: 0 }]);
  return { png: await canvas.png().toBuffer(), shares };
}

/** The legend as SVG: one row per class present (colour box, name, share), an optional title first. */
function legendSvg(shares: ClassShare[], minHeight: number, title?: string) {
  const row = 22;
  const width = 260;
  const height = Math.max(minHeight, 16 + row * (shares.length + (title ? 1 : 0)));
  const lines: string[] = [];
  let y = 8;
  if (title) {
    lines.push(
      `<text x="10" y="${y + 15}" font-family="DejaVu Sans, sans-serif" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
    );
    y += row;
  }
  for (const s of shares) {
    const [r, g, b] = classColor(s.index);
    const label = `${s.name.length > 26 ? `${s.name.slice(0, 25)}…` : s.name}  ${(s.share * 100).toFixed(1)}%`;
    lines.push(`<rect x="10" y="${y + 3}" width="16" height="16" fill="rgb(${r},${g},${b})" stroke="#333"/>`);
    lines.push(
      `<text x="34" y="${y + 16}" font-family="DejaVu Sans, sans-serif" font-size="13">${escapeXml(label)}</text>`,
    );
    y += row;
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>${lines.join("")}</svg>`;
  return { svg, width, height };
}

/** Writes {@link renderOverlay}'s PNG to `file`, atomically; returns the classes present. */
export async function writeOverlay(
  file: string,
  image: RgbImage,
  labels: ArrayLike<number>,
  names: readonly string[],
  o: OverlayOptions = {},
): Promise<ClassShare[]> {
  const { png, shares } = await renderOverlay(image, labels, names, o);
  await writeFileAtomic(file, png);
  return shares;
}

/** Writes class indices as a greyscale PNG (8-bit; 16-bit when an index exceeds 255). */
export async function writeLabelPng(
  file: string,
  labels: ArrayLike<number>,
  width: number,
  height: number,
): Promise<void> {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > max) max = labels[i]!;
  if (max <= 255) {
    const buf = Buffer.from(Uint8Array.from(labels));
    await writeAtomic(file, sharp(buf, { raw: { width, height, channels: 1 } }).toColourspace("b-w"));
  } else {
    // 16-bit samples go in as a 2-byte-per-pixel raw image of type ushort.
    const buf = Buffer.from(Uint16Array.from(labels).buffer);
    await writeAtomic(
      file,
      sharp(buf, {
        raw: { width, height, channels: 1, depth: "ushort" } as unknown as {
          width: number;
          height: number;
          channels: 1;
        },
      }).toColourspace("grey16"),
    );
  }
}
