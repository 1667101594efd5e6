// fetchWeights against a local HTTP server: redirects, resume with Range, verification, errors, offline mode,
// abort, progress, DEDOS_ENDPOINT and folder weights.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { markerPath, weightPath } from "../../src/weights/cache.js";
import { type FetchProgress, fetchWeights, WeightsError } from "../../src/weights/download.js";
import { getWeight, registerWeight, unregisterWeight, type WeightFile } from "../../src/weights/registry.js";
import { resolveWeights } from "../../src/weights/resolve.js";
import { tempDir } from "../temp-dir.js";
import { type Route, sha256, startServer, type TestServer, testBytes } from "./server.js";

let a: TestServer; // 127.0.0.1
let b: TestServer; // the "CDN": another host name (localhost) and port
let cache: string;
const names: string[] = [];
const FAST = { retryDelayMs: 5 };

/** Serves `body` at `path` on server a, registers a one-file weight for it and returns the name. */
function serve(
  name: string,
  body: Buffer,
  route: Omit<Route, "body"> = {},
  meta: { size?: boolean; sha256?: string | false; url?: string } = {},
): string {
  const path = `/files/${name}.bin`;
  a.routes.set(path, { body, ...route });
  const file: WeightFile = {
    path: `${name}.bin`,
    url: meta.url ?? `${a.origin}${path}`,
    ...(meta.size !== false && { size: body.length }),
    ...(meta.sha256 !== false && { sha256: meta.sha256 ?? sha256(body) }),
  };
  registerWeight({ name, kind: "file", files: [file], config: "test", licence: "test", description: "" });
  names.push(name);
  return name;
}

function requestsFor(s: TestServer, path: string) {
  return s.requests.filter((r) => r.path === path);
}

function assertMonotonic(events: FetchProgress[], total: number): void {
  assert.ok(events.length >= 2, `${events.length} progress events`);
  for (let i = 1; i < events.length; i++)
    assert.ok(events[i]!.bytesDone >= events[i - 1]!.bytesDone, `event ${i} goes back`);
  const last = events[events.length - 1]!;
  assert.equal(last.bytesDone, total);
  assert.equal(last.bytesTotal, total);
  assert.equal(last.etaSeconds, 0);
}

async function rejectsWith(p: Promise<unknown>, kind: string): Promise<WeightsError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof WeightsError, `expected a WeightsError, got ${(e as Error).stack}`);
    assert.equal(e.kind, kind, e.message);
    return e;
  }
  assert.fail("expected the fetch to fail");
}

describe("fetchWeights", () => {
  before(async () => {
    a = await startServer("127.0.0.1");
    b = await startServer("localhost");
  });
  after(async () => {
    for (const n of names) unregisterWeight(n);
    await a.close();
    await b.close();
  });
  beforeEach(() => {
    cache = tempDir("dedos-weights-");
    delete process.env.DEDOS_OFFLINE;
    delete process.env.DEDOS_ENDPOINT;
  });

  it("downloads, verifies size and SHA-256, reports monotonic progress, and does not download twice", async () => {
    const body = testBytes(3_000_000, 1);
    const name = serve("plain", body);
    const events: FetchProgress[] = [];
    const path = await fetchWeights(name, { cacheDir: cache, onProgress: (p) => events.push(p) });
    assert.equal(path, join(cache, name, `${name}.bin`));
    assert.equal(path, weightPath(name, { cacheDir: cache }));
    assert.ok(readFileSync(path).equals(body));
    assertMonotonic(events, body.length);
    assert.ok(events.every((e) => e.name === name && e.file === `${name}.bin`));
    assert.deepEqual(readdirSync(join(cache, name)).sort(), [`.${name}.bin.verified`, `${name}.bin`]);
    const marker = JSON.parse(readFileSync(markerPath(path), "utf8"));
    assert.equal(marker.sha256, sha256(body));
    const seen = a.requests.length;
    assert.equal(await fetchWeights(name, { cacheDir: cache }), path);
    assert.equal(a.requests.length, seen, "a complete cached file is not requested again");
  });

  it("follows a Hub-style 302 to another host name, and a relative Location", async () => {
    const body = testBytes(500_000, 2);
    b.routes.set("/cdn/blob-2", { body });
    a.routes.set("/hub/resolve/main/w.bin", { redirect: `${b.origin}/cdn/blob-2` });
    const hub = "redirected";
    const file = {
      path: "w.bin",
      url: `${a.origin}/hub/resolve/main/w.bin`,
      size: body.length,
      sha256: sha256(body),
    };
    registerWeight({ name: hub, kind: "file", files: [file], config: "", licence: "", description: "" });
    names.push(hub);
    const p = await fetchWeights(hub, { cacheDir: cache });
    assert.ok(readFileSync(p).equals(body));
    const cdn = requestsFor(b, "/cdn/blob-2");
    assert.equal(cdn.length, 1);
    assert.equal(cdn[0]!.host, `localhost:${b.port}`, "the second server was addressed by another host name");

    a.routes.set("/dir/rel/w.bin", { redirect: "../files/relative.bin" });
    const rel = serve("relative", body, {}, { url: `${a.origin}/dir/rel/w.bin` });
    a.routes.set("/dir/files/relative.bin", { body });
    assert.ok(readFileSync(await fetchWeights(rel, { cacheDir: cache })).equals(body));
    assert.equal(requestsFor(a, "/dir/files/relative.bin").length, 1);
  });

  it("resumes a connection destroyed mid-body with a Range request; the file is byte-identical", async () => {
    const body = testBytes(4_000_000, 3);
    const name = serve("dropped", body, { drop: "once" });
    const events: FetchProgress[] = [];
    const p = await fetchWeights(name, { cacheDir: cache, onProgress: (e) => events.push(e), ...FAST });
    assert.ok(readFileSync(p).equals(body));
    const reqs = requestsFor(a, `/files/${name}.bin`);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0]!.range, undefined);
    const m = /^bytes=(\d+)-$/.exec(reqs[1]!.range ?? "");
    assert.ok(m, `second request has a Range header: ${reqs[1]!.range}`);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) <= body.length / 2, `resumed at ${m[1]}`);
    assertMonotonic(events, body.length);
    assert.ok(!existsSync(`${p}.part`) && !existsSync(`${p}.lock`));
  });

  it("starts over when the server answers a resume with 200 (Range ignored)", async () => {
    const body = testBytes(2_000_000, 4);
    const name = serve("norange", body, { drop: "once", noRange: true });
    const p = await fetchWeights(name, { cacheDir: cache, ...FAST });
    assert.ok(readFileSync(p).equals(body));
    const reqs = requestsFor(a, `/files/${name}.bin`);
    assert.equal(reqs.length, 2);
    assert.match(reqs[1]!.range ?? "", /^bytes=\d+-$/);
  });

  it("a checksum mismatch leaves nothing under the final name, deletes the .part and names both hashes", async () => {
    const body = testBytes(300_000, 5);
    const wrong = "0".repeat(64);
    const name = serve("badsum", body, {}, { sha256: wrong });
    const e = await rejectsWith(fetchWeights(name, { cacheDir: cache }), "checksum");
    const final = join(cache, name, `${name}.bin`);
    assert.ok(
      e.message.includes(`"${name}"`) && e.message.includes(`${a.origin}/files/${name}.bin`),
      e.message,
    );
    assert.ok(e.message.includes(wrong) && e.message.includes(sha256(body)), e.message);
    assert.ok(!existsSync(final), "nothing under the final name");
    assert.ok(!existsSync(`${final}.part`), ".part deleted");
    assert.match(e.message, /deleted/);
  });

  it("a published size the server does not match is an error before any byte is kept", async () => {
    const body = testBytes(1000, 6);
    const name = `wrongsize`;
    a.routes.set(`/files/${name}.bin`, { body });
    const url = `${a.origin}/files/${name}.bin`;
    registerWeight({
      name,
      kind: "file",
      files: [{ path: `${name}.bin`, url, size: 999 }],
      config: "",
      licence: "",
      description: "",
    });
    names.push(name);
    const e = await rejectsWith(fetchWeights(name, { cacheDir: cache }), "size");
    assert.ok(e.message.includes(url) && /1000 bytes, the registry 999/.test(e.message), e.message);
    assert.ok(!existsSync(join(cache, name, `${name}.bin`)));
  });

  it("a 404 is one error naming the weight and the URL, without retries", async () => {
    const name = serve("missing", Buffer.alloc(10));
    a.routes.delete(`/files/${name}.bin`);
    const e = await rejectsWith(fetchWeights(name, { cacheDir: cache, ...FAST }), "http");
    assert.ok(
      e.message.includes(`"${name}"`) && e.message.includes(`${a.origin}/files/${name}.bin`),
      e.message,
    );
    assert.match(e.message, /HTTP 404/);
    assert.equal(requestsFor(a, `/files/${name}.bin`).length, 1);
    assert.ok(!existsSync(join(cache, name, `${name}.bin`)));
  });

  it("server errors are retried, then reported", async () => {
    const name = serve("busy", Buffer.alloc(10), { status: 503 });
    const e = await rejectsWith(fetchWeights(name, { cacheDir: cache, retries: 2, ...FAST }), "network");
    assert.match(e.message, /HTTP 503.*gave up after 3 attempts/);
    assert.equal(requestsFor(a, `/files/${name}.bin`).length, 3);
  });

  it("a dropped connection that does not recover fails with one message naming weight and URL", async () => {
    const body = testBytes(100_000, 7);
    const name = serve("dead", body, { dropAtStart: true });
    const e = await rejectsWith(fetchWeights(name, { cacheDir: cache, retries: 3, ...FAST }), "network");
    assert.ok(
      e.message.includes(`"${name}"`) && e.message.includes(`${a.origin}/files/${name}.bin`),
      e.message,
    );
    assert.match(e.message, /connection (dropped|closed) at byte 0.*gave up after 4 attempts/);
    assert.equal(requestsFor(a, `/files/${name}.bin`).length, 4);
    assert.ok(!existsSync(join(cache, name, `${name}.bin`)));
  });

  it("DEDOS_OFFLINE=1 sends no request; a missing file is an error naming its path and URL", async () => {
    const body = testBytes(1000, 8);
    const name = serve("offline", body);
    const seen = a.requests.length;
    process.env.DEDOS_OFFLINE = "1";
    try {
      const e = await rejectsWith(fetchWeights(name, { cacheDir: cache }), "offline");
      const final = join(cache, name, `${name}.bin`);
      assert.ok(e.message.includes(final) && e.message.includes(`${a.origin}/files/${name}.bin`), e.message);
      assert.ok(e.message.includes(`"${name}"`) && e.message.includes("DEDOS_OFFLINE=1"), e.message);
      assert.equal(a.requests.length, seen);
      delete process.env.DEDOS_OFFLINE;
      await fetchWeights(name, { cacheDir: cache });
      process.env.DEDOS_OFFLINE = "1";
      const seen2 = a.requests.length;
      assert.equal(await fetchWeights(name, { cacheDir: cache }), final, "a cached file is found offline");
      assert.equal(a.requests.length, seen2);
    } finally {
      delete process.env.DEDOS_OFFLINE;
    }
  });

  it("an aborted signal stops the transfer with one message; the .part is kept and the next fetch resumes", async () => {
    const body = testBytes(2_000_000, 9);
    const name = serve("aborted", body, { slow: true });
    const ac = new AbortController();
    const p = fetchWeights(name, {
      cacheDir: cache,
      signal: ac.signal,
      onProgress: (e) => {
        if (e.bytesDone > 0) ac.abort();
      },
    });
    const e = await rejectsWith(p, "aborted");
    assert.ok(
      e.message.includes(`"${name}"`) && e.message.includes(`${a.origin}/files/${name}.bin`),
      e.message,
    );
    const final = join(cache, name, `${name}.bin`);
    assert.ok(!existsSync(final) && existsSync(`${final}.part`) && !existsSync(`${final}.lock`));
    const kept = readFileSync(`${final}.part`).length;
    assert.ok(kept > 0 && kept < body.length, `kept ${kept}`);
    a.routes.set(`/files/${name}.bin`, { body });
    assert.ok(readFileSync(await fetchWeights(name, { cacheDir: cache })).equals(body));
    const last = requestsFor(a, `/files/${name}.bin`).at(-1)!;
    assert.equal(last.range, `bytes=${kept}-`, "resumed after the bytes already on disk (hashed first)");
  });

  it("a file changed on the server between two fetches is fetched whole (If-Range), not spliced", async () => {
    const old = testBytes(1_500_000, 17);
    const name = serve("updated", old, { slow: true }, { size: false, sha256: false });
    const ac = new AbortController();
    const first = fetchWeights(name, {
      cacheDir: cache,
      signal: ac.signal,
      onProgress: (e) => {
        if (e.bytesDone > 0) ac.abort();
      },
    });
    await rejectsWith(first, "aborted");
    const final = join(cache, name, `${name}.bin`);
    assert.equal(readFileSync(`${final}.part.validator`, "utf8"), `"${sha256(old)}"`);
    const updated = testBytes(1_500_000, 18);
    a.routes.set(`/files/${name}.bin`, { body: updated });
    assert.ok(readFileSync(await fetchWeights(name, { cacheDir: cache })).equals(updated));
    const last = requestsFor(a, `/files/${name}.bin`).at(-1)!;
    assert.match(last.range ?? "", /^bytes=[1-9]\d*-$/);
    assert.equal(last.ifRange, `"${sha256(old)}"`);
    assert.deepEqual(readdirSync(join(cache, name)).sort(), [`.${name}.bin.verified`, `${name}.bin`]);
  });

  it("a file changed in the cache is re-hashed and downloaded again; an unchanged one only re-hashed", async () => {
    const body = testBytes(200_000, 10);
    const name = serve("changed", body);
    const final = await fetchWeights(name, { cacheDir: cache });
    const later = new Date(Date.now() + 5000);
    utimesSync(final, later, later); // same bytes, new mtime: the marker is stale, a re-hash confirms it
    let seen = a.requests.length;
    await fetchWeights(name, { cacheDir: cache });
    assert.equal(a.requests.length, seen);
    const bad = Buffer.from(body);
    bad[1234]! ^= 0xff;
    writeFileSync(final, bad); // same size, different bytes
    seen = a.requests.length;
    await fetchWeights(name, { cacheDir: cache });
    assert.equal(a.requests.length, seen + 1);
    assert.ok(readFileSync(final).equals(body));
  });

  it("concurrent fetches of one weight share one download", async () => {
    const body = testBytes(1_000_000, 11);
    const name = serve("shared", body);
    const [p1, p2] = await Promise.all([
      fetchWeights(name, { cacheDir: cache }),
      fetchWeights(name, { cacheDir: cache }),
    ]);
    assert.equal(p1, p2);
    assert.equal(requestsFor(a, `/files/${name}.bin`).length, 1);
    assert.ok(readFileSync(p1).equals(body));
  });

  it("a caller sharing a download that another caller aborts goes on with its own", async () => {
    const body = testBytes(600_000, 15);
    const name = serve("shared-abort", body, { slow: true });
    const ac = new AbortController();
    const first = fetchWeights(name, { cacheDir: cache, signal: ac.signal, onProgress: () => ac.abort() });
    const second = fetchWeights(name, { cacheDir: cache });
    await rejectsWith(first, "aborted");
    assert.ok(readFileSync(await second).equals(body));
  });

  it("waits for another process's lock on the file, and takes over a stale one", async () => {
    const body = testBytes(100_000, 16);
    const name = serve("locked", body);
    const final = join(cache, name, `${name}.bin`);
    mkdirSync(dirname(final), { recursive: true });
    writeFileSync(`${final}.lock`, JSON.stringify({ pid: process.pid, host: hostname() }));
    setTimeout(() => rmSync(`${final}.lock`), 700);
    const t = performance.now();
    await fetchWeights(name, { cacheDir: cache });
    assert.ok(performance.now() - t >= 650, "waited for the live lock");
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    const name2 = serve("stale-lock", body);
    const final2 = join(cache, name2, `${name2}.bin`);
    mkdirSync(dirname(final2), { recursive: true });
    writeFileSync(`${final2}.lock`, JSON.stringify({ pid: dead, host: hostname() }));
    assert.ok(readFileSync(await fetchWeights(name2, { cacheDir: cache })).equals(body));
    assert.ok(!existsSync(`${final2}.lock`));
  });

  it("without a published size or hash, the server's Content-Length is checked", async () => {
    const body = testBytes(700_000, 12);
    const name = serve("unknown", body, { drop: "once" }, { size: false, sha256: false });
    const events: FetchProgress[] = [];
    const p = await fetchWeights(name, { cacheDir: cache, onProgress: (e) => events.push(e), ...FAST });
    assert.ok(readFileSync(p).equals(body));
    assertMonotonic(events, body.length);
  });

  it("DEDOS_ENDPOINT replaces the Hugging Face host", async () => {
    const body = testBytes(50_000, 13);
    a.routes.set("/org/repo/resolve/main/x.bin", { body });
    const url = "https://huggingface.co/org/repo/resolve/main/x.bin";
    registerWeight({
      name: "hub-x",
      kind: "file",
      files: [{ path: "x.bin", url }],
      config: "",
      licence: "",
      description: "",
    });
    names.push("hub-x");
    process.env.DEDOS_ENDPOINT = `${a.origin}/`;
    try {
      assert.ok(readFileSync(await fetchWeights("hub-x", { cacheDir: cache })).equals(body));
      assert.equal(requestsFor(a, "/org/repo/resolve/main/x.bin").length, 1);
    } finally {
      delete process.env.DEDOS_ENDPOINT;
    }
  });

  it("a folder weight (the built-in sd2-base through DEDOS_ENDPOINT) fetches every file into one folder", async () => {
    const entry = getWeight("sd2-base");
    const bodies = new Map<string, Buffer>();
    entry.files.forEach((f, i) => {
      const body = testBytes(1000 + 977 * i, 100 + i);
      bodies.set(f.path, body);
      a.routes.set(`/stabilityai/stable-diffusion-2-base/resolve/main/${f.path}`, { body });
    });
    process.env.DEDOS_ENDPOINT = a.origin;
    const files = new Set<string>();
    try {
      const dir = await fetchWeights("sd2-base", { cacheDir: cache, onProgress: (p) => files.add(p.file) });
      assert.equal(dir, join(cache, "sd2-base"));
      for (const [path, body] of bodies) assert.ok(readFileSync(join(dir, path)).equals(body), path);
      assert.equal(files.size, entry.files.length);
      assert.ok(existsSync(join(dir, "unet", "diffusion_pytorch_model.safetensors")));
      assert.ok(existsSync(join(dir, "tokenizer", "merges.txt")));
    } finally {
      delete process.env.DEDOS_ENDPOINT;
    }
  });

  it("resolveWeights: an existing path as is, a name fetched, anything else an error listing the names", async () => {
    const body = testBytes(10_000, 14);
    const name = serve("byname", body);
    process.env.DEDOS_CACHE = cache;
    try {
      const p = await resolveWeights(name);
      assert.equal(p, join(cache, name, `${name}.bin`));
      assert.equal(await resolveWeights(p), p);
      await assert.rejects(resolveWeights(join(cache, "nope.pth")), (e: Error) => {
        assert.match(e.message, /no such file or folder/);
        assert.match(e.message, /catseg-vitb, catseg-vitl, clip-vitb16, clip-vitl14-336, sd2-base/);
        return true;
      });
    } finally {
      delete process.env.DEDOS_CACHE;
    }
  });
});
