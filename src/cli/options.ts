// Argument values shared by several commands, parsed once.
import type { SegmenterOptions } from "../api/segmenter.js";

/** A `--model` value: catseg, dedos or absent. */
export function parseModelKind(m: string | undefined): SegmenterOptions["model"] {
  if (m === undefined || m === "catseg" || m === "dedos") return m;
  throw new Error(`--model must be catseg or dedos, got "${m}"`);
}
