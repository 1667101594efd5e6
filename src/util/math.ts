// Small numeric helpers shared across folders.

/** Round half to even (Python's and numpy's round(), C's rint() in the default rounding mode). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // JS rounds halves up; a half that landed on an odd number goes down instead
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
