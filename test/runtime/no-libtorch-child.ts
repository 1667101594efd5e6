// Run by onnx-backend.test.ts in a child process whose DEDOS_NATIVE_ADDON names a file that does not exist:
// the onnx backend must segment without ever loading libtorch. Prints one JSON line.
import { Segmenter } from "../../src/api/segmenter.js";
import { loadAddon } from "../../src/torch/native.js";
import { pureRuntime, writeFakeExport } from "./fake-ort.js";
import { writeToyExport } from "./toy-export.js";

// real: the toy graphs on onnxruntime-node; else stand-in sessions in TypeScript.
const [dir, image, real] = process.argv.slice(2) as [string, string, string | undefined];
if (real) writeToyExport(dir);
else writeFakeExport(dir);
const seg = await Segmenter.create({
  backend: "onnx",
  model: dir,
  ...(real ? {} : { runtime: pureRuntime() }),
});
const r = await seg.segment(image, ["cat", "wall", "floor, ground"], { scores: true });
await seg.dispose();
let addon = "loaded";
try {
  loadAddon();
} catch (e) {
  addon = (e as Error).message;
}
console.log(JSON.stringify({ width: r.width, height: r.height, present: r.present.length, addon }));
