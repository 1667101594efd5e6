// The package as a user gets it: `npm pack`, `npm install <tarball>` into a fresh app (the install builds
// the native addon), `import "dedos"` by name, a TypeScript consumer type-checked under nodenext and bundler
// resolution, `dedos --version`, a tiny-config `dedos segment`, and every README snippet run as written
// (against random full-size weights saved under the real file names, so the snippets need no edits).
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import sharp from "sharp";
import { catSegPreset } from "../../src/catseg/config.js";
import { catsegStateDict } from "../../src/catseg/weights.js";
import { createModel } from "../../src/models/factory.js";
import { saveSafetensors } from "../../src/torch/io/load.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const work = tempDir("dedos-package-");
const app = join(work, "app");
const version = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version as string;
const MAX_PACKED = 4 * 1024 * 1024;

function run(
  cmd: string,
  args: string[],
  o: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {},
) {
  const r = spawnSync(cmd, args, {
    cwd: o.cwd ?? app,
    encoding: "utf8",
    timeout: o.timeout ?? 600_000,
    env: { ...process.env, ...o.env },
  });
  return { status: r.status, out: r.stdout ?? "", err: r.stderr ?? "" };
}
const dedos = (args: string[], env?: NodeJS.ProcessEnv) =>
  run(process.execPath, [join(app, "node_modules/dedos/dist/src/cli/main.js"), ...args], { env });

/**
 * A Hugging Face stand-in in a process of its own (the tests block on child processes): serves `dir` under
 * any path's last segment, as the Hub's resolve URLs end in the file name. Resolves to its base URL.
 */
function hubStandIn(dir: string): Promise<{ url: string; stop: () => void }> {
  const code = `const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
    const s = http.createServer((q, r) => {
      const f = path.join(${JSON.stringify(dir)}, path.basename(new URL(q.url, "http://x").pathname));
      if (!fs.existsSync(f)) { r.writeHead(404); r.end(); return; }
      r.writeHead(200, { "content-length": fs.statSync(f).size });
      fs.createReadStream(f).pipe(r);
    });
    s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve) =>
    child.stdout.once("data", (d) =>
      resolve({ url: `http://127.0.0.1:${String(d).trim()}`, stop: () => child.kill() }),
    ),
  );
}

interface PackResult {
  filename: string;
  size: number;
  files: { path: string }[];
}

let pack: PackResult;

describe("the npm package, installed into a fresh app", () => {
  before(() => {
    // dist/ is built by make setup; the tarball takes it as it is (prepare would rebuild it).
    const json = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], {
      cwd: PACKAGE_ROOT,
      encoding: "utf8",
    });
    pack = (JSON.parse(json) as PackResult[])[0]!;
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    const r = run("npm", [
      "install",
      join(work, pack.filename),
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
    ]);
    assert.equal(r.status, 0, `npm install failed:\n${r.out}\n${r.err}`);
  });

  it(`is lean: under 4 MB packed, no tests, fixtures, benchmarks or CI files`, () => {
    assert.ok(pack.size < MAX_PACKED, `${pack.size} bytes packed`);
    const stray = pack.files
      .map((f) => f.path)
      .filter((p) => /^(test|dist\/test|bench|dist\/bench|scripts|\.ci)\//.test(p));
    assert.deepEqual(stray, []);
    for (const need of [
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "native/binding.gyp",
      "assets/vocab/bpe_simple_vocab_16e6.txt.gz",
    ])
      assert.ok(
        pack.files.some((f) => f.path === need),
        `${need} is not in the tarball`,
      );
  });

  it("builds its addon on install and imports by name from ESM", () => {
    assert.ok(existsSync(join(app, "node_modules/dedos/native/build/Release/dedos_native.node")));
    const r = run(process.execPath, [
      "-e",
      'import("dedos").then((m) => console.log(typeof m.Segmenter, typeof m.createModel))',
    ]);
    assert.equal(r.status, 0, r.err);
    assert.equal(r.out.trim(), "function function");
    const torch = run(process.execPath, [
      "-e",
      'import("dedos/torch").then((t) => console.log(t.tensor([1, 2], [2]).sum().item()))',
    ]);
    assert.equal(torch.out.trim(), "3", torch.err);
  });

  it("type-checks a TypeScript consumer under nodenext and bundler resolution", () => {
    writeFileSync(
      join(app, "consumer.ts"),
      [
        'import { Segmenter, type Segmentation, createModel, renderOverlay, type CatSegConfig } from "dedos";',
        'import { tensor } from "dedos/torch";',
        "async function use(seg: Segmenter): Promise<Segmentation[]> {",
        '  return seg.segment(["a.jpg", "b.jpg"], ["sky"], { onProgress: (p) => console.log(p.stage, p.done) });',
        "}",
        'const r: Promise<Segmentation[]> = Segmenter.create({ config: "vitb_384", weights: "random" }).then(use);',
        'const m = createModel({ arch: "catseg", weights: "random" });',
        "const c: CatSegConfig = m.config;",
        "const t = tensor([1], [1]);",
        "void r; void c; void t; void renderOverlay;",
        // A misspelt option must fail: the types are real, not `any`.
        "// @ts-expect-error: no such option",
        'Segmenter.create({ weights: "random", windw: "dedos" });',
        "",
      ].join("\n"),
    );
    const tsc = join(PACKAGE_ROOT, "node_modules/typescript/bin/tsc");
    for (const [module, resolution] of [
      ["nodenext", "nodenext"],
      ["esnext", "bundler"],
    ]) {
      const r = run(process.execPath, [
        tsc,
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "false",
        "--target",
        "es2022",
        "--module",
        module!,
        "--moduleResolution",
        resolution!,
        "--typeRoots",
        join(PACKAGE_ROOT, "node_modules/@types"),
        "--types",
        "node",
        "consumer.ts",
      ]);
      assert.equal(r.status, 0, `${resolution}:\n${r.out}${r.err}`);
    }
  });

  it("runs the CLI: --version, doctor, and a tiny-config segment", () => {
    assert.equal(dedos(["--version"]).out.trim(), version);
    const doctor = dedos(["doctor"]);
    assert.equal(doctor.status, 0, doctor.out + doctor.err);
    assert.match(doctor.out, /engine: +loaded, libtorch \d/);
    writeFileSync(join(app, "tiny.json"), JSON.stringify(TINY_CATSEG));
    copyFileSync(join(PACKAGE_ROOT, "assets/images/chelsea.png"), join(app, "cat.png"));
    const r = dedos([
      "segment",
      "cat.png",
      "--classes",
      "cat; wall",
      "--config",
      "tiny.json",
      "--out",
      "tiny-out",
    ]);
    assert.equal(r.status, 0, r.out + r.err);
    assert.ok(statSync(join(app, "tiny-out/cat.overlay.png")).size > 1000);
  });

  it("runs every README snippet as written", async () => {
    // The README's weights, as random full-size weights of the same layouts: the file names it uses, and
    // `catseg-vitb` fetched by name from a Hub stand-in (DEDOS_ENDPOINT) into a fresh cache.
    const model = createModel({ arch: "catseg", config: catSegPreset("vitb_384"), weights: "random" });
    saveSafetensors(join(app, "model_base.pth"), catsegStateDict(model));
    saveSafetensors(join(app, "ViT-B-16.pt"), model.clip.stateDict());
    model.dispose();
    const hub = await hubStandIn(app);
    const env = { DEDOS_ENDPOINT: hub.url, DEDOS_CACHE: join(work, "cache") };
    await sharp(join(PACKAGE_ROOT, "assets/coco/000000039769.png")).jpeg().toFile(join(app, "street.jpg"));

    const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");
    const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(snippets.length >= 3, `${snippets.length} snippets`);
    snippets.forEach((code, i) => {
      writeFileSync(join(app, `readme-${i}.mjs`), code);
      const r = run(process.execPath, [`readme-${i}.mjs`], { env });
      assert.equal(r.status, 0, `README snippet ${i}:\n${code}\n${r.out}${r.err}`);
    });
    assert.ok(statSync(join(app, "street.overlay.png")).size > 1000);
    const commands = [...readme.matchAll(/^npx dedos segment street\.jpg .*$/gm)].map((m) => m[0]);
    assert.ok(commands.length >= 1);
    for (const c of commands) {
      const args = c
        .replace(/^npx dedos /, "")
        .match(/"[^"]*"|\S+/g)!
        .map((a) => a.replace(/^"|"$/g, ""));
      const r = dedos(args, env);
      assert.equal(r.status, 0, `${c}\n${r.out}${r.err}`);
    }
    hub.stop();
    // Fetched once, then read from the cache.
    assert.ok(statSync(join(work, "cache/catseg-vitb/model_base.pth")).size > 500e6);
  });
});
