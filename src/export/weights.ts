// Float16 weights: the graphs store every float32 parameter as float16 (followed by a Cast to float32). To
// check such a graph against libtorch exactly, libtorch runs on the same rounded weights for the duration of
// the export; the model's own float32 values are put back afterwards.
import { noGrad, type Tensor } from "../torch/tensor.js";

/** Runs `fn` with every float32 tensor of `params` rounded to float16 values, then restores them. */
export async function withRoundedWeights<T>(
  params: readonly [string, Tensor][],
  fn: () => Promise<T>,
): Promise<T> {
  const saved: [Tensor, Tensor][] = [];
  const seen = new Set<Tensor>();
  try {
    noGrad(() => {
      for (const [, p] of params) {
        if (p.dtype !== "float32" || seen.has(p)) continue;
        seen.add(p);
        const keep = p.clone().keep();
        saved.push([p, keep]);
        const half = p.to("float16");
        const back = half.to("float32");
        p.copy_(back);
        half.dispose();
        back.dispose();
      }
    });
    return await fn();
  } finally {
    noGrad(() => {
      for (const [p, orig] of saved) {
        p.copy_(orig);
        orig.dispose();
      }
    });
  }
}
