// npm run build:web → web/dist/: the page (index.html), its bundle (main.js: the page's code and the
// library's engine-free modules, with onnxruntime-web), onnxruntime-web's wasm files next to it, and the CLIP
// vocabulary. Type-checks the page first (web/tsconfig.json: DOM, no Node types).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const web = dirname(fileURLToPath(import.meta.url));
const root = dirname(web);
const out = join(web, "dist");

const tsc = spawnSync(
  process.execPath,
  [join(root, "node_modules/typescript/bin/tsc"), "-p", join(web, "tsconfig.json")],
  {
    stdio: "inherit",
  },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(web, "main.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outfile: join(out, "main.js"),
  sourcemap: true,
  // onnxruntime-web's build that loads its .wasm / .mjs from beside the bundle instead of inlining them.
  conditions: ["onnxruntime-web-use-extern-wasm"],
  logLevel: "warning",
});
copyFileSync(join(web, "index.html"), join(out, "index.html"));
const ortDist = dirname(
  createRequire(import.meta.url).resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm"),
);
for (const f of readdirSync(ortDist))
  if (/^ort-wasm-.*\.(wasm|mjs)$/.test(f)) copyFileSync(join(ortDist, f), join(out, f));
copyFileSync(
  join(root, "assets/vocab/bpe_simple_vocab_16e6.txt.gz"),
  join(out, "bpe_simple_vocab_16e6.txt.gz"),
);
console.log(`web page built: ${out}`);
