// The overlay on a canvas: the same colour blend, palette and legend layout as the PNG overlays of Node
// (src/viz/legend.ts), drawn with the 2D canvas API instead of SVG + sharp.
import type { RgbImage } from "../src/data/rgb.js";
import { blendOverlay, classShares, LEGEND_FONT_FAMILY, legendLayout } from "../src/viz/legend.js";

/** Draws image + class colours with the legend to its right; returns the classes present. */
export function drawOverlay(
  canvas: HTMLCanvasElement,
  image: RgbImage,
  labels: Uint16Array,
  names: readonly string[],
  title?: string,
) {
  const { width: W, height: H } = image;
  const shares = classShares(labels, names);
  // The browser falls back to any installed font per character, so every code point counts as covered.
  const legend = legendLayout(shares, H, () => true, title);
  canvas.width = W + legend.width;
  canvas.height = Math.max(H, legend.height);
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser has no 2D canvas");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const rgb = blendOverlay(image, labels, 0.5);
  const pixels = ctx.createImageData(W, H);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    pixels.data[j] = rgb[i]!;
    pixels.data[j + 1] = rgb[i + 1]!;
    pixels.data[j + 2] = rgb[i + 2]!;
    pixels.data[j + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  ctx.fillStyle = "#000";
  if (legend.title) {
    ctx.font = `bold ${legend.fontSize}px ${LEGEND_FONT_FAMILY}`;
    ctx.fillText(legend.title.text, W + legend.title.x, legend.title.y);
  }
  ctx.font = `${legend.fontSize}px ${LEGEND_FONT_FAMILY}`;
  for (const r of legend.rows) {
    const { x, y, size } = r.box;
    ctx.fillStyle = `rgb(${r.color.join(",")})`;
    ctx.fillRect(W + x, y, size, size);
    ctx.strokeStyle = "#333";
    ctx.strokeRect(W + x + 0.5, y + 0.5, size - 1, size - 1);
    ctx.fillStyle = "#000";
    ctx.fillText(r.label, W + r.text.x, r.text.y);
  }
  return shares;
}
