// The registry's data (names, addresses, published hashes only), DEDOS_ENDPOINT, DEDOS_REGISTRY_EXTRA, and
// the cache folder and layout.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { cacheDir, weightPath } from "../../src/weights/cache.js";
import {
  fileUrl,
  getWeight,
  listWeights,
  registerWeight,
  unregisterWeight,
  weightNames,
} from "../../src/weights/registry.js";
import { isWeightName } from "../../src/weights/resolve.js";
import { tempDir } from "../temp-dir.js";

describe("weights registry", () => {
  it("holds the released weights with their addresses, configs and licences", () => {
    assert.deepEqual(weightNames().slice(0, 5), [
      "catseg-vitb",
      "catseg-vitl",
      "clip-vitb16",
      "clip-vitl14-336",
      "sd2-base",
    ]);
    const vitb = getWeight("catseg-vitb");
    assert.equal(vitb.kind, "file");
    assert.equal(
      vitb.files[0]!.url,
      "https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_base.pth",
    );
    assert.equal(vitb.config, "vitb_384");
    assert.equal(vitb.licence, "CAT-Seg, MIT");
    assert.equal(getWeight("catseg-vitl").config, "vitl_336");
    assert.match(getWeight("catseg-vitl").files[0]!.url, /\/model_large\.pth$/);
    for (const name of ["clip-vitb16", "clip-vitl14-336"]) {
      const f = getWeight(name).files[0]!;
      // openai/CLIP: the folder of the URL is the file's SHA-256
      assert.equal(f.sha256, f.url.split("/").at(-2));
      assert.match(f.url, /^https:\/\/openaipublic\.azureedge\.net\/clip\/models\/[0-9a-f]{64}\/ViT-/);
      assert.equal(getWeight(name).licence, "OpenAI CLIP, MIT");
    }
    const sd = getWeight("sd2-base");
    assert.equal(sd.kind, "folder");
    assert.equal(sd.files.length, 11);
    assert.ok(sd.files.some((f) => f.path === "text_encoder/model.safetensors"));
    for (const f of sd.files)
      assert.equal(
        f.url,
        `https://huggingface.co/stabilityai/stable-diffusion-2-base/resolve/main/${f.path}`,
      );
    assert.match(sd.licence, /CreativeML Open RAIL\+\+-M/);
    // nothing unpublished is filled in: only the CLIP hashes are known
    const known = listWeights().flatMap((e) => e.files.filter((f) => f.sha256 || f.size !== undefined));
    assert.deepEqual(
      known.map((f) => f.path),
      ["ViT-B-16.pt", "ViT-L-14-336px.pt"],
    );
    assert.ok(isWeightName("sd2-base") && !isWeightName("model_base.pth"));
    assert.throws(() => getWeight("nope"), /unknown weight name "nope" \(registered: catseg-vitb,/);
  });

  it("DEDOS_ENDPOINT replaces the Hugging Face host only", () => {
    const hub = getWeight("catseg-vitb").files[0]!;
    const clip = getWeight("clip-vitb16").files[0]!;
    const env = { DEDOS_ENDPOINT: "https://mirror.example.org/hf/" };
    assert.equal(
      fileUrl(hub, env),
      "https://mirror.example.org/hf/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_base.pth",
    );
    assert.equal(fileUrl(clip, env), clip.url);
    assert.equal(fileUrl(hub, {}), hub.url);
  });

  it("DEDOS_REGISTRY_EXTRA adds file and folder weights; bad entries and built-in names are refused", () => {
    const dir = tempDir("dedos-registry-");
    const file = join(dir, "extra.json");
    writeFileSync(
      file,
      JSON.stringify({
        mine: {
          url: "https://example.org/x/model%20final.pth",
          size: 12,
          sha256: "AB".repeat(32),
          config: "c",
        },
        "my-folder": { files: [{ path: "a/b.json", url: "http://example.org/b.json" }], license: "L" },
      }),
    );
    process.env.DEDOS_REGISTRY_EXTRA = file;
    try {
      const mine = getWeight("mine");
      assert.deepEqual(mine.files, [
        {
          path: "model final.pth",
          url: "https://example.org/x/model%20final.pth",
          size: 12,
          sha256: "ab".repeat(32),
        },
      ]);
      assert.equal(getWeight("my-folder").kind, "folder");
      assert.equal(getWeight("my-folder").licence, "L");
      const bad = (entry: unknown, re: RegExp) => {
        writeFileSync(file, JSON.stringify({ x: entry }));
        assert.throws(() => listWeights(), re);
      };
      bad({ url: "ftp://example.org/a" }, /absolute http\(s\) URL/);
      bad({ url: "https://example.org/a", sha256: "abc" }, /64 hex digits/);
      bad({ url: "https://example.org/a", size: -1 }, /whole number/);
      bad({ files: [{ path: "../up", url: "https://example.org/a" }] }, /must be relative/);
      writeFileSync(file, JSON.stringify({ "catseg-vitb": { url: "https://example.org/a" } }));
      assert.throws(() => listWeights(), /already registered/);
      writeFileSync(file, "{");
      assert.throws(() => listWeights(), /cannot read it as JSON/);
    } finally {
      delete process.env.DEDOS_REGISTRY_EXTRA;
    }
    const entry = {
      kind: "file",
      files: [{ path: "a", url: "https://example.org/a" }],
      config: "",
      licence: "",
      description: "",
    } as const;
    assert.throws(() => registerWeight({ name: "clip-vitb16", ...entry }), /built-in/);
    registerWeight({ name: "tmp-added", ...entry });
    assert.ok(isWeightName("tmp-added"));
    unregisterWeight("tmp-added");
    assert.ok(!isWeightName("tmp-added"));
  });

  it("the cache folder is DEDOS_CACHE, else $XDG_CACHE_HOME/dedos, else ~/.cache/dedos; layout <cache>/<name>/<file>", () => {
    assert.equal(cacheDir({ DEDOS_CACHE: "/c", XDG_CACHE_HOME: "/x" }), "/c");
    assert.equal(cacheDir({ XDG_CACHE_HOME: "/x" }), join("/x", "dedos"));
    assert.equal(cacheDir({}), join(homedir(), ".cache", "dedos"));
    assert.equal(weightPath("catseg-vitb", { cacheDir: "/c" }), join("/c", "catseg-vitb", "model_base.pth"));
    assert.equal(weightPath("sd2-base", { cacheDir: "/c" }), join("/c", "sd2-base"));
  });
});
