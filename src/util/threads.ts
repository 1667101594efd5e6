// The default thread count of both engines (libtorch and onnxruntime), without loading either.
import { availableParallelism } from "node:os";

/** DEDOS_NUM_THREADS when it is a count ≥ 1, else every core. */
export function defaultNumThreads(): number {
  const n = Math.floor(Number(process.env.DEDOS_NUM_THREADS));
  return n >= 1 ? n : availableParallelism();
}
