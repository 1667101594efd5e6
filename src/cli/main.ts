#!/usr/bin/env node
// The `dedos` command. Each subcommand lives in its own file; this one only dispatches.
import { packageVersion } from "./version.js";

type Command = (argv: string[]) => Promise<number>;

// Each command is imported when it runs, so --help, --version and doctor never load the engine.
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  segment: {
    summary: "label every pixel of images with free-text classes (CAT-Seg, DEDOS)",
    load: async () => (await import("./segment.js")).segmentCommand,
  },
  eval: {
    summary: "evaluate on a prepared benchmark (mIoU, per-class IoU tables)",
    load: async () => (await import("./eval.js")).evalCommand,
  },
  demo: {
    summary: "label a bundled image with CLIP end to end (writes a colour overlay)",
    load: async () => (await import("./demo.js")).demoCommand,
  },
  prepare: {
    summary: "convert downloaded benchmark datasets into the evaluation layout",
    load: async () => (await import("./prepare.js")).prepareCommand,
  },
  train: {
    summary: "train DEDOS (or CAT-Seg) on a prepared dataset, on one or several processes",
    load: async () => (await import("./train.js")).trainCommand,
  },
  parity: {
    summary: "check TypeScript modules against reference fixture directories",
    load: async () => (await import("./parity.js")).parityCommand,
  },
  weights: {
    summary: "list, fetch and verify real weights by name (cached)",
    load: async () => (await import("./weights.js")).weightsCommand,
  },
  doctor: {
    summary: "print versions, libtorch, BLAS, threads and CUDA (for bug reports)",
    load: async () => (await import("./doctor.js")).doctorCommand,
  },
};

const HELP = `dedos — open-vocabulary semantic segmentation (DEDOS / CAT-Seg) for TypeScript, on libtorch

Usage: dedos <command> [options]     (dedos <command> --help for details; dedos --version)

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
  if (cmd === "--version" || cmd === "-v" || cmd === "version") {
    console.log(packageVersion());
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`dedos: unknown command '${cmd}'\n\n${HELP}`);
    return 2;
  }
  return (await c.load())(rest);
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
