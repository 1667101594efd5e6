// Argument values shared by several commands, parsed once.
import { type ParseArgsConfig, parseArgs } from "node:util";
import type { SegmenterOptions } from "../api/segmenter.js";

/** A `--model` value: catseg, dedos or absent. */
export function parseModelKind(m: string | undefined): SegmenterOptions["model"] {
  if (m === undefined || m === "catseg" || m === "dedos") return m;
  throw new Error(`--model must be catseg or dedos, got "${m}"`);
}

export type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;
const HELP_OPTION = { help: { type: "boolean", short: "h" } } as const;

/** A command's arguments: its options plus -h/--help, positionals allowed, unknown options refused. */
export function parseCommandArgs<const O extends OptionsConfig>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof HELP_OPTION & O }>> {
  return parseArgs({ args: argv, allowPositionals: true, options: { ...HELP_OPTION, ...options } });
}
