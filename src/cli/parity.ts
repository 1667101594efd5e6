// `dedos parity <case-dir>...`
import { parseArgs } from "node:util";
import { knownCases, runParity } from "../parity/run.js";

const HELP = `dedos parity <case-dir>... — compare this library with reference outputs

Each directory holds case.json (its "case" field picks the module) and tensors.safetensors with
weights.*, inputs.* and outputs.* (format: test/fixtures/README.md). The weights are loaded through the
real checkpoint loaders, the module runs on the inputs, and every output's max error is printed against
the case's tolerance (|ours − reference| ≤ atol + rtol·|reference|). Exits 1 if any output misses or a
case is unknown.

Known cases: ${knownCases().join(", ")}

Examples:
  dedos parity test/fixtures/clip_text
  dedos parity test/fixtures/*/            # every bundled case
  dedos parity ~/my-reference-dump/        # your own PyTorch outputs in the same format
`;

export async function parityCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) {
    console.error(`dedos parity: no case directory given\n\n${HELP}`);
    return 2;
  }
  return (await runParity(positionals)) ? 0 : 1;
}
