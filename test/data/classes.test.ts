import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseClassList, readClassFile } from "../../src/data/classes.js";
import { formatSeconds, Progress } from "../../src/util/progress.js";
import { tempDir } from "../temp-dir.js";

describe("class lists", () => {
  it("parses ';'-separated classes with ','-separated synonyms", () => {
    assert.deepEqual(parseClassList("sofa,couch ; sky;; wet road "), ["sofa, couch", "sky", "wet road"]);
    assert.throws(() => parseClassList(" ; , "), /no class names/);
  });
  it("reads bundled benchmark lists by name and files by path", () => {
    assert.equal(readClassFile("ade150").length, 150);
    assert.equal(readClassFile("ade847").length, 847);
    assert.equal(readClassFile("coco").length, 171);
    const dir = tempDir("dedos-classes-");
    writeFileSync(join(dir, "mine.txt"), "cat\ndog, puppy\n\n");
    assert.deepEqual(readClassFile(join(dir, "mine.txt")), ["cat", "dog, puppy"]);
    writeFileSync(join(dir, "bad.json"), "{");
    assert.throws(() => readClassFile(join(dir, "bad.json")), /bad\.json: not valid JSON/);
    writeFileSync(join(dir, "empty.json"), "[]");
    assert.throws(() => readClassFile(join(dir, "empty.json")), /empty/);
    assert.throws(() => readClassFile("no-such-list"), /'no-such-list' not found/);
  });
});

describe("progress line", () => {
  it("reports done/total, failures, rate and ETA", () => {
    const chunks: string[] = [];
    const stream = { isTTY: false, write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream;
    const p = new Progress(4, "segment", stream);
    p.tick();
    p.tick(false);
    p.tick();
    p.tick();
    assert.match(chunks.at(-1)!, /^segment 4\/4 \(1 failed\) [\d.]+ img\/s ETA 0s\n$/);
    assert.equal(formatSeconds(75), "1m15s");
    assert.equal(formatSeconds(3700), "1h01m");
    assert.equal(formatSeconds(Number.NaN), "?");
  });
});
