// The Node-free tokenizer (what the browser page uses: vocabulary as bytes, gunzip by DecompressionStream)
// gives the ids of the Node one (bundled file, zlib).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { ClipTokenizer, DEFAULT_VOCAB } from "../../src/clip/tokenizer.js";
import { ClipTokenizerCore } from "../../src/clip/tokenizer-core.js";
import { readBundledFile } from "../../src/util/assets.js";

const TEXTS = [
  "A photo of a cat in the scene",
  "wet road, traffic cone",
  "猫 & <b>café</b> 🐱",
  "x".repeat(60),
];

describe("ClipTokenizerCore (no Node modules)", () => {
  it("from gzipped bytes (async) and from plain bytes: the ids of ClipTokenizer.load()", async () => {
    const gz = readBundledFile(...DEFAULT_VOCAB);
    const ref = ClipTokenizer.load().tokenize(TEXTS);
    const viaStream = await ClipTokenizerCore.fromGzippedMergesAsync(new Uint8Array(gz));
    const plain = ClipTokenizerCore.fromMergesBytes(new Uint8Array(gunzipSync(gz)));
    for (const t of [viaStream, plain]) {
      const got = t.tokenize(TEXTS);
      assert.deepEqual(got.ids, ref.ids);
      assert.deepEqual(got.eotIndex, ref.eotIndex);
      assert.equal(t.vocabSize, 49408);
    }
  });
});
