// `dedos weights` as a child process of dist/src/cli/main.js, its registry extended by DEDOS_REGISTRY_EXTRA
// to weights served by a local HTTP server, its cache in a temporary DEDOS_CACHE.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../temp-dir.js";
import { sha256, startServer, type TestServer, testBytes } from "./server.js";

let server: TestServer;
let cache: string;
let extra: string;
const good = testBytes(600_000, 21);
const other = testBytes(2_000, 22);

/** Runs the CLI without blocking this process (the server answers from here). */
function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DEDOS_")));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["dist/src/cli/main.js", "weights", ...args],
      { env: { ...base, DEDOS_CACHE: cache, DEDOS_REGISTRY_EXTRA: extra, ...env }, encoding: "utf8" },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe("dedos weights (CLI)", () => {
  before(async () => {
    server = await startServer();
    server.routes.set("/w/good.pth", { body: good });
    server.routes.set("/w/other.bin", { body: other });
    cache = tempDir("dedos-weights-cli-");
    extra = join(tempDir("dedos-weights-reg-"), "extra.json");
    writeFileSync(
      extra,
      JSON.stringify({
        "test-good": {
          url: `${server.origin}/w/good.pth`,
          size: good.length,
          sha256: sha256(good),
          config: "vitb_384",
          licence: "test data, public domain",
        },
        "test-nohash": { url: `${server.origin}/w/other.bin`, config: "none", licence: "test" },
      }),
    );
  });
  after(() => server.close());

  it("--help teaches the subcommands and the environment; an unknown name is a usage error", async () => {
    const h = await cli(["--help"]);
    assert.equal(h.code, 0);
    for (const word of ["list", "fetch", "path", "verify", "DEDOS_CACHE", "DEDOS_OFFLINE", "DEDOS_ENDPOINT"])
      assert.ok(h.stdout.includes(word), word);
    assert.match(h.stdout, /DEDOS_REGISTRY_EXTRA/);
    const u = await cli(["fetch", "no-such-weight"]);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /unknown weight name "no-such-weight".*catseg-vitb/);
  });

  it("list shows every name with size, cache state, config and licence", async () => {
    const r = await cli(["list"]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of ["catseg-vitb", "catseg-vitl", "clip-vitb16", "clip-vitl14-336", "sd2-base", "test-good"])
      assert.match(r.stdout, new RegExp(`^${n}\\s`, "m"));
    assert.match(r.stdout, /^test-good\s+600\.0 kB\s+no\s+vitb_384\s+test data, public domain$/m);
    assert.match(r.stdout, /^catseg-vitb\s+\?\s+no\s+vitb_384\s+CAT-Seg, MIT$/m);
    assert.match(r.stdout, /^sd2-base\s.*CreativeML Open RAIL\+\+-M$/m);
    const j = await cli(["list", "--json"]);
    const rows = JSON.parse(j.stdout) as { name: string; cached: string; files: { url: string }[] }[];
    assert.equal(rows.find((x) => x.name === "clip-vitb16")!.cached, "no");
  });

  it("path with DEDOS_OFFLINE=1: no request, an error naming path and URL; fetch downloads; then path prints it", async () => {
    const seen = server.requests.length;
    const off = await cli(["path", "test-good"], { DEDOS_OFFLINE: "1" });
    assert.equal(off.code, 1);
    const final = join(cache, "test-good", "good.pth");
    assert.ok(off.stderr.includes(final) && off.stderr.includes(`${server.origin}/w/good.pth`), off.stderr);
    assert.equal(server.requests.length, seen, "offline: nothing reached the server");

    const f = await cli(["fetch", "test-good", "test-nohash"]);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(f.stdout.trim().split("\n"), [final, join(cache, "test-nohash", "other.bin")]);
    assert.ok(readFileSync(final).equals(good));

    const n = server.requests.length;
    const p = await cli(["path", "test-good"], { DEDOS_OFFLINE: "1" });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, `${final}\n`);
    assert.equal(server.requests.length, n);
    const l = await cli(["list"]);
    assert.match(l.stdout, /^test-good\s+600\.0 kB\s+yes\s/m);
  });

  it("verify: ok for a good file, MISMATCH (exit 1) with both hashes for a corrupted one", async () => {
    const ok = await cli(["verify", "test-good", "test-nohash", "clip-vitb16"]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^ok\s+test-good\/good\.pth$/m);
    assert.match(ok.stdout, /^unknown hash\s+test-nohash\/other\.bin$/m);
    assert.match(ok.stdout, /^not cached\s+clip-vitb16\/ViT-B-16\.pt$/m);

    const final = join(cache, "test-good", "good.pth");
    const bad = Buffer.from(good);
    bad[100]! ^= 1;
    writeFileSync(final, bad);
    const mm = await cli(["verify", "test-good"]);
    assert.equal(mm.code, 1);
    assert.match(mm.stdout, /^MISMATCH\s+test-good\/good\.pth/m);
    assert.ok(mm.stdout.includes(sha256(good)) && mm.stdout.includes(sha256(bad)), mm.stdout);

    const again = await cli(["fetch", "test-good"]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(readFileSync(final).equals(good), "fetch replaces the mismatching file");
    assert.equal((await cli(["verify"])).code, 0);
  });
});
