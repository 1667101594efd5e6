// The Segmenter's worker hand-off: per-image time through the worker thread (Segmenter.create) against the
// same model run in this thread (Segmenter.fromModel), same weights and image, interleaved rounds, medians.
// Usage: node dist/bench/segmenter.js [tiny|vitb_384] [rounds]
import { Segmenter } from "../src/api/segmenter.js";
import { catSegPreset } from "../src/catseg/config.js";
import { readImageRGB } from "../src/data/image-decode.js";
import { createModel } from "../src/models/factory.js";
import { TINY_CATSEG } from "../test/tiny-models.js";

const which = process.argv[2] ?? "tiny";
const rounds = Number(process.argv[3] ?? 5);
const config = which === "tiny" ? TINY_CATSEG : catSegPreset(which);
const image = await readImageRGB("assets/coco/000000039769.png");
const classes = "cat; sofa; remote; wall";

const worker = await Segmenter.create({ config, weights: "random", seed: 1 });
const model = createModel({ arch: "catseg", config, weights: "random", seed: 1 });
const local = Segmenter.fromModel(model);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = async (s: Segmenter) => {
  const t0 = performance.now();
  await s.segment(image, classes);
  return performance.now() - t0;
};
await time(worker); // warm both (text cache, allocator)
await time(local);
const w: number[] = [];
const l: number[] = [];
for (let r = 0; r < rounds; r++) {
  w.push(await time(worker));
  l.push(await time(local));
}
await worker.dispose();
model.dispose();
const [mw, ml] = [median(w), median(l)];
console.log(
  `${which}: worker ${mw.toFixed(1)} ms, in-thread ${ml.toFixed(1)} ms per image → hand-off ${(mw - ml).toFixed(1)} ms (${(((mw - ml) / ml) * 100).toFixed(1)} %)`,
);
