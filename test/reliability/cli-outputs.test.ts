// Reliability of what `dedos segment` (and parity / prepare) leave behind: outputs never lost or mixed (name
// clashes, atomic output sets), names that cannot break a run (control characters, CJK, emoji, newlines in
// file names), class lists refused or warned about by position, and errors that name the file. Every bad
// input is generated here; each CLI check asserts the exit code, that the message names the offending
// file / class / flag, and that earlier outputs are intact.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  promises as fsp,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { parseClassList, readClassFile } from "../../src/data/classes.js";
import { encodePng, readLabelMap } from "../../src/data/labels.js";
import { prepareDataset } from "../../src/data/prepare.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { runParity } from "../../src/parity/run.js";
import { TEMP_MARKER, writeFileSetAtomic } from "../../src/util/fs.js";
import {
  coverageFromCharsets,
  encodeLabelPng,
  escapeXml,
  installedFontCoverage,
  LEGEND_FONT_FAMILY,
  legendSvg,
  legendText,
  renderOverlay,
  writeLabelPng,
} from "../../src/viz/overlay.js";
import { tempDir } from "../temp-dir.js";
import { TINY_CATSEG } from "../tiny-models.js";

const cli = (args: string[]) =>
  spawnSync(process.execPath, ["dist/src/cli/main.js", ...args], { encoding: "utf8", maxBuffer: 64 << 20 });

const noStack = (text: string) => assert.doesNotMatch(text, /^\s+at .*\(.*:\d+:\d+\)$/m, text);

/** Files of `dir` with util/fs.ts's temporary marker: none may stay behind. */
const temps = (dir: string) => readdirSync(dir).filter((f) => f.includes(TEMP_MARKER));

async function writeImage(file: string, width: number, height: number, color: string): Promise<void> {
  const img = sharp({ create: { width, height, channels: 3, background: color } });
  await (file.endsWith(".jpg") ? img.jpeg() : img.png()).toFile(file);
}

const sizeOf = async (file: string) => {
  const m = await sharp(file).metadata();
  return [m.width, m.height];
};

describe("writeFileSetAtomic: a set of files replaced together or not at all", () => {
  const dir = tempDir("dedos-set-");
  const old = { a: "old a", b: "old b", c: "old c" };
  const reset = () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    for (const [k, v] of Object.entries(old)) writeFileSync(join(dir, k), v);
  };
  const contents = () =>
    Object.fromEntries(["a", "b", "c"].map((k) => [k, readFileSync(join(dir, k), "utf8")]));

  it("writes every file, removes `remove` entries, leaves no temporary file", async () => {
    reset();
    await writeFileSetAtomic([
      { file: join(dir, "a"), data: "new a" },
      { file: join(dir, "b"), write: async (tmp) => fsp.writeFile(tmp, "new b") },
      { file: join(dir, "c"), remove: true },
      { file: join(dir, "d"), data: new Uint8Array([1, 2, 3]) },
    ]);
    assert.equal(readFileSync(join(dir, "a"), "utf8"), "new a");
    assert.equal(readFileSync(join(dir, "b"), "utf8"), "new b");
    assert.ok(!existsSync(join(dir, "c")));
    assert.deepEqual([...readFileSync(join(dir, "d"))], [1, 2, 3]);
    assert.deepEqual(temps(dir), []);
  });

  it("a write that fails (ENOSPC) changes nothing, names the file, and removes the temporary files", async () => {
    reset();
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    await assert.rejects(
      writeFileSetAtomic([
        { file: join(dir, "a"), data: "new a" },
        {
          file: join(dir, "b"),
          write: async (tmp) => {
            await fsp.writeFile(tmp, "half of b");
            throw enospc;
          },
        },
        { file: join(dir, "c"), remove: true },
      ]),
      (e: NodeJS.ErrnoException) => {
        assert.match(e.message, new RegExp(`cannot write ${join(dir, "b")}: ENOSPC`));
        assert.equal(e.code, "ENOSPC");
        return true;
      },
    );
    assert.deepEqual(contents(), old);
    assert.deepEqual(temps(dir), []);
  });

  it("a directory where a file goes (EISDIR) is found before anything is renamed", async () => {
    reset();
    mkdirSync(join(dir, "d"));
    await assert.rejects(
      writeFileSetAtomic([
        { file: join(dir, "a"), data: "new a" },
        { file: join(dir, "d"), data: "new d" },
      ]),
      (e: NodeJS.ErrnoException) => {
        assert.equal(e.message, `cannot write ${join(dir, "d")}: a directory is in the way (EISDIR)`);
        assert.equal(e.code, "EISDIR");
        return true;
      },
    );
    assert.deepEqual(contents(), old);
    assert.ok(statSync(join(dir, "d")).isDirectory());
    assert.deepEqual(temps(dir), []);
  });

  it("a rename that fails half way puts the files already renamed (and removed) back", async () => {
    reset();
    const rename = fsp.rename;
    const patched = fsp as { rename: typeof fsp.rename };
    patched.rename = async (from, to) => {
      if (String(to) === join(dir, "b"))
        throw Object.assign(new Error("EIO: i/o error, rename"), { code: "EIO" });
      return rename(from, to);
    };
    try {
      await assert.rejects(
        writeFileSetAtomic([
          { file: join(dir, "c"), remove: true },
          { file: join(dir, "a"), data: "new a" },
          { file: join(dir, "b"), data: "new b" },
          { file: join(dir, "e"), data: "new e" },
        ]),
        new RegExp(`cannot write ${join(dir, "b")}: EIO`),
      );
    } finally {
      patched.rename = rename;
    }
    assert.deepEqual(contents(), old);
    assert.ok(!existsSync(join(dir, "e")));
    assert.deepEqual(temps(dir), []);
  });
});

describe("the overlay legend: any name renders, and unreadable characters are spelled out", () => {
  const dejavuOnly = coverageFromCharsets("20-7e a0-17f fffd");
  const everything = () => true;

  it("escapeXml keeps markup out and replaces what XML 1.0 forbids, keeping the rest", () => {
    assert.equal(escapeXml(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
    assert.equal(escapeXml("\u0001cat\u0000\u001f"), "\uFFFDcat\uFFFD\uFFFD");
    assert.equal(escapeXml("a\uD800b\uDC00c\uFFFE\uFFFF"), "a\uFFFDb\uFFFDc\uFFFD\uFFFD");
    assert.equal(escapeXml("tab\tnl\ncr\r 猫 🐱 é \u0085"), "tab\tnl\ncr\r 猫 🐱 é \u0085");
  });

  it("names the code points of controls and of characters no installed font covers", () => {
    assert.equal(legendText("\u0001cat", 26, everything), "\uFFFDcat (U+0001)");
    assert.equal(legendText("猫", 26, dejavuOnly), "猫 (U+732B)");
    assert.equal(legendText("猫", 26, everything), "猫");
    assert.equal(legendText("🐶 dog", 26, dejavuOnly), "🐶 dog (U+1F436)");
    assert.equal(legendText("new\nline.png", 26, everything), "new\uFFFDline.png (U+000A)");
    // a cut never splits a surrogate pair; at most 4 code points are listed
    assert.equal(legendText("🐶🐶🐶", 2, everything), "🐶…");
    assert.equal(legendText("一二三四五", 26, dejavuOnly), "一二三四五 (U+4E00 U+4E8C U+4E09 U+56DB …)");
    // joiners and variation selectors need no glyph
    assert.equal(legendText("a\u200Db\uFE0F", 26, dejavuOnly), "a\u200Db\uFE0F");
  });

  it("the SVG names DejaVu Sans, then Noto Sans CJK and Noto Color Emoji, and holds no forbidden character", () => {
    assert.match(LEGEND_FONT_FAMILY, /^DejaVu Sans, Noto Sans CJK SC, Noto Color Emoji, sans-serif$/);
    const shares = ["\u0001cat", "猫", "🐶", "a\uD800"].map((name, index) => ({
      index,
      name,
      pixels: 1,
      share: 0.25,
    }));
    const { svg, width } = legendSvg(shares, 10, "file\u0007\n.png", dejavuOnly);
    assert.match(svg, new RegExp(`font-family="${LEGEND_FONT_FAMILY}"`));
    const forbidden = [...svg].filter((c) => {
      const cp = c.codePointAt(0)!;
      return (cp < 0x20 && cp !== 0x9 && cp !== 0xa && cp !== 0xd) || (cp >= 0xd800 && cp <= 0xdfff);
    });
    assert.deepEqual(forbidden, []);
    for (const cp of ["U+0001", "U+732B", "U+1F436", "U+D800", "U+0007", "U+000A"])
      assert.ok(svg.includes(cp), cp);
    assert.ok(width >= 260);
  });

  it("renders names with controls, lone surrogates and CJK/emoji (the SVG is valid XML)", async () => {
    const image = { width: 4, height: 2, data: new Uint8Array(4 * 2 * 3).fill(128) };
    const labels = [0, 1, 2, 3, 4, 5, 0, 1];
    const names = ["\u0001cat", "dog\u0000", "猫", "🐱", "x\uDC00y", "<&>\"'"];
    const { png, shares } = await renderOverlay(image, labels, names, { title: "new\nline\u0085.png" });
    assert.equal(shares.length, 6);
    const meta = await sharp(png).metadata();
    assert.ok(meta.width! > 4 + 259 && meta.height === 16 + 22 * 7);
  });

  it("label PNGs keep every index: 8-bit, and 16-bit past 255 (847 classes of ADE-847)", async () => {
    const dir = tempDir("dedos-labels-");
    for (const labels of [
      [0, 3, 255, 7],
      [0, 300, 65535, 846],
    ]) {
      await writeLabelPng(join(dir, "l.png"), labels, 2, 2);
      const m = await readLabelMap(join(dir, "l.png"));
      assert.deepEqual([...m.data], labels);
      assert.equal(m.data.BYTES_PER_ELEMENT, labels[1]! > 255 ? 2 : 1);
      assert.deepEqual([...(await encodeLabelPng(labels, 2, 2))], [...readFileSync(join(dir, "l.png"))]);
    }
    assert.deepEqual(temps(dir), []);
  });

  it("asks fontconfig once; CJK counts as covered when fonts-noto-cjk is installed", () => {
    const covers = installedFontCoverage();
    assert.equal(installedFontCoverage(), covers, "asked once per process");
    assert.ok(covers("A".codePointAt(0)!));
    let families = "";
    try {
      families = execFileSync("fc-list", ["--format", "%{family}\\n"], { encoding: "utf8" });
    } catch {
      // no fontconfig tools: DejaVu only is assumed
    }
    assert.equal(covers(0x732b), families.includes("Noto Sans CJK"));
    assert.equal(covers(0x1f436), families.includes("Noto Color Emoji"));
    assert.ok(!covers(0x10fffd), "nothing covers a private-use code point of plane 16");
  });

  it("scripts/setup.sh installs the legend's fonts", () => {
    const line = readFileSync("scripts/setup.sh", "utf8")
      .split("\n")
      .find((l) => l.startsWith("APT_PACKAGES="));
    assert.match(line!, / fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji\)$/);
  });
});

describe("class lists: empty classes refused by position, duplicates warned about and kept", () => {
  const dir = tempDir("dedos-classlist-");

  it("refuses an empty name of a JSON list naming the file and the position", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify(["cat", "", "dog"]));
    assert.throws(() => readClassFile(file), {
      message: `${file}: class 2 of 3 is empty (""); every class needs a name`,
    });
    writeFileSync(file, JSON.stringify(["cat", " , ", "dog"]));
    assert.throws(() => readClassFile(file), /bad\.json: class 2 of 3 is empty/);
    writeFileSync(file, JSON.stringify(["cat", 7]));
    assert.throws(() => readClassFile(file), /bad\.json: class 2 of 2 is not a string \(7\)/);
    assert.throws(() => readClassFile(dir), new RegExp(`${dir}: is a directory, not a class list file`));
  });

  it("refuses typed text with no class naming the flag and the positions; warns about skipped ones", () => {
    assert.throws(() => parseClassList("", { source: "--classes" }), {
      message: `--classes: no class names in "" (class 1 is empty; separate classes with ";", synonyms with ",")`,
    });
    assert.throws(
      () => parseClassList(" ; ", { source: "--classes" }),
      /^Error: --classes: .*classes 1, 2 are empty/,
    );
    const warnings: string[] = [];
    assert.deepEqual(parseClassList("cat;; dog;", { source: "--classes", warn: (m) => warnings.push(m) }), [
      "cat",
      "dog",
    ]);
    assert.deepEqual(warnings, [
      `--classes: empty class 2 skipped; the label values number the 2 classes given (0 = "cat")`,
    ]);
  });

  it("warns about duplicate names (naming them and where) and keeps them", () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    assert.deepEqual(parseClassList("cat; dog; Cat", { source: "--classes", warn }), ["cat", "dog", "Cat"]);
    assert.match(
      warnings[0]!,
      /^--classes: duplicate class name "cat" \/ "Cat" \(class 1, class 3\); all are kept/,
    );
    const json = join(dir, "dup.json");
    writeFileSync(json, JSON.stringify(["sky", "tree", "sky"]));
    assert.deepEqual(readClassFile(json, { warn }), ["sky", "tree", "sky"]);
    assert.match(warnings[1]!, new RegExp(`^${json}: duplicate class name "sky" \\(class 1, class 3\\)`));
    const txt = join(dir, "dup.txt");
    writeFileSync(txt, "road\n\nroad; car\n");
    assert.deepEqual(readClassFile(txt, { warn }), ["road", "road", "car"]);
    assert.match(warnings[2]!, new RegExp(`^${txt}: blank line 2 skipped`));
    assert.match(warnings[3]!, /duplicate class name "road" \(line 1, line 3 class 1\)/);
  });
});

describe("dedos segment: outputs never lost or mixed, names that cannot break a run", () => {
  const dir = tempDir("dedos-seg-reliability-");
  const config = join(dir, "tiny.json");
  writeFileSync(config, JSON.stringify(TINY_CATSEG));
  const out = join(dir, "out");
  const a = join(dir, "a", "x.png");
  const b = join(dir, "b", "x.png");
  const good = join(dir, "good.png");
  const goodJpg = join(dir, "good.jpg");
  const newline = join(dir, "new\nline.png");
  const classes = "\u0001cat; 猫; 🐶 dog; cat; Cat";

  it("two inputs with one name get distinct outputs; the console and the summaries say which is which", async () => {
    mkdirSync(join(dir, "a"));
    mkdirSync(join(dir, "b"));
    await writeImage(a, 48, 32, "#804020");
    await writeImage(b, 32, 40, "#208040");
    await writeImage(good, 24, 36, "#202080");
    await writeImage(goodJpg, 36, 20, "#808020");
    await writeImage(newline, 20, 20, "#008080");
    const r = cli([
      "segment",
      a,
      b,
      good,
      goodJpg,
      newline,
      "--classes",
      classes,
      "--config",
      config,
      "--out",
      out,
      "--scores",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /segmented 5\/5 image/);
    assert.ok(
      r.stdout.includes(`note: ${b} is written as ${join(out, "x-2")}.* ("x" is taken by ${a})`),
      r.stdout,
    );
    assert.ok(
      r.stdout.includes(
        `note: ${goodJpg} is written as ${join(out, "good-2")}.* ("good" is taken by ${good})`,
      ),
    );
    assert.match(r.stderr, /warning: --classes: duplicate class name "cat" \/ "Cat" \(class 4, class 5\)/);
    for (const [input, name, size] of [
      [a, "x", [48, 32]],
      [b, "x-2", [32, 40]],
      [good, "good", [24, 36]],
      [goodJpg, "good-2", [36, 20]],
      [newline, "new\nline", [20, 20]],
    ] as const) {
      const summary = JSON.parse(readFileSync(join(out, `${name}.json`), "utf8"));
      assert.equal(summary.image, input);
      assert.equal(summary.output, name);
      assert.deepEqual(summary.size, size);
      assert.deepEqual(await sizeOf(join(out, `${name}.labels.png`)), size);
      const overlay = await sizeOf(join(out, `${name}.overlay.png`)); // the legend with "\u0001cat" rendered
      assert.ok(overlay[0]! > size[0] + 259, `${name}: legend drawn`);
      assert.equal(statSync(join(out, `${name}.scores.bin`)).size, 4 * 5 * size[0] * size[1]); // float32 T×H×W
    }
    assert.deepEqual(temps(out), []);
  });

  it("a failing image changes none of its earlier outputs; the others of the run are written", async () => {
    const before = new Map(readdirSync(out).map((f) => [f, readFileSync(join(out, f))]));
    rmSync(join(out, "x.json"));
    mkdirSync(join(out, "x.json")); // EISDIR where a file goes
    const dirImage = join(dir, "folder.png");
    mkdirSync(dirImage);
    const r = cli(["segment", a, dirImage, good, "--classes", "sky; road", "--config", config, "--out", out]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /segmented 1\/3 image/);
    assert.ok(
      r.stderr.includes(
        `dedos segment: ${a}: cannot write ${join(out, "x.json")}: a directory is in the way (EISDIR); no output of x.* was changed`,
      ),
      r.stderr,
    );
    assert.ok(
      r.stderr.includes(`dedos segment: ${dirImage}: is a directory, not an image file (EISDIR)`),
      r.stderr,
    );
    noStack(r.stderr);
    for (const f of ["x.labels.png", "x.overlay.png", "x.scores.bin", "x-2.json", "x-2.labels.png"])
      assert.deepEqual(readFileSync(join(out, f)), before.get(f), `${f} untouched`);
    // good.* is the new set (2 classes), and its --scores file of the first run went with the old set
    assert.deepEqual(JSON.parse(readFileSync(join(out, "good.json"), "utf8")).classes, ["sky", "road"]);
    assert.ok(!existsSync(join(out, "good.scores.bin")));
    assert.ok(existsSync(join(out, "good-2.scores.bin")));
    assert.deepEqual(temps(out), []);
  });

  it("refuses empty class lists naming the flag or the file, before loading a model", () => {
    for (const text of ["", " ; "]) {
      const r = cli(["segment", good, "--classes", text, "--config", config, "--out", out]);
      assert.equal(r.status, 2);
      assert.match(
        r.stderr,
        /^dedos segment: --classes: no class names in .*\(class(es)? 1(, 2)? (is|are) empty/,
      );
    }
    const file = join(dir, "classes.json");
    writeFileSync(file, JSON.stringify(["cat", "", "dog"]));
    const r = cli(["segment", good, "--classes-file", file, "--config", config, "--out", out]);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr.trim(),
      `dedos segment: ${file}: class 2 of 3 is empty (""); every class needs a name`,
    );
  });

  it("a config of the wrong shape is named, without a stack trace", () => {
    const bad = join(dir, "wrong.json");
    writeFileSync(bad, JSON.stringify({ clip: 1 }));
    const r = cli(["segment", good, "--classes", "cat", "--config", bad, "--out", join(dir, "o2")]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^dedos segment: ${bad}: not a valid config`, "m"));
    noStack(r.stderr);
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const r2 = cli(["segment", good, "--classes", "cat", "--config", config, "--out", file]);
    assert.equal(r2.status, 2);
    assert.equal(r2.stderr.trim(), `dedos segment: --out ${file}: a file is in the way of the output folder`);
  });
});

describe("dedos parity: a case.json lacking fields is named, not a stack trace", () => {
  const dir = tempDir("dedos-parity-bad-");

  it("names the file and the field, exits 1", () => {
    const cases: [string, unknown, string][] = [
      ["noconfig", { case: "clip_text" }, 'case.json: missing field "config" (the clip_text case reads it)'],
      [
        "novectors",
        { case: "tokenizer", vectors: [{ text: "a", ids: [1] }, { text: "b" }] },
        'missing field "vectors[1].ids"',
      ],
      ["nodedos", { case: "sd_unet", config: {}, scheduler: {} }, 'missing field "scheduler.dedos"'],
      ["nocase", { config: {} }, 'case.json: missing field "case"'],
      [
        "wrongtype",
        { case: "semseg_eval", variants: [] },
        'field "variants" is an array, expected an object',
      ],
      ["array", [1], "case.json: expected a JSON object, got an array"],
    ];
    for (const [name, json] of cases) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "case.json"), JSON.stringify(json));
    }
    mkdirSync(join(dir, "notjson"));
    writeFileSync(join(dir, "notjson", "case.json"), "{");
    const dirs = [...cases.map(([n]) => join(dir, n)), join(dir, "notjson")];
    const r = cli(["parity", ...dirs]);
    assert.equal(r.status, 1);
    for (const [name, , msg] of cases)
      assert.ok(
        r.stdout.includes(
          `error: ${join(dir, name)}/${msg.startsWith("case.json") ? msg : `case.json: ${msg}`}`,
        ),
        `${name}\n${r.stdout}`,
      );
    assert.ok(r.stdout.includes(`error: ${join(dir, "notjson", "case.json")}: not valid JSON`));
    noStack(r.stdout + r.stderr);
    assert.throws(
      () => loadFixture(join(dir, "noconfig")),
      new RegExp(`^Error: ${join(dir, "noconfig", "case.json")}: missing field "config"`),
    );
  });

  it("an error inside a case names the directory, with one frame at most", async () => {
    // a config object with nothing in it: the case itself reports the first missing key
    mkdirSync(join(dir, "emptyconfig"));
    writeFileSync(join(dir, "emptyconfig", "case.json"), JSON.stringify({ case: "clip_text", config: {} }));
    const lines: string[] = [];
    assert.equal(await runParity([join(dir, "emptyconfig")], (l) => lines.push(l)), false);
    assert.match(
      lines.join("\n"),
      new RegExp(`error: ${join(dir, "emptyconfig")}/case.json: config has no "transformer_width"`),
    );
    noStack(lines.join("\n"));
  });
});

describe("dedos prepare: failures counted once per listed input", () => {
  const root = tempDir("dedos-prepare-count-");
  const quiet = { progress: false, log: () => {} };

  it("an input whose image is missing and whose label is corrupt is one failure naming both", async () => {
    const ann = join(root, "ADEChallengeData2016", "annotations", "validation");
    mkdirSync(ann, { recursive: true });
    mkdirSync(join(root, "ADEChallengeData2016", "images", "validation"), { recursive: true });
    for (let k = 0; k < 4; k++) writeFileSync(join(ann, `ADE_val_${k}.png`), "not a png");
    const r = await prepareDataset("ade150", { ...quiet, root, expected: 4 });
    assert.equal(r.listed, 4);
    assert.equal(r.failed.length, 4);
    for (const f of r.failed) {
      assert.match(f.file, /annotations\/validation\/ADE_val_\d\.png$/);
      assert.match(f.error, /corrupt PNG .*; image missing too: .*images\/validation\/ADE_val_\d\.jpg$/);
    }
  });

  it("pc459 with neither LabelMaps nor images: failed 5104 of 5104 listed (was 10208)", () => {
    mkdirSync(join(root, "VOCdevkit", "VOC2010", "trainval"), { recursive: true });
    mkdirSync(join(root, "VOCdevkit", "VOC2010", "JPEGImages"), { recursive: true });
    const r = cli(["prepare", "pc459", "--root", root, "--no-progress"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /listed 5104, written 0, up to date 0, failed 5104 /);
    assert.match(
      r.stderr,
      /failed: .*trainval\/2008_000002\.mat: missing input .*; image missing too: .*JPEGImages\/2008_000002\.jpg/,
    );
    noStack(r.stderr);
  });

  it("an image missing beside a good label is one failure naming the image", async () => {
    const ds = join(root, "ADEChallengeData2016");
    const png = encodePng({ width: 2, height: 2, channels: 1, data: Uint8Array.from([1, 2, 3, 4]) });
    for (let k = 0; k < 4; k++) writeFileSync(join(ds, "annotations", "validation", `ADE_val_${k}.png`), png);
    copyFileSync(
      join(ds, "annotations", "validation", "ADE_val_0.png"),
      join(ds, "annotations", "validation", "ADE_val_9.png"),
    );
    await writeImage(join(ds, "images", "validation", "ADE_val_9.jpg"), 2, 2, "#000000");
    const r = await prepareDataset("ade150", { ...quiet, root, expected: 5 });
    assert.deepEqual([r.listed, r.written, r.failed.length], [5, 5, 4]);
    assert.ok(r.failed.every((f) => f.error === "image missing" && /ADE_val_[0-3]\.jpg$/.test(f.file)));
  });
});
