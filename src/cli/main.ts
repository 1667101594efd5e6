#!/usr/bin/env node
// The `dedos` command. Each subcommand lives in its own file; this one only dispatches.
import { packageVersion } from "./version.js";

type Command = (argv: string[]) => Promise<number>;

// Command → what it does. Each lives in ./<command>.ts and exports `<command>Command`; it is imported when it
// runs, so --help, --version and doctor never load the engine.
const COMMANDS: Record<string, string> = {
  segment: "label every pixel of images with free-text classes (CAT-Seg, DEDOS)",
  eval: "evaluate on a prepared benchmark (mIoU, per-class IoU tables)",
  demo: "label a bundled image with CLIP end to end (writes a colour overlay)",
  prepare: "convert downloaded benchmark datasets into the evaluation layout",
  train: "train DEDOS (or CAT-Seg) on a prepared dataset, on one or several processes",
  parity: "check TypeScript modules against reference fixture directories",
  weights: "list, fetch and verify real weights by name (cached)",
  export: "write the model as ONNX graphs (text + view) for onnxruntime, checked against libtorch",
  doctor: "print versions, libtorch, BLAS, threads and CUDA (for bug reports)",
};

async function loadCommand(name: string): Promise<Command> {
  const module = (await import(`./${name}.js`)) as Record<string, Command>;
  return module[`${name}Command`]!;
}

const HELP = `dedos — open-vocabulary semantic segmentation (DEDOS / CAT-Seg) for TypeScript, on libtorch

Usage: dedos <command> [options]     (dedos <command> --help for details; dedos --version)

Commands:
${Object.entries(COMMANDS)
  .map(([k, summary]) => `  ${k.padEnd(10)} ${summary}`)
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
  if (!Object.hasOwn(COMMANDS, cmd)) {
    console.error(`dedos: unknown command '${cmd}'\n\n${HELP}`);
    return 2;
  }
  return (await loadCommand(cmd))(rest);
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
