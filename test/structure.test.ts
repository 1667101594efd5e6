// The shape of the tree, checked: model files define modules only (no file reading, no checkpoint readers),
// weights files become models only in the assembly layer (src/models), and no function grows past 120
// lines. These are the rules of docs/ARCHITECTURE.md that a reader would otherwise have to trust.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import { PACKAGE_ROOT } from "../src/util/assets.js";

const SRC = join(PACKAGE_ROOT, "src");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : n.endsWith(".ts") ? [p] : [];
  });
}

/** A file's text without its comments (a comment may name what the code must not call). */
function codeOf(file: string): string {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => !/^\s*(\/\/|\*|\/\*\*)/.test(l))
    .join("\n");
}

/** Module specifiers a file imports (static imports and re-exports). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]!);
}

describe("source tree rules", () => {
  it("model files (src/{clip,catseg,diffusion,dedos}) import neither node:fs nor the checkpoint readers", () => {
    const offenders: string[] = [];
    for (const family of ["clip", "catseg", "diffusion", "dedos"]) {
      for (const f of sources(join(SRC, family))) {
        for (const spec of importsOf(f)) {
          if (spec === "node:fs" || spec === "fs" || spec.includes("/torch/io/"))
            offenders.push(`${relative(PACKAGE_ROOT, f)} imports ${spec}`);
        }
      }
    }
    assert.deepEqual(offenders, []);
    // The rule would pass vacuously if the import scan broke: it must see the files' other imports.
    assert.ok(importsOf(join(SRC, "clip", "model.ts")).some((s) => s.endsWith("/torch/tensor.js")));
  });

  it("checkpoint files are read into models only by the assembly layer (and the trainer's own state)", () => {
    const allowed = ["src/models/", "src/torch/io/", "src/train/checkpoint.ts"];
    const offenders = sources(SRC)
      .map((f) => relative(PACKAGE_ROOT, f))
      .filter((f) => !allowed.some((a) => f.startsWith(a)))
      .filter((f) => /\b(withCheckpoint|loadCheckpoint)\(/.test(codeOf(join(PACKAGE_ROOT, f))));
    assert.deepEqual(offenders, []);
  });

  it("no function in src/ is longer than 120 lines", () => {
    const long: string[] = [];
    for (const f of sources(SRC)) {
      const sf = ts.createSourceFile(f, readFileSync(f, "utf8"), ts.ScriptTarget.Latest, true);
      const visit = (n: ts.Node): void => {
        if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body) {
          const a = sf.getLineAndCharacterOfPosition(n.getStart()).line;
          const b = sf.getLineAndCharacterOfPosition(n.end).line;
          if (b - a + 1 > 120) long.push(`${relative(PACKAGE_ROOT, f)}:${a + 1} (${b - a + 1} lines)`);
        }
        ts.forEachChild(n, visit);
      };
      visit(sf);
    }
    assert.deepEqual(long, []);
  });
});
