// Class colours: well separated, deterministic, the same class index always gets the same colour.

/** RGB colour of class `i` (golden-angle hue steps, alternating lightness). */
export function classColor(i: number): [number, number, number] {
  const h = (i * 137.508) % 360;
  const s = 0.65 + 0.25 * ((i >> 1) % 2);
  const l = 0.45 + 0.15 * (i % 2);
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs(((h / 60) % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] =
    h < 60
      ? [c, x, 0]
      : h < 120
        ? [x, c, 0]
        : h < 180
          ? [0, c, x]
          : h < 240
            ? [0, x, c]
            : h < 300
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}
