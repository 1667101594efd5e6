import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ClipTokenizer, cleanText, EOT_ID, SOT_ID } from "../../src/clip/tokenizer.js";
import { runTokenizerCase } from "../../src/parity/cases/tokenizer.js";
import { loadFixture } from "../../src/parity/fixture.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

interface Vector {
  text: string;
  ids: number[];
  tokenize_truncate_true?: number[];
}

const root = PACKAGE_ROOT;
const fixture = loadFixture(join(root, "test/fixtures/tokenizer"));
const vectors: Vector[] = fixture.json.vectors;
const tok = ClipTokenizer.load();

/** The fixture's only string longer than the context (91 ids). */
const longVector = vectors.find((v) => v.tokenize_truncate_true !== undefined)!;

function row(ids: Int32Array, r: number, ctx: number): number[] {
  return Array.from(ids.subarray(r * ctx, (r + 1) * ctx));
}

function padded(ids: number[], ctx: number): number[] {
  return [...ids, ...new Array<number>(ctx - ids.length).fill(0)];
}

describe("ClipTokenizer vocabulary", () => {
  test("special ids and size match the reference", () => {
    assert.equal(SOT_ID, 49406);
    assert.equal(EOT_ID, 49407);
    assert.equal(tok.sotId, fixture.json.special_ids["<|startoftext|>"]);
    assert.equal(tok.eotId, fixture.json.special_ids["<|endoftext|>"]);
    assert.equal(tok.vocabSize, 49408);
  });

  test("load() with an explicit path equals the default", () => {
    const explicit = ClipTokenizer.fromGzippedMerges(
      readFileSync(join(root, "assets/vocab/bpe_simple_vocab_16e6.txt.gz")),
    );
    assert.deepEqual(explicit.encode("a photo of a pottedplant"), tok.encode("a photo of a pottedplant"));
  });
});

describe("ClipTokenizer fixture parity", () => {
  test("runTokenizerCase: every group exact", () => {
    const comps = runTokenizerCase(fixture, tok);
    assert.deepEqual(
      comps.map((c) => c.name),
      ["ids", "tokenize_padded", "truncate", "too_long_error"],
    );
    for (const c of comps) {
      assert.equal(c.ok, true, `${c.name}: ${c.note}`);
      assert.equal(c.maxAbsError, 0);
    }
    assert.equal(comps[0].note, `${fixture.json.count} strings exact`);
  });

  test("encode reproduces all fixture strings directly", () => {
    assert.equal(vectors.length, fixture.json.count);
    assert.equal(vectors.length, 721);
    const failures: string[] = [];
    for (const v of vectors) {
      const got = [SOT_ID, ...tok.encode(v.text), EOT_ID];
      if (got.join(",") !== v.ids.join(","))
        failures.push(`${JSON.stringify(v.text)} → [${got}] vs [${v.ids}]`);
    }
    assert.deepEqual(failures, []);
  });

  test("a second pass (served from the BPE cache) gives the same ids", () => {
    for (const v of vectors.slice(0, 60)) assert.deepEqual([SOT_ID, ...tok.encode(v.text), EOT_ID], v.ids);
  });
});

describe("ClipTokenizer.tokenize", () => {
  test("rows are zero padded and eotIndex points at the end token", () => {
    const out = tok.tokenize(["a dog", "", "a photo of a cat"]);
    assert.deepEqual(out.shape, [3, 77]);
    assert.equal(out.ids.length, 3 * 77);
    assert.deepEqual(row(out.ids, 0, 77), padded([49406, 320, 1929, 49407], 77));
    assert.deepEqual(row(out.ids, 1, 77), padded([49406, 49407], 77));
    assert.deepEqual(row(out.ids, 2, 77), padded([49406, 320, 1125, 539, 320, 2368, 49407], 77));
    assert.deepEqual(out.eotIndex, [3, 1, 6]);
  });

  test("eotIndex is the first maximum, like CLIP's text.argmax(-1)", () => {
    const out = tok.tokenize(["a <|endoftext|> b"]);
    assert.deepEqual(row(out.ids, 0, 77).slice(0, 6), [49406, 320, 49407, 321, 49407, 0]);
    assert.deepEqual(out.eotIndex, [2]);
  });

  test("an empty batch and a custom context length", () => {
    const empty = tok.tokenize([]);
    assert.deepEqual(empty.shape, [0, 77]);
    assert.equal(empty.ids.length, 0);
    assert.deepEqual(empty.eotIndex, []);
    const exact = tok.tokenize(["a photo of a cat"], { contextLength: 7 });
    assert.deepEqual(Array.from(exact.ids), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert.deepEqual(exact.eotIndex, [6]);
    assert.throws(() => tok.tokenize(["a"], { contextLength: 0 }), /positive integer/);
  });

  test("truncate keeps the first contextLength ids and ends the row with EOT", () => {
    assert.equal(longVector.ids.length, 91);
    const out = tok.tokenize([longVector.text], { truncate: true });
    assert.deepEqual(out.shape, [1, 77]);
    assert.deepEqual(Array.from(out.ids), longVector.tokenize_truncate_true);
    assert.deepEqual(Array.from(out.ids), [...longVector.ids.slice(0, 76), EOT_ID]);
    assert.deepEqual(out.eotIndex, [76]);
    const short = tok.tokenize(["a photo of a cat"], { contextLength: 5, truncate: true });
    assert.deepEqual(Array.from(short.ids), [49406, 320, 1125, 539, 49407]);
    assert.deepEqual(short.eotIndex, [4]);
  });

  test("without truncate a too-long text throws naming the text and its length", () => {
    assert.throws(
      () => tok.tokenize(["a cat", longVector.text]),
      (e: unknown) =>
        e instanceof Error &&
        e.message.includes(JSON.stringify(longVector.text)) &&
        e.message.includes("context length 77") &&
        e.message.includes("91 tokens"),
    );
    assert.throws(
      () => tok.tokenize(["a photo of a cat"], { contextLength: 6 }),
      /Input "a photo of a cat" is too long for context length 6 \(7 tokens/,
    );
  });
});

describe("ClipTokenizer.decode", () => {
  test("round trips give the reference's decode output", () => {
    const cases: Array<[string, string]> = [
      ["Hello World!", "hello world ! "],
      ["it's a cat's toy, running   fast", "it 's a cat 's toy , running fast "],
      ["café naïve façade", "café naïve façade "],
      ["A &amp; B &lt;tag&gt;", "a & b < tag > "],
      ["state-of-the-art", "state - of - the - art "],
      ["ΟΔΟΣ", "οδος "],
      ["日本語のテキスト", "日本語のテキスト "],
      ["😊", "😊 "],
    ];
    for (const [text, want] of cases) assert.equal(tok.decode(tok.encode(text)), want, text);
  });

  test("special tokens, cut UTF-8 sequences and unknown ids", () => {
    assert.equal(tok.decode([49406, 320, 2368, 49407]), "<|startoftext|>a cat <|endoftext|>");
    const jp = vectors.find((v) => v.text === "日本語のテキスト")!;
    // Dropping the last piece leaves half a character, which Python's errors="replace" turns into U+FFFD.
    assert.equal(tok.decode(jp.ids.slice(1, -2)), "日本語のテキス\ufffd");
    assert.equal(tok.decode(Int32Array.from([320])), "a ");
    assert.throws(() => tok.decode([49408]), /not in the vocabulary/);
  });
});

describe("text clean-up follows Python", () => {
  test("whitespace folding and strip use Python's character sets", () => {
    assert.equal(cleanText("  a\u0085cat\u3000\u00a0"), "a cat");
    assert.equal(cleanText("\x1ca  cat\x1f"), "a cat");
    // U+FEFF is neither Python whitespace nor regex \s (String.prototype.trim would remove it).
    assert.equal(cleanText("\ufeffa"), "\ufeffa");
    assert.equal(cleanText("A\u2028B\tC\r\nD"), "a b c d");
    // \x1c inside the text survives and becomes its own byte token ("\x1c</w>" = 472).
    assert.deepEqual(tok.encode("a\x1ccat"), [320, 472, 2368]);
    assert.deepEqual(tok.encode(" \x1c a cat \x1d "), [320, 2368]);
  });

  test("HTML unescaping twice with html.unescape's numeric rules", () => {
    assert.equal(cleanText("&amp;lt;"), "<");
    assert.equal(cleanText("&#1;x&#xFFFE;"), "x");
    assert.equal(cleanText("&#x81;"), "\x81");
    assert.equal(cleanText("&#x80;&#0;"), "\u20ac\ufffd");
    assert.equal(cleanText("&ampfoo; &notit; &eacutex"), "&foo; ¬it; éx");
    assert.equal(cleanText("a&nbsp;&nbsp;b"), "a b");
    assert.deepEqual(tok.encode("&amp;lt;"), [283]);
  });

  test("NFC and Python's lower() special cases", () => {
    assert.equal(cleanText("e\u0301"), "\u00e9");
    assert.equal(cleanText("İstanbul"), "i\u0307stanbul");
    assert.equal(cleanText("ΟΔΟΣ ΟΔΟΣ"), "οδος οδος");
    assert.equal(cleanText("ΣΑΣ"), "σας");
  });

  test("a lone surrogate is rejected like Python's str.encode", () => {
    assert.throws(() => tok.encode("a \ud800 b"), /lone surrogate/);
  });
});

describe("ADE-847 class names", () => {
  const classes: string[] = JSON.parse(readFileSync(join(root, "assets/classes/ade847.json"), "utf8"));

  function checkRows(out: { ids: Int32Array; shape: [number, number]; eotIndex: number[] }): void {
    const [b, ctx] = out.shape;
    for (let r = 0; r < b; r++) {
      const ids = row(out.ids, r, ctx);
      const e = out.eotIndex[r];
      assert.equal(ids[0], SOT_ID);
      assert.equal(ids[e], EOT_ID);
      assert.ok(e >= 2, `row ${r} is empty`);
      for (let i = 1; i < e; i++)
        assert.ok(ids[i] > 0 && ids[i] < SOT_ID, `row ${r} position ${i}: ${ids[i]}`);
      for (let i = e + 1; i < ctx; i++) assert.equal(ids[i], 0);
    }
  }

  test("all 847 names tokenise", () => {
    assert.equal(classes.length, 847);
    const out = tok.tokenize(classes);
    assert.deepEqual(out.shape, [847, 77]);
    checkRows(out);
    assert.deepEqual(row(out.ids, 0, 77).slice(0, 4), [49406, 2569, 49407, 0]); // "wall"
  });

  test("all 80 ImageNet templates × 847 names fit in 77 tokens", () => {
    const templates: string[] = JSON.parse(
      readFileSync(join(root, "assets/classes/imagenet_templates.json"), "utf8"),
    ).IMAGENET_TEMPLATES;
    assert.equal(templates.length, 80);
    const out = tok.tokenize(templates.flatMap((t) => classes.map((c) => t.replace("{}", c))));
    assert.deepEqual(out.shape, [80 * 847, 77]);
    checkRows(out);
  });
});
