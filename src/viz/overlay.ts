// Pictures of a labelling: colour overlay with a legend (colour, name, pixel share), and indexed label PNGs.

import { execFileSync } from "node:child_process";
import sharp from "sharp";
import type { RgbImage } from "../data/image-decode.js";
import { encodePng } from "../data/png.js";
import { writeFileAtomic } from "../util/fs.js";
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

/** Whether XML 1.0 can hold code point `cp` at all (not even a character reference may name the others). */
function xmlAllowed(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    cp >= 0x10000
  );
}

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
 * The legend's font list: DejaVu Sans (Latin, Greek, Cyrillic, symbols), then Noto Sans CJK (Debian
 * fonts-noto-cjk) for Chinese, Japanese and Korean, then Noto Color Emoji (fonts-noto-color-emoji; librsvg
 * draws its emoji as black silhouettes). Fontconfig falls back to any other installed font after these.
 */
export const LEGEND_FONT_FAMILY = "DejaVu Sans, Noto Sans CJK SC, Noto Color Emoji, sans-serif";

/** Whether some font the legend can use has a glyph for a code point. */
export type FontCoverage = (cp: number) => boolean;

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

/** Characters that draw nothing by design (joiners, variation selectors, …): no glyph is needed. */
const IGNORABLE = /^\p{Default_Ignorable_Code_Point}$/u;

/**
 * A name as the legend draws it, at most `maxChars` code points ("…" after a cut, never inside a surrogate
 * pair). Characters that cannot be drawn are made readable: controls (and what XML forbids) are drawn as
 * U+FFFD, characters no installed font covers are kept (they show as boxes), and the code points of both
 * follow the name ("(U+1F431)", at most 4, then "…").
 */
export function legendText(name: string, maxChars: number, covers?: FontCoverage): string {
  const chars = Array.from(name);
  const unreadable: string[] = [];
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    const drawable =
      !isControl(ch) && (cp <= 0x7e || IGNORABLE.test(ch) || (covers ?? installedFontCoverage())(cp));
    const u = `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
    if (!drawable && !unreadable.includes(u)) unreadable.push(u);
  }
  const shown = chars.length > maxChars ? [...chars.slice(0, maxChars - 1), "…"] : chars;
  const text = shown.map((ch) => (isControl(ch) ? "\uFFFD" : ch)).join("");
  if (unreadable.length === 0) return text;
  const list = unreadable.length > 4 ? [...unreadable.slice(0, 4), "…"] : unreadable;
  return `${text} (${list.join(" ")})`;
}

/** A control character (C0, DEL, C1) or one XML forbids: drawn as U+FFFD. */
function isControl(ch: string): boolean {
  return !xmlAllowed(ch.codePointAt(0)!) || /^\p{Cc}$/u.test(ch);
}

/** Characters drawn about a full em wide: CJK ideographs, kana, Hangul, emoji, full-width forms. */
const WIDE =
  /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Extended_Pictographic}\u3000-\u303f\uff01-\uff60\uffe0-\uffe6]$/u;

/** A rough width of `text` in DejaVu Sans / Noto at `px` (wide characters a full em, the rest about 0.62). */
function textWidth(text: string, px: number): number {
  let w = 0;
  for (const ch of text) w += WIDE.test(ch) ? px : 0.62 * px;
  return w;
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
  const row = 22;
  const height = Math.max(minHeight, 16 + row * (shares.length + (title ? 1 : 0)));
  const lines: string[] = [];
  let width = 260;
  let y = 8;
  if (title) {
    const text = legendText(title, 40, covers);
    width = Math.max(width, Math.ceil(20 + 1.1 * textWidth(text, 13)));
    lines.push(
      `<text x="10" y="${y + 15}" font-family="${LEGEND_FONT_FAMILY}" font-size="13" font-weight="bold">${escapeXml(text)}</text>`,
    );
    y += row;
  }
  for (const s of shares) {
    const [r, g, b] = classColor(s.index);
    const label = `${legendText(s.name, 26, covers)}  ${(s.share * 100).toFixed(1)}%`;
    width = Math.max(width, Math.ceil(44 + textWidth(label, 13)));
    lines.push(`<rect x="10" y="${y + 3}" width="16" height="16" fill="rgb(${r},${g},${b})" stroke="#333"/>`);
    lines.push(
      `<text x="34" y="${y + 16}" font-family="${LEGEND_FONT_FAMILY}" font-size="13">${escapeXml(label)}</text>`,
    );
    y += row;
  }
  width = Math.min(width, 1200);
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
