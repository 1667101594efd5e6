import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { writeAtomicWithSync, writeFileAtomic, writeFileAtomicSync } from "../../src/util/fs.js";
import { tempDir } from "../temp-dir.js";

describe("atomic writes", () => {
  const dir = tempDir("dedos-fs-");
  it("replace the file whole, and leave nothing behind", async () => {
    const f = join(dir, "a.txt");
    writeFileAtomicSync(f, "one");
    await writeFileAtomic(f, Buffer.from("two"));
    assert.equal(readFileSync(f, "utf8"), "two");
    assert.deepEqual(readdirSync(dir), ["a.txt"]);
  });
  it("a failing writer keeps the old file and removes its temporary file", () => {
    const f = join(dir, "b.txt");
    writeFileSync(f, "old");
    assert.throws(
      () =>
        writeAtomicWithSync(f, (tmp) => {
          writeFileSync(tmp, "half");
          throw new Error("disk full");
        }),
      /disk full/,
    );
    assert.equal(readFileSync(f, "utf8"), "old");
    assert.ok(readdirSync(dir).every((n) => !n.includes(".tmp-")));
    assert.throws(() => writeFileAtomicSync(join(dir, "missing", "c.txt"), "x"), /ENOENT/);
    assert.ok(!existsSync(join(dir, "missing")));
  });
});
