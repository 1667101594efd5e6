// Weight arguments of the CLI (--weights, --clip, --catseg, --sd, --clip-weights): a path, or a registered
// name fetched into the cache on first use, with a progress line on a TTY.
import { type FetchProgress, resolveWeights } from "../weights/index.js";
import { progressLine } from "./weights.js";

/** The local path of a weights argument (undefined stays undefined). */
export async function weightsArg(value: string | undefined): Promise<string | undefined> {
  if (value === undefined) return undefined;
  const tty = process.stderr.isTTY === true;
  let open = false;
  const onProgress = (p: FetchProgress) => {
    process.stderr.write(`\r${progressLine(p)}\x1b[K`);
    open = true;
  };
  try {
    return await resolveWeights(value, tty ? { onProgress } : {});
  } finally {
    if (open) process.stderr.write("\n");
  }
}
