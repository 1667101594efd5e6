// Plain-JS references for the DEDOS loss tests: PyTorch's bilinear resize and grid_sample, by hand.

/** PyTorch's bilinear resize (align_corners = False) of one h × w map to H × W. */
export function upsample(m: number[], h: number, w: number, H: number, W: number): number[] {
  const src = (o: number, nIn: number, nOut: number) => {
    const s = Math.max((o + 0.5) * (nIn / nOut) - 0.5, 0);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, nIn - 1), s - i0] as const;
  };
  const out: number[] = [];
  for (let y = 0; y < H; y++) {
    const [y0, y1, ly] = src(y, h, H);
    for (let x = 0; x < W; x++) {
      const [x0, x1, lx] = src(x, w, W);
      out.push(
        (1 - ly) * ((1 - lx) * m[y0 * w + x0]! + lx * m[y0 * w + x1]!) +
          ly * ((1 - lx) * m[y1 * w + x0]! + lx * m[y1 * w + x1]!),
      );
    }
  }
  return out;
}

/** grid_sample(align_corners = False, zeros) of one (H, W) map at (x, y) ∈ [0, 1]². */
export function bilinearRef(map: number[], H: number, W: number, x: number, y: number): number {
  const ix = x * W - 0.5;
  const iy = y * H - 0.5;
  const x0 = Math.floor(ix);
  const y0 = Math.floor(iy);
  let v = 0;
  for (const [xx, wx] of [
    [x0, 1 - (ix - x0)],
    [x0 + 1, ix - x0],
  ] as const)
    for (const [yy, wy] of [
      [y0, 1 - (iy - y0)],
      [y0 + 1, iy - y0],
    ] as const)
      if (xx >= 0 && xx < W && yy >= 0 && yy < H) v += wx * wy * map[yy * W + xx]!;
  return v;
}
