// What an overlay picture shows, independent of how it is drawn (SVG + sharp in Node: overlay.ts; a canvas in
// the browser page): the classes present and their shares, the colour blend, the legend's names as drawn and
// its layout (rows, boxes, text positions, width). Free of Node modules.
import type { RgbImage } from "../data/rgb.js";
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

/** The image with each pixel's class colour blended in at `opacity` → RGB bytes (H, W, 3). */
export function blendOverlay(image: RgbImage, labels: ArrayLike<number>, opacity = 0.5): Uint8Array {
  const { width: W, height: H } = image;
  if (labels.length !== W * H) throw new Error(`overlay: ${labels.length} labels for a ${W}×${H} image`);
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
      out[i * 3 + ch] = Math.round(image.data[i * 3 + ch]! * (1 - opacity) + c[ch]! * opacity);
  }
  return out;
}

/** Whether XML 1.0 can hold code point `cp` at all (not even a character reference may name the others). */
export function xmlAllowed(cp: number): boolean {
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
 * The legend's font list: DejaVu Sans (Latin, Greek, Cyrillic, symbols), then Noto Sans CJK (Debian
 * fonts-noto-cjk) for Chinese, Japanese and Korean, then Noto Color Emoji (fonts-noto-color-emoji; librsvg
 * draws its emoji as black silhouettes). Fontconfig falls back to any other installed font after these.
 */
export const LEGEND_FONT_FAMILY = "DejaVu Sans, Noto Sans CJK SC, Noto Color Emoji, sans-serif";

/** Whether some font the legend can use has a glyph for a code point. */
export type FontCoverage = (cp: number) => boolean;

/** Characters that draw nothing by design (joiners, variation selectors, …): no glyph is needed. */
const IGNORABLE = /^\p{Default_Ignorable_Code_Point}$/u;

/**
 * A name as the legend draws it, at most `maxChars` code points ("…" after a cut, never inside a surrogate
 * pair). Characters that cannot be drawn are made readable: controls (and what XML forbids) are drawn as
 * U+FFFD, characters no font in `covers` has are kept (they show as boxes), and the code points of both
 * follow the name ("(U+1F431)", at most 4, then "…").
 */
export function legendLabel(name: string, maxChars: number, covers: FontCoverage): string {
  const chars = Array.from(name);
  const unreadable: string[] = [];
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    const drawable = !isControl(ch) && (cp <= 0x7e || IGNORABLE.test(ch) || covers(cp));
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

/** One legend row: a colour box and its text, in legend pixels (text y is the baseline). */
export interface LegendRow {
  box: { x: number; y: number; size: number };
  color: [number, number, number];
  text: { x: number; y: number };
  label: string;
}

/** The legend's geometry: size, an optional bold title, one row per class present. */
export interface LegendLayout {
  width: number;
  height: number;
  fontSize: number;
  title?: { x: number; y: number; text: string };
  rows: LegendRow[];
}

/**
 * The legend beside an overlay: one row per class present (colour box, name, share), an optional title first;
 * at least 260 px wide and wider for long (e.g. CJK) names, at most 1200; at least `minHeight` tall.
 */
export function legendLayout(
  shares: readonly ClassShare[],
  minHeight: number,
  covers: FontCoverage,
  title?: string,
): LegendLayout {
  const row = 22;
  const fontSize = 13;
  const height = Math.max(minHeight, 16 + row * (shares.length + (title ? 1 : 0)));
  const layout: LegendLayout = { width: 260, height, fontSize, rows: [] };
  let y = 8;
  if (title) {
    const text = legendLabel(title, 40, covers);
    layout.width = Math.max(layout.width, Math.ceil(20 + 1.1 * textWidth(text, fontSize)));
    layout.title = { x: 10, y: y + 15, text };
    y += row;
  }
  for (const s of shares) {
    const label = `${legendLabel(s.name, 26, covers)}  ${(s.share * 100).toFixed(1)}%`;
    layout.width = Math.max(layout.width, Math.ceil(44 + textWidth(label, fontSize)));
    layout.rows.push({
      box: { x: 10, y: y + 3, size: 16 },
      color: classColor(s.index),
      text: { x: 34, y: y + 16 },
      label,
    });
    y += row;
  }
  layout.width = Math.min(layout.width, 1200);
  return layout;
}
