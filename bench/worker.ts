// The dedos engine of bench/run.ts: serves the sampling protocol of bench/harness.ts (bench/sample.ts) for the
// cases of bench/cases-dedos.ts, one case per process (so the peak RSS is the case's own).
//   node dist/bench/worker.js      (requests on stdin, replies on stdout)

import { setNumThreads } from "../src/torch/index.js";
import { native } from "../src/torch/native.js";
import { DEDOS_CASES } from "./cases-dedos.js";
import { serve } from "./sample.js";

await serve(DEDOS_CASES, setNumThreads, () => ({
  blas: native.blasInfo(),
  inferencePaths: native.inferenceGemmAvailable(),
  env: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(OPENBLAS_|MALLOC_|OMP_)/.test(k))),
}));
