#!/usr/bin/env node
// The `dedos` command. Each subcommand lives in its own file; this one only dispatches.
import { demoCommand } from "./demo.js";
import { evalCommand } from "./eval.js";
import { parityCommand } from "./parity.js";
import { prepareCommand } from "./prepare.js";
import { segmentCommand } from "./segment.js";
import { trainCommand } from "./train.js";

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  segment: { summary: "label every pixel of images with free-text classes (CAT-Seg)", run: segmentCommand },
  eval: { summary: "evaluate on a prepared benchmark (mIoU, per-class IoU tables)", run: evalCommand },
  demo: { summary: "label a bundled image with CLIP end to end (writes a colour overlay)", run: demoCommand },
  prepare: {
    summary: "convert downloaded benchmark datasets into the evaluation layout",
    run: prepareCommand,
  },
  train: {
    summary: "train DEDOS (or CAT-Seg) on a prepared dataset, on one or several processes",
    run: trainCommand,
  },
  parity: { summary: "check TypeScript modules against reference fixture directories", run: parityCommand },
};

const HELP = `dedos — open-vocabulary semantic segmentation (DEDOS / CAT-Seg) for TypeScript, on libtorch

Usage: dedos <command> [options]     (dedos <command> --help for details)

Commands:
${Object.entries(COMMANDS)
  .map(([k, v]) => `  ${k.padEnd(10)} ${v.summary}`)
  .join("\n")}
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(HELP);
    return cmd ? 0 : 1;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`dedos: unknown command '${cmd}'\n\n${HELP}`);
    return 2;
  }
  return c.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    console.error(`dedos: ${e.message}`);
    process.exitCode = 1;
  },
);
