// `dedos prepare ade847`: CAT-Seg's id→trainId table (as data), the full-format decoding, the cv2 resizes and
// the PIL JPEG encoding reproduced bit for bit (reference outputs in test/data/ade847, made by
// scripts/make-test-ade847.py with OpenCV / Pillow / NumPy), and the preparation run on synthetic copies of
// the ADE20K_2021_17_01 layout.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { prepareCommand } from "../../src/cli/prepare.js";
import {
  ADE847_IGNORE,
  ade847Lut,
  ade847ResizeTarget,
  cvResizeLinear8u,
  cvResizeNearest,
  decodeAdeSegPng,
  encodeJpegPil,
  loadAde847Table,
  mapAde847,
  readImagePil,
} from "../../src/data/ade847.js";
import { BENCHMARKS, loadClassNames } from "../../src/data/benchmarks.js";
import { encodePng, readLabelMap } from "../../src/data/labels.js";
import { PREPARE_SUPPORTED, prepareDataset } from "../../src/data/prepare.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

const ROOT = PACKAGE_ROOT;
const ASSETS = join(ROOT, "assets");
const FIX = join(ROOT, "test", "data", "ade847");
const TMP = mkdtempSync(join(tmpdir(), "dedos-ade847-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

interface Expected {
  linear: {
    sw: number;
    sh: number;
    cn: 1 | 3;
    dw: number;
    dh: number;
    seed: number;
    sha256: string;
    head: number[];
  }[];
  nearest: { sw: number; sh: number; dw: number; dh: number; seed: number; sha256: string; head: number[] }[];
  jpeg: { w: number; h: number; cn: 1 | 3; seed: number; sha256: string }[];
  samples: {
    name: string;
    width: number;
    height: number;
    image_sha256: string;
    label_sha256: string;
    label_values: number[];
    label_pixels: [number, number, number][];
  }[];
}
const EXPECTED = JSON.parse(readFileSync(join(FIX, "expected.json"), "utf8")) as Expected;

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const bytesOf = (a: Uint16Array | Int32Array): Uint8Array =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const quiet = { progress: false, log: () => {} };

/** xorshift32, as scripts/make-test-ade847.py. */
function noise(n: number, seed: number): Uint32Array {
  let x = seed >>> 0 || 1;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x;
  }
  return out;
}

function counts(a: ArrayLike<number>): Record<number, number> {
  const c: Record<number, number> = {};
  for (let i = 0; i < a.length; i++) c[a[i]!] = (c[a[i]!] ?? 0) + 1;
  return c;
}

/** A full-format RGB annotation: R = floor(id/256)·10 + rDigit, G = id mod 256, B = instance. */
function fullFormatPng(w: number, h: number, ids: number[], rDigit = 0): Buffer {
  const rgb = new Uint8Array(w * h * 3);
  ids.forEach((id, i) => {
    rgb[3 * i] = Math.floor(id / 256) * 10 + rDigit;
    rgb[3 * i + 1] = id % 256;
    rgb[3 * i + 2] = (i * 37) % 256;
  });
  return encodePng({ width: w, height: h, channels: 3, data: rgb });
}

describe("ADE-847 id→trainId table (assets/classes/ade847-ids.json)", () => {
  const table = loadAde847Table();

  it("has 847 rows in trainId order whose names are the bundled class list", () => {
    assert.equal(table.length, 847);
    table.forEach((r, k) => {
      assert.equal(r.trainId, k);
    });
    assert.deepEqual(
      table.map((r) => r.name),
      loadClassNames(BENCHMARKS.ade847),
    );
    assert.equal(new Set(table.map((r) => r.id)).size, 847);
    assert.deepEqual(table[0], { name: "wall", id: 2978, trainId: 0 });
    assert.deepEqual(table[11], {
      name: "person, individual, someone, somebody, mortal, soul",
      id: 1831,
      trainId: 11,
    });
    assert.deepEqual(table[846], { name: "adding machine, totalizer, totaliser", id: 3148, trainId: 846 });
  });

  it("ids below 3100 follow ADE20K's alphabetical object list (a check on every id)", () => {
    // ADE20K numbers its objects in alphabetical order of their names, with a few later additions past
    // 3100; a mistyped id would almost surely break the order.
    const sorted = table.filter((r) => r.id < 3100).sort((a, b) => a.id - b.id);
    assert.equal(sorted.length, 827);
    for (let i = 1; i < sorted.length; i++)
      assert.ok(sorted[i - 1]!.name < sorted[i]!.name, `${sorted[i - 1]!.name} / ${sorted[i]!.name}`);
  });

  it("agrees with every row of mapFromADE.txt (ADE-150 class k ← full-format id) that it covers", () => {
    const ade150 = loadClassNames(BENCHMARKS.ade150);
    const byId = new Map(table.map((r) => [r.id, r]));
    const rows = readFileSync(join(ASSETS, "ade20k", "full_format", "mapFromADE.txt"), "utf8")
      .split(/\r?\n/)
      .map((l) => l.trim().split(/\s+/).map(Number))
      .filter((p) => p.length >= 2 && p.every(Number.isFinite)) as [number, number][];
    assert.equal(rows.length, 153);
    assert.deepEqual(
      [...new Set(rows.map((r) => r[0]))].sort((a, b) => a - b),
      Array.from({ length: 150 }, (_, i) => i + 1),
    );
    // ADE-150 merged a few full-format classes into one: those rows name a different (narrower) class.
    const merged = new Set(["15:783", "36:533"]);
    const missing: string[] = [];
    for (const [k, id] of rows) {
      const r = byId.get(id);
      if (!r) {
        missing.push(`${k}:${id}`);
        continue;
      }
      const syn150 = ade150[k - 1]!.split(",").map((s) => s.trim());
      const syn847 = r.name.split(",").map((s) => s.trim());
      const shared = syn150.some((s) => syn847.includes(s));
      assert.equal(shared, !merged.has(`${k}:${id}`), `row ${k} ${id}: "${ade150[k - 1]}" vs "${r.name}"`);
    }
    // the one id of mapFromADE outside the 847: a second id of ADE-150 "booth" (89), which CAT-Seg ignores
    assert.deepEqual(missing, ["89:246"]);
    assert.equal(mapAde847([246])[0], ADE847_IGNORE);
    assert.equal(byId.get(247)!.name, "booth, cubicle, stall, kiosk");
  });

  it("maps ids through the table, everything else (0 included) to 65535", () => {
    const lut = ade847Lut();
    assert.deepEqual(
      Array.from(mapAde847([2978, 0, 3148, 312, 6655, 1, 65535, 1831], lut)),
      [0, 65535, 846, 1, 65535, 65535, 65535, 11],
    );
  });
});

describe("the real full-format annotation (ADE_train_00000970_raw.png)", () => {
  const raw = decodeAdeSegPng(
    readFileSync(join(ASSETS, "ade20k", "full_format", "ADE_train_00000970_raw.png")),
  );

  it("decodes to the expected ids and maps to the expected trainIds, pixel by pixel", () => {
    assert.equal(raw.width, 1024);
    assert.equal(raw.height, 768);
    assert.deepEqual(counts(raw.data), {
      0: 10027,
      312: 183492,
      838: 17341,
      1125: 4288,
      1910: 38354,
      2128: 95064,
      2855: 437866,
    });
    const m = mapAde847(raw.data);
    assert.deepEqual(counts(m), {
      1: 183492,
      3: 437866,
      9: 17341,
      12: 4288,
      16: 38354,
      35: 95064,
      65535: 10027,
    });
    const names = loadClassNames(BENCHMARKS.ade847);
    const at = (x: number, y: number) => m[y * raw.width + x]!;
    // (x, y, trainId, name): building (R,G)=(10,56), earth (30,70), grass (40,101), plant (70,118),
    // river (80,80), tree (110,39), unlabelled (0,0)
    for (const [x, y, t, name] of [
      [624, 440, 1, "building, edifice"],
      [638, 660, 9, "earth, ground"],
      [46, 597, 12, "grass"],
      [861, 635, 16, "plant, flora, plant life"],
      [90, 719, 35, "river"],
      [126, 215, 3, "tree"],
      [512, 100, 3, "tree"],
    ] as const) {
      assert.equal(at(x, y), t);
      assert.equal(names[t], name);
    }
    assert.equal(at(232, 587), 65535);
    assert.equal(at(0, 0), 65535);
  });

  it("resized as CAT-Seg (1024×768 → 683×512) it matches the ADE-150 challenge mask made from it", async () => {
    const t = ade847ResizeTarget(raw.width, raw.height)!;
    assert.deepEqual(t, { width: 683, height: 512 });
    const small = mapAde847(
      cvResizeNearest(raw.data as Uint16Array, raw.width, raw.height, 1, t.width, t.height),
    );
    const ch = await readLabelMap(join(ASSETS, "ade20k", "full_format", "ADE_train_00000970_challenge.png"));
    assert.equal(ch.width, 683);
    assert.equal(ch.height, 512);
    // ADE-150 class → ADE-847 trainId for the classes present (building, tree, grass, earth, plant, river)
    const corr = new Map([
      [0, 65535],
      [2, 1],
      [5, 3],
      [10, 12],
      [14, 9],
      [18, 16],
      [61, 35],
    ]);
    let agree = 0;
    for (let i = 0; i < small.length; i++) if (corr.get(ch.data[i]!) === small[i]) agree++;
    // The challenge mask was resized by MATLAB's nearest rule, which samples slightly differently.
    assert.ok(agree / small.length > 0.99, `${agree / small.length}`);
    assert.deepEqual(counts(small), {
      1: 81537,
      3: 194925,
      9: 7679,
      12: 1932,
      16: 17054,
      35: 42208,
      65535: 4361,
    });
  });
});

describe("CAT-Seg's resize rule and cv2's resizes, bit for bit", () => {
  it("short side to 512 when larger, long side rounded half to even", () => {
    assert.deepEqual(ade847ResizeTarget(1024, 768), { width: 683, height: 512 });
    assert.deepEqual(ade847ResizeTarget(600, 1000), { width: 512, height: 853 });
    assert.deepEqual(ade847ResizeTarget(513, 513), { width: 512, height: 512 });
    assert.deepEqual(ade847ResizeTarget(1025, 1024), { width: 512, height: 512 }); // 512.5 → 512
    assert.deepEqual(ade847ResizeTarget(1027, 1024), { width: 514, height: 512 }); // 513.5 → 514
    assert.equal(ade847ResizeTarget(683, 512), null);
    assert.equal(ade847ResizeTarget(512, 2000), null);
    assert.equal(ade847ResizeTarget(300, 200), null);
  });

  it("INTER_LINEAR (uint8, 1 and 3 channels, incl. the exact-halving shortcut) equals OpenCV", () => {
    assert.equal(EXPECTED.linear.length, 7);
    for (const c of EXPECTED.linear) {
      const src = Uint8Array.from(noise(c.sw * c.sh * c.cn, c.seed), (v) => v & 255);
      const dst = cvResizeLinear8u(src, c.sw, c.sh, c.cn, c.dw, c.dh);
      const what = `${c.sw}×${c.sh}×${c.cn} → ${c.dw}×${c.dh}`;
      assert.deepEqual(Array.from(dst.subarray(0, 12)), c.head, what);
      assert.equal(sha256(dst), c.sha256, what);
    }
  });

  it("INTER_NEAREST (int32 id maps) equals OpenCV", () => {
    for (const c of EXPECTED.nearest) {
      const src = Int32Array.from(noise(c.sw * c.sh, c.seed), (v) => v & 0x1fff);
      const dst = cvResizeNearest(src, c.sw, c.sh, 1, c.dw, c.dh);
      const what = `${c.sw}×${c.sh} → ${c.dw}×${c.dh}`;
      assert.deepEqual(Array.from(dst.subarray(0, 12)), c.head, what);
      assert.equal(sha256(bytesOf(dst)), c.sha256, what);
    }
  });

  it("JPEG encoding gives the bytes of PIL's Image.fromarray(a).save(f) (RGB and greyscale)", async () => {
    for (const c of EXPECTED.jpeg) {
      const data = Uint8Array.from(noise(c.w * c.h * c.cn, c.seed), (v) => ((v & 255) >> 1) + 64);
      const jpg = await encodeJpegPil({ data, width: c.w, height: c.h, channels: c.cn });
      assert.equal(sha256(jpg), c.sha256, `${c.w}×${c.h}×${c.cn}`);
      const back = await readImagePil(jpg);
      assert.equal(back.channels, c.cn);
      assert.equal(back.width, c.w);
    }
  });

  it("images are read as stored: EXIF orientation and greyscale kept", async () => {
    const file = join(TMP, "rotated.jpg");
    await sharp({ create: { width: 6, height: 4, channels: 3, background: "#336699" } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(file);
    const img = await readImagePil(file);
    assert.deepEqual([img.width, img.height, img.channels], [6, 4, 3]);
    const grey = await sharp({ create: { width: 5, height: 3, channels: 3, background: "#777777" } })
      .toColourspace("b-w")
      .jpeg()
      .toBuffer();
    assert.equal((await readImagePil(grey)).channels, 1);
  });
});

describe("dedos prepare ade847 on a synthetic ADE20K_2021_17_01", () => {
  const root = join(TMP, "datasets");
  const ds = join(root, "ADE20K_2021_17_01");
  const val = join(ds, "images", "ADE", "validation");
  const dirA = join(val, "cultural", "apse__indoor");
  const dirB = join(val, "urban", "street");
  const gtDir = join(ds, "annotations_detectron2", "validation");
  const imDir = join(ds, "images_detectron2", "validation");
  // tiny samples: ids (row-major 4×3) and the exact trainIds they must give
  const tiny: [string, string, number[], number[]][] = [
    [
      dirA,
      "ADE_val_00000001",
      [2978, 2978, 0, 312, 3148, 246, 6655, 1831, 2855, 2855, 1125, 0],
      [0, 0, 65535, 1, 846, 65535, 65535, 11, 3, 3, 12, 65535],
    ],
    [dirB, "ADE_val_00000002", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], Array(12).fill(65535)],
    [dirB, "ADE_val_00000003", Array(12).fill(2420), Array(12).fill(2)],
  ];

  async function writeTinyJpg(file: string): Promise<void> {
    await sharp({ create: { width: 4, height: 3, channels: 3, background: "#808080" } })
      .jpeg()
      .toFile(file);
  }

  it("builds the exact uint16 TIFFs and PIL-identical images, skips training images, checks the count", async () => {
    mkdirSync(dirA, { recursive: true });
    mkdirSync(dirB, { recursive: true });
    for (const [dir, name, ids] of tiny) {
      await writeTinyJpg(join(dir, `${name}.jpg`));
      writeFileSync(join(dir, `${name}_seg.png`), fullFormatPng(4, 3, ids, name.endsWith("1") ? 7 : 0));
    }
    for (const s of EXPECTED.samples) {
      copyFileSync(join(FIX, `${s.name}.jpg`), join(dirA, `${s.name}.jpg`));
      copyFileSync(join(FIX, `${s.name}_seg.png`), join(dirA, `${s.name}_seg.png`));
    }
    // not part of the split: training images, part masks, other files
    const train = join(ds, "images", "ADE", "training", "urban", "street");
    mkdirSync(train, { recursive: true });
    await writeTinyJpg(join(train, "ADE_train_00000001.jpg"));
    await writeTinyJpg(join(train, "ADE_frame_00000001.jpg"));
    writeFileSync(join(dirA, "ADE_val_00000001_parts_1.png"), fullFormatPng(4, 3, Array(12).fill(0)));
    writeFileSync(join(dirA, "ADE_val_00000001.json"), "{}");

    const r = await prepareDataset("ade847", { ...quiet, root, expected: 5 });
    assert.equal(r.ok, true, JSON.stringify(r.failed));
    assert.equal(r.listed, 5);
    assert.equal(r.written, 5);
    assert.equal(r.present, 5);
    assert.equal(r.outDir, gtDir);
    assert.deepEqual(readdirSync(gtDir).sort(), [
      "ADE_val_00000001.tif",
      "ADE_val_00000002.tif",
      "ADE_val_00000003.tif",
      "ADE_val_00000100.tif",
      "ADE_val_00000200.tif",
    ]);
    assert.deepEqual(
      readdirSync(imDir).sort(),
      readdirSync(gtDir)
        .sort()
        .map((f) => f.replace(".tif", ".jpg")),
    );
    for (const [, name, , trainIds] of tiny) {
      const m = await readLabelMap(join(gtDir, `${name}.tif`));
      assert.ok(m.data instanceof Uint16Array);
      assert.deepEqual([m.width, m.height], [4, 3]);
      assert.deepEqual(Array.from(m.data), trainIds, name);
    }
    for (const s of EXPECTED.samples) {
      const m = await readLabelMap(join(gtDir, `${s.name}.tif`));
      assert.deepEqual([m.width, m.height], [s.width, s.height], s.name);
      assert.equal(sha256(bytesOf(m.data as Uint16Array)), s.label_sha256, s.name);
      assert.deepEqual(
        [...new Set(m.data)].sort((a, b) => a - b),
        s.label_values,
      );
      for (const [x, y, v] of s.label_pixels) assert.equal(m.data[y * m.width + x], v, `${s.name} ${x},${y}`);
      const jpg = readFileSync(join(imDir, `${s.name}.jpg`));
      assert.equal(sha256(jpg), s.image_sha256, s.name);
      const meta = await sharp(jpg).metadata();
      assert.deepEqual([meta.width, meta.height], [s.width, s.height]);
    }
    // 640×520 → 630×512 (resized), 300×200 kept
    assert.deepEqual(
      EXPECTED.samples.map((s) => [s.width, s.height]),
      [
        [630, 512],
        [300, 200],
      ],
    );

    // the real split has 2000 images: 5 is a count mismatch
    const full = await prepareDataset("ade847", { ...quiet, root });
    assert.equal(full.expected, 2000);
    assert.equal(full.present, 5);
    assert.equal(full.ok, false);
  });

  it("re-runs idempotently, resumes after an interruption, and accepts the dataset folder as root", async () => {
    const tif = (n: string) => join(gtDir, `${n}.tif`);
    const mt = (f: string) => statSync(f).mtimeMs;
    const before = mt(tif("ADE_val_00000003"));
    const r1 = await prepareDataset("ade847", { ...quiet, root, expected: 5 });
    assert.equal(r1.upToDate, 5);
    assert.equal(r1.written, 0);
    assert.equal(r1.ok, true);
    assert.equal(mt(tif("ADE_val_00000003")), before);

    // an interrupted run: one label and another image missing, temporary files left behind
    rmSync(tif("ADE_val_00000001"));
    rmSync(join(imDir, "ADE_val_00000100.jpg"));
    writeFileSync(join(gtDir, ".ADE_val_00000002.tif.tmp-1-deadbeef"), "partial");
    writeFileSync(join(imDir, ".ADE_val_00000002.jpg.tmp-1-deadbeef"), "partial");
    const r2 = await prepareDataset("ade847", { ...quiet, root: ds, expected: 5 });
    assert.equal(r2.ok, true, JSON.stringify(r2.failed));
    assert.equal(r2.written, 2);
    assert.equal(r2.upToDate, 3);
    assert.equal(mt(tif("ADE_val_00000003")), before);
    assert.ok(!readdirSync(gtDir).some((f) => f.startsWith(".")));
    assert.ok(!readdirSync(imDir).some((f) => f.startsWith(".")));
    const s = EXPECTED.samples[0]!;
    assert.equal(sha256(readFileSync(join(imDir, `${s.name}.jpg`))), s.image_sha256);
    assert.deepEqual(Array.from((await readLabelMap(tif("ADE_val_00000001"))).data), tiny[0]![3]);

    // a newer input makes its outputs stale
    const seg = join(dirB, "ADE_val_00000003_seg.png");
    writeFileSync(seg, fullFormatPng(4, 3, Array(12).fill(2978)));
    const r3 = await prepareDataset("ade847", { ...quiet, root, expected: 5 });
    assert.equal(r3.written, 1);
    assert.deepEqual(Array.from((await readLabelMap(tif("ADE_val_00000003"))).data), Array(12).fill(0));
  });

  it("reports a corrupt or missing file by its name and goes on", async () => {
    const badSeg = join(dirB, "ADE_val_00000004_seg.png");
    const badJpg = join(dirB, "ADE_val_00000005.jpg");
    const noSeg = join(dirB, "ADE_val_00000006_seg.png");
    await writeTinyJpg(join(dirB, "ADE_val_00000004.jpg"));
    writeFileSync(badSeg, Buffer.from("garbage, not a png"));
    writeFileSync(badJpg, Buffer.from("garbage, not a jpeg"));
    writeFileSync(join(dirB, "ADE_val_00000005_seg.png"), fullFormatPng(4, 3, Array(12).fill(312)));
    await writeTinyJpg(join(dirB, "ADE_val_00000006.jpg"));
    const logs: string[] = [];
    const r = await prepareDataset("ade847", {
      progress: false,
      log: (m) => logs.push(m),
      root,
      expected: 8,
    });
    assert.equal(r.listed, 8);
    assert.equal(r.upToDate, 5);
    assert.equal(r.written, 0);
    assert.equal(r.ok, false);
    assert.deepEqual(r.failed.map((f) => f.file).sort(), [badSeg, badJpg, noSeg].sort());
    assert.match(r.failed.find((f) => f.file === badSeg)!.error, /corrupt PNG/);
    assert.match(r.failed.find((f) => f.file === badJpg)!.error, /cannot decode JPEG/);
    assert.match(r.failed.find((f) => f.file === noSeg)!.error, /missing input/);
    assert.ok(logs.some((l) => l.includes("ADE_val_00000004_seg.png")));
    assert.ok(!existsSync(join(gtDir, "ADE_val_00000004.tif")));
    assert.ok(!existsSync(join(imDir, "ADE_val_00000005.jpg")));

    // fixed inputs: the next run builds just those
    writeFileSync(badSeg, fullFormatPng(4, 3, Array(12).fill(3148)));
    await writeTinyJpg(badJpg);
    writeFileSync(noSeg, fullFormatPng(4, 3, Array(12).fill(0)));
    const r2 = await prepareDataset("ade847", { ...quiet, root, expected: 8 });
    assert.equal(r2.ok, true, JSON.stringify(r2.failed));
    assert.equal(r2.written, 3);
    assert.deepEqual(
      Array.from((await readLabelMap(join(gtDir, "ADE_val_00000004.tif"))).data),
      Array(12).fill(846),
    );
  });

  it("the command: ade847 is supported, a count mismatch exits 1, a missing layout is named", async () => {
    assert.ok(PREPARE_SUPPORTED.includes("ade847"));
    const err = console.error;
    const lines: string[] = [];
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      assert.equal(await prepareCommand(["ade847", "--root", root, "--no-progress"]), 1);
      assert.ok(
        lines.some((l) => /count check: 8 files, expected 2000: MISMATCH/.test(l)),
        lines.join("\n"),
      );
    } finally {
      console.error = err;
    }
    await assert.rejects(
      prepareDataset("ade847", { ...quiet, root: join(TMP, "nothing-here") }),
      /images[/\\]ADE[/\\]validation/,
    );
  });
});
