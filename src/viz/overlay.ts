// Pictures of a labelling: colour overlay with a legend (colour, name, pixel share), and indexed label PNGs.

import { execFileSync } from "node:child_process";
import sharp from "sharp";
import type { RgbImage } from "../data/image-decode.js";
import { encodePng } from "../data/png.js";
import { writeFileAtomic } from "../util/fs.js";
import {
  blendOverlay,
  type ClassShare,
  classShares,
  type FontCoverage,
  LEGEND_FONT_FAMILY,
  legendLabel,
  legendLayout,
  xmlAllowed,
} from "./legend.js";

export {
  blendOverlay,
  type ClassShare,
  classShares,
  type FontCoverage,
  LEGEND_FONT_FAMILY,
} from "./legend.js";

/**
 * `s` as XML character data / attribute text: the five markup characters as entities, and every character
 * XML 1.0 forbids (C0 controls but tab, LF and CR; lone surrogates; U+FFFE, U+FFFF) as U+FFFD. Everything
 * else is kept.
 */
export function escapeXml(s: string): string {
  let out = "";
  for (const ch of s) {
    // A lone surrogate comes out of the iteration as one code unit in D800–DFFF.
    const cp = ch.codePointAt(0)!;
    if (!xmlAllowed(cp)) out += "\uFFFD";
    else if (ch === "<") out += "&lt;";
    else if (ch === ">") out += "&gt;";
    else if (ch === "&") out += "&amp;";
    else if (ch === '"') out += "&quot;";
    else if (ch === "'") out += "&apos;";
    else out += ch;
  }
  return out;
}

// ---- fonts of the legend ----

/**
 * DejaVu Sans's character set (fontconfig's notation, ranges in hex, gaps under 16 code points closed): what
 * the legend assumes is installed when fontconfig's tools are not there to ask (fonts-dejavu-core is a
 * dependency of scripts/setup.sh).
 */
const DEJAVU_SANS_CHARSET =
  "20-7e a0-58a 5b0-5f4 606-6d5 6f0-6f9 7c0-7fa e3f e81-edd 10a0-10fc 1401-15af 15de-15e1 1646-1647 " +
  "166e-169c 1d00-1d85 1d9b-1dc9 1e00-20bd 20d0-20e1 2100-232c 2373-23ae 23ce-23cf 23e3-23e8 2422-2423 " +
  "2460-2469 2500-26c3 26e2 2701-27c6 27e0-290b 2940-2941 2983-2984 29ce-29d5 29eb-2a1c 2a2f 2a6a-2a6b " +
  "2a7d-2aba 2af9-2b24 2b53-2b54 2c60-2c7f 2d00-2d6f 2e18-2e2e 4dc0-4dff a4d0-a4ff a644-a66e a68a-a699 " +
  "a708-a767 a780-a7aa a7f8-a7ff fb00-fbad fbd3-fbe9 fbfc-fbff fe00-fe0f fe20-fe23 fe70-feff fff9-fffd " +
  "10300-10323 1d300-1d356 1d538-1d56b 1d5a0-1d5d3 1d7d8-1d7eb 1ee00-1ee3b 1ee61-1ee7e 1f030-1f0df " +
  "1f311-1f318 1f42d-1f435 1f600-1f643";

/** A coverage test from fontconfig charsets ("20-7e a0-2e9 …", any number of them, one font per line). */
export function coverageFromCharsets(text: string): FontCoverage {
  const ranges: [number, number][] = [];
  for (const tok of text.split(/\s+/)) {
    const m = /^([0-9a-f]+)(?:-([0-9a-f]+))?$/i.exec(tok);
    if (m) ranges.push([Number.parseInt(m[1]!, 16), Number.parseInt(m[2] ?? m[1]!, 16)]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return (cp) => {
    let lo = 0;
    let hi = merged.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = merged[mid]!;
      if (cp < a) hi = mid - 1;
      else if (cp > b) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

let installedCoverage: FontCoverage | undefined;

/**
 * What the installed fonts cover: the union of every font's charset as `fc-list` reports it (the SVG renderer
 * falls back to any installed font), asked once per process; DejaVu Sans alone when fontconfig's tools are
 * missing or fail.
 */
export function installedFontCoverage(): FontCoverage {
  if (!installedCoverage) {
    let text = "";
    try {
      text = execFileSync("fc-list", ["--format", "%{charset}\\n"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 10_000,
        maxBuffer: 64 << 20,
      });
    } catch {
      text = "";
    }
    installedCoverage = coverageFromCharsets(/[0-9a-f]/i.test(text) ? text : DEJAVU_SANS_CHARSET);
  }
  return installedCoverage;
}

/**
 * A name as the legend draws it ({@link legendLabel}), checking glyphs against `covers` (default: the
 * installed fonts, asked only when a name needs more than ASCII).
 */
export function legendText(name: string, maxChars: number, covers?: FontCoverage): string {
  return legendLabel(name, maxChars, covers ?? ((cp) => installedFontCoverage()(cp)));
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
  const out = blendOverlay(image, labels, o.opacity ?? 0.5);
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

/**
 * The legend as SVG: one row per class present (colour box, name, share), an optional title first. Names go
 * through {@link legendText} (controls and uncovered characters readable as code points) and
 * {@link escapeXml}; the legend is at least 260 px wide and wider for long (e.g. CJK) names. `covers` is the
 * font coverage (default: the installed fonts).
 */
export function legendSvg(
  shares: readonly ClassShare[],
  minHeight: number,
  title?: string,
  covers?: FontCoverage,
): { svg: string; width: number; height: number } {
  const font = `font-family="${LEGEND_FONT_FAMILY}" font-size="13"`;
  const {
    width,
    height,
    title: head,
    rows,
  } = legendLayout(shares, minHeight, covers ?? ((cp) => installedFontCoverage()(cp)), title);
  const lines: string[] = [];
  if (head)
    lines.push(`<text x="${head.x}" y="${head.y}" ${font} font-weight="bold">${escapeXml(head.text)}</text>`);
  for (const r of rows) {
    const { x, y, size } = r.box;
    lines.push(
      `<rect x="${x}" y="${y}" width="${size}" height="${size}" fill="rgb(${r.color.join(",")})" stroke="#333"/>`,
    );
    lines.push(`<text x="${r.text.x}" y="${r.text.y}" ${font}>${escapeXml(r.label)}</text>`);
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

/**
 * Class indices as greyscale PNG bytes: 8-bit, or 16-bit when an index exceeds 255 (the project's PNG codec:
 * sharp's raw 16-bit input garbled the values, 300 → 0, 65535 → 11308).
 */
export async function encodeLabelPng(
  labels: ArrayLike<number>,
  width: number,
  height: number,
): Promise<Buffer> {
  if (labels.length !== width * height)
    throw new Error(`encodeLabelPng: ${labels.length} labels for a ${width}×${height} image`);
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > max) max = labels[i]!;
  if (max > 65535) throw new Error(`encodeLabelPng: label ${max} does not fit 16 bits`);
  const data = max <= 255 ? Uint8Array.from(labels) : Uint16Array.from(labels);
  return encodePng({ width, height, channels: 1, data });
}

/** Writes class indices as a greyscale PNG (8-bit; 16-bit when an index exceeds 255), atomically. */
export async function writeLabelPng(
  file: string,
  labels: ArrayLike<number>,
  width: number,
  height: number,
): Promise<void> {
  await writeFileAtomic(file, await encodeLabelPng(labels, width, height));
}
