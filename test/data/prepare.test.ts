import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { prepareCommand } from "../../src/cli/prepare.js";
import {
  BENCHMARK_NAMES,
  BENCHMARKS,
  benchmarkPaths,
  getBenchmark,
  loadClassNames,
} from "../../src/data/benchmarks.js";
import {
  decodeAdeFullFormat,
  decodeCocoRle,
  decodePng,
  decodeVocColorMask,
  encodePng,
  pngToRgb,
  readLabelMap,
  rleCountsFromString,
  vocPalette,
} from "../../src/data/labels.js";
import {
  COCO_STUFF_171_LUT,
  mapAde150,
  mapCocoStuff171,
  mapPc59,
  mapVoc,
  PC59_IDS,
  prepareDataset,
} from "../../src/data/prepare.js";
import { ConfusionMatrix, computeMetrics } from "../../src/eval/semseg-metrics.js";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

const ASSETS = join(PACKAGE_ROOT, "assets");
const TMP = mkdtempSync(join(tmpdir(), "dedos-prepare-"));
after(() => rmSync(TMP, { recursive: true, force: true }));

const uniq = (a: ArrayLike<number>): number[] => [...new Set(Array.from(a))].sort((x, y) => x - y);
const quiet = { progress: false, log: () => {} };

function tmpDir(name: string): string {
  const d = join(TMP, name);
  mkdirSync(d, { recursive: true });
  return d;
}

async function writeJpg(file: string, w = 4, h = 3): Promise<void> {
  await sharp({ create: { width: w, height: h, channels: 3, background: "#808080" } })
    .jpeg()
    .toFile(file);
}

function writePng(file: string, w: number, h: number, values: number[], palette?: Uint8Array): void {
  writeFileSync(
    file,
    encodePng({
      width: w,
      height: h,
      channels: 1,
      data: Uint8Array.from(values),
      ...(palette ? { palette } : {}),
    }),
  );
}

/** pycocotools' rleToString, to build synthetic compressed RLE. */
function rleToString(cnts: number[]): string {
  let s = "";
  for (let i = 0; i < cnts.length; i++) {
    let x = cnts[i]!;
    if (i > 2) x -= cnts[i - 2]!;
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** Column-major RLE counts of a row-major binary mask. */
function rleEncode(mask: Uint8Array, h: number, w: number): number[] {
  const cnts: number[] = [];
  let v = 0;
  let run = 0;
  for (let k = 0; k < h * w; k++) {
    const b = mask[(k % h) * w + Math.floor(k / h)]!;
    if (b !== v) {
      cnts.push(run);
      run = 0;
      v = b;
    }
    run++;
  }
  cnts.push(run);
  return cnts;
}

describe("benchmark registry", () => {
  it("has the seven benchmarks with their split sizes, ignore labels and class files", () => {
    assert.deepEqual(
      [...BENCHMARK_NAMES],
      ["ade150", "ade847", "pc59", "pc459", "voc20", "voc20b", "cocostuff171"],
    );
    const sizes = BENCHMARK_NAMES.map((n) => BENCHMARKS[n].splitSize);
    assert.deepEqual(sizes, [2000, 2000, 5104, 5104, 1449, 1449, 5000]);
    assert.deepEqual(
      BENCHMARK_NAMES.map((n) => BENCHMARKS[n].ignoreLabel),
      [255, 65535, 255, 459, 255, 255, 255],
    );
    assert.equal(BENCHMARKS.ade847.gtFormat, "tiff-u16");
    assert.equal(BENCHMARKS.pc459.gtExt, "tif");
    assert.equal(BENCHMARKS.voc20b.foldBackground, true);
    assert.equal(BENCHMARKS.voc20b.numClasses, 21);
    for (const n of BENCHMARK_NAMES)
      assert.equal(loadClassNames(BENCHMARKS[n]).length, BENCHMARKS[n].numNames);
    assert.throws(() => getBenchmark("ade151"), /unknown benchmark 'ade151'/);
    const p = benchmarkPaths(BENCHMARKS.ade150, "/data");
    assert.equal(p.gtDir, "/data/ADEChallengeData2016/annotations_detectron2/validation");
    assert.equal(p.imageDir, "/data/ADEChallengeData2016/images/validation");
  });
});

describe("readers on the bundled real ground truth", () => {
  const ade = ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"];

  it("ADE-150 annotations: 8-bit grey, values in 0..150, the classes listed in LABELS.md", async () => {
    const sets: number[][] = [];
    for (const n of ade) {
      const m = await readLabelMap(join(ASSETS, "ade20k", "annotations", `${n}.png`));
      assert.ok(m.data instanceof Uint8Array);
      const s = await sharp(join(ASSETS, "ade20k", "annotations", `${n}.png`))
        .toColourspace("b-w")
        .raw()
        .toBuffer();
      assert.deepEqual(new Uint8Array(s), m.data);
      const u = uniq(m.data);
      assert.ok(u.every((v) => v >= 0 && v <= 150));
      sets.push(u);
    }
    assert.deepEqual(sets[0], [0, 1, 2, 3, 5, 7, 10, 18]);
    assert.equal(sets[2]!.length, 13);
    for (const k of [44, 81, 88, 97, 103]) assert.ok(sets[2]!.includes(k));
  });

  it("the three ADE val masks scored against themselves give mIoU 100", async () => {
    const conf = new ConfusionMatrix(150, 255);
    for (const n of ade) {
      const m = await readLabelMap(join(ASSETS, "ade20k", "annotations", `${n}.png`));
      const gt = mapAde150(m.data);
      assert.ok(uniq(gt).includes(255));
      const pred = gt.map((v) => (v === 255 ? 0 : v)); // ignored GT pixels are not counted anyway
      conf.add(pred, gt);
    }
    const r = computeMetrics(conf);
    assert.equal(r.mIoU, 100);
    assert.equal(r.mIoU_d2v06, 100);
    assert.equal(r.pACC, 100);
    assert.ok(Math.abs(r.fwIoU - 100) < 1e-9); // a sum of class weights: 100 up to rounding
  });

  it("VOC colour masks decode to the right class indices", () => {
    const expected: Record<string, number[]> = { "1": [0, 1, 255], "23": [0, 17, 255], "114": [0, 3, 255] };
    for (const [n, classes] of Object.entries(expected)) {
      const png = decodePng(readFileSync(join(ASSETS, "voc", `${n}_target.png`)));
      assert.equal(png.colorType, 2);
      const rgb = pngToRgb(png);
      const m = decodeVocColorMask(rgb, png.width, png.height);
      assert.deepEqual(uniq(m.data), classes);
      // pixel level: (128,64,0) is 17 sheep, (224,224,192) is void
      for (let i = 0; i < m.data.length; i += 97) {
        const c = [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]];
        if (m.data[i] === 17) assert.deepEqual(c, [128, 64, 0]);
        if (m.data[i] === 255) assert.deepEqual(c, [224, 224, 192]);
        if (m.data[i] === 0) assert.deepEqual(c, [0, 0, 0]);
      }
      // VOC-20: background → 255, k → k−1; VOC-20b: background → 20
      assert.deepEqual(
        uniq(mapVoc(m.data, "ignore")),
        classes
          .filter((k) => k > 0 && k < 255)
          .map((k) => k - 1)
          .concat([255]),
      );
      assert.ok(uniq(mapVoc(m.data, "class20")).includes(20));
    }
    assert.throws(
      () => decodeVocColorMask(Uint8Array.from([1, 2, 3]), 1, 1),
      /\(1,2,3\).*not in the VOC palette/,
    );
  });

  it("ADE full format decodes to the 847 and 150 ids of the notes", () => {
    const png = decodePng(readFileSync(join(ASSETS, "ade20k", "full_format", "ADE_train_00000970_raw.png")));
    const ids = decodeAdeFullFormat(pngToRgb(png), png.width, png.height);
    assert.deepEqual([png.width, png.height], [1024, 768]);
    assert.deepEqual(uniq(ids.data), [0, 312, 838, 1125, 1910, 2128, 2855]);
    // CAT-Seg ADE20K_SEM_SEG_FULL_CATEGORIES id → trainId, for these ids
    const to847 = new Map([
      [2855, 3],
      [312, 1],
      [2128, 35],
      [1910, 16],
      [838, 9],
      [1125, 12],
    ]);
    const t847 = uniq(Array.from(ids.data, (v) => to847.get(v) ?? 65535));
    assert.deepEqual(t847, [1, 3, 9, 12, 16, 35, 65535]);
    const names = loadClassNames(BENCHMARKS.ade847);
    assert.equal(names[3], "tree");
    assert.equal(names[35], "river");
    // mapFromADE.txt: ADE-150 index ← full id
    const map150 = new Map<number, number>();
    for (const line of readFileSync(join(ASSETS, "ade20k", "full_format", "mapFromADE.txt"), "utf8").split(
      "\n",
    )) {
      const [a, b] = line.trim().split(/\s+/).map(Number);
      if (Number.isInteger(a) && Number.isInteger(b)) map150.set(b!, a!);
    }
    const t150 = uniq(Array.from(ids.data, (v) => map150.get(v) ?? 0));
    assert.deepEqual(t150, [0, 2, 5, 10, 14, 18, 61]);
    const challenge = decodePng(
      readFileSync(join(ASSETS, "ade20k", "full_format", "ADE_train_00000970_challenge.png")),
    );
    assert.deepEqual(uniq(challenge.data), t150);
  });

  it("COCO-Stuff palette PNGs vs their RLE annotations in stuff_examples.json", () => {
    // Finding: the two PNGs come from cocostuffapi `results/segmentations/examples/` and are example *results*
    // (they hold classes absent from the annotations, e.g. 96 and 106 in image 934), so they agree with the
    // JSON annotations only in part. What is checked: the RLEs decode to the image size, are disjoint,
    // every id is a stuff id (92..183), each RLE has exactly the
    // area and bbox of its annotation, and the PNGs agree with them on a share of pixels (69% and 22%).
    const json = JSON.parse(readFileSync(join(ASSETS, "cocostuff", "stuff_examples.json"), "utf8")) as {
      images: { id: number; height: number; width: number }[];
      annotations: {
        image_id: number;
        category_id: number;
        area: number;
        bbox: number[];
        segmentation: { size: number[]; counts: string };
      }[];
    };
    assert.equal(json.annotations.length, 17);
    // exact: every decoded RLE has the annotation's area and bounding box
    for (const a of json.annotations) {
      const [h, w] = a.segmentation.size as [number, number];
      const m = decodeCocoRle({ size: [h, w], counts: a.segmentation.counts });
      let area = 0;
      let x0 = w;
      let y0 = h;
      let x1 = -1;
      let y1 = -1;
      for (let i = 0; i < m.length; i++) {
        if (!m[i]) continue;
        area++;
        const x = i % w;
        const y = Math.floor(i / w);
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
      assert.equal(area, a.area, `annotation ${a.category_id}: area`);
      assert.deepEqual([x0, y0, x1 - x0 + 1, y1 - y0 + 1], a.bbox, `annotation ${a.category_id}: bbox`);
    }
    const agreement: number[] = [];
    for (const im of json.images) {
      const png = decodePng(
        readFileSync(join(ASSETS, "cocostuff", `${String(im.id).padStart(12, "0")}.png`)),
      );
      assert.equal(png.colorType, 3);
      assert.deepEqual([png.width, png.height], [im.width, im.height]);
      assert.ok(uniq(png.data).every((v) => v >= 92 && v <= 183));
      const fromRle = new Uint8Array(im.width * im.height);
      for (const a of json.annotations.filter((x) => x.image_id === im.id)) {
        assert.deepEqual(a.segmentation.size, [im.height, im.width]);
        assert.ok(a.category_id >= 92 && a.category_id <= 183);
        const m = decodeCocoRle({ size: a.segmentation.size, counts: a.segmentation.counts });
        for (let i = 0; i < m.length; i++) {
          if (!m[i]) continue;
          assert.equal(fromRle[i], 0, "RLE masks overlap");
          fromRle[i] = a.category_id;
        }
      }
      let same = 0;
      for (let i = 0; i < fromRle.length; i++) if (fromRle[i] === png.data[i]) same++;
      agreement.push(same / fromRle.length);
    }
    assert.ok(agreement[0]! > 0.6 && agreement[1]! > 0.15, `agreement ${agreement}`);
    // control: the same comparison with the RLE read in row-major order (a classic bug) agrees far less
    const im = json.images[0]!;
    const png = decodePng(readFileSync(join(ASSETS, "cocostuff", `${String(im.id).padStart(12, "0")}.png`)));
    const wrong = new Uint8Array(im.width * im.height);
    for (const a of json.annotations.filter((x) => x.image_id === im.id)) {
      const m = decodeCocoRle({ size: [im.width, im.height], counts: a.segmentation.counts });
      for (let i = 0; i < m.length; i++) if (m[i]) wrong[i] = a.category_id;
    }
    let same = 0;
    for (let i = 0; i < wrong.length; i++) if (wrong[i] === png.data[i]) same++;
    assert.ok(
      same / wrong.length < agreement[0]! - 0.2,
      `row-major ${same / wrong.length} vs ${agreement[0]}`,
    );
  });

  it("RLE string codec round-trips (including negative deltas and long runs)", () => {
    const cnts = [0, 5, 300000, 2, 1, 70000, 3];
    assert.deepEqual(rleCountsFromString(rleToString(cnts)), cnts);
  });
});

describe("label mappings", () => {
  it("ADE-150, VOC, COCO-Stuff-171 and PC-59 tables", () => {
    assert.deepEqual(Array.from(mapAde150([0, 1, 150, 255])), [255, 0, 149, 254]);
    assert.deepEqual(Array.from(mapVoc([0, 1, 20, 255, 21], "ignore")), [255, 0, 19, 255, 255]);
    assert.deepEqual(Array.from(mapVoc([0, 1, 20, 255, 21], "class20")), [20, 0, 19, 255, 255]);
    assert.deepEqual(
      Array.from(mapCocoStuff171([0, 10, 11, 12, 25, 26, 89, 90, 91, 181, 182, 255])),
      [0, 10, 255, 11, 255, 24, 79, 255, 80, 170, 255, 255],
    );
    assert.equal(COCO_STUFF_171_LUT.filter((v) => v !== 255).length, 171);
    assert.equal(PC59_IDS.length, 60);
    assert.deepEqual(Array.from(mapPc59([0, 2, 9, 458, 1, 459])), [255, 0, 1, 58, 255, 255]);
  });
});

describe("dedos prepare on synthetic copies of the raw layouts", () => {
  it("ade150: raw−1 with 0→255, corrupt and missing files reported, resumable", async () => {
    const root = tmpDir("ade");
    const ds = join(root, "ADEChallengeData2016");
    const ann = join(ds, "annotations", "validation");
    const img = join(ds, "images", "validation");
    mkdirSync(ann, { recursive: true });
    mkdirSync(img, { recursive: true });
    const vals = [
      [0, 1, 2, 150, 10, 0],
      [5, 5, 5, 5, 5, 5],
      [150, 149, 0, 1, 2, 3],
    ];
    for (let k = 0; k < 3; k++) {
      writePng(join(ann, `ADE_val_${k}.png`), 3, 2, vals[k]!);
      await writeJpg(join(img, `ADE_val_${k}.jpg`));
    }
    writeFileSync(join(ann, "ADE_val_bad.png"), Buffer.from("garbage, not a png"));
    await writeJpg(join(img, "ADE_val_bad.jpg"));
    writePng(join(ann, "ADE_val_noimage.png"), 3, 2, [1, 1, 1, 1, 1, 1]);
    const logs: string[] = [];
    const r1 = await prepareDataset("ade150", {
      root,
      progress: false,
      log: (m) => logs.push(m),
      expected: 4,
    });
    assert.equal(r1.listed, 5);
    assert.equal(r1.written, 4);
    assert.equal(r1.failed.length, 2);
    assert.ok(r1.failed.some((f) => f.file.endsWith("ADE_val_bad.png") && /corrupt PNG/.test(f.error)));
    assert.ok(r1.failed.some((f) => f.file.endsWith("ADE_val_noimage.jpg") && /image missing/.test(f.error)));
    assert.ok(logs.some((l) => l.includes("ADE_val_bad.png")));
    assert.equal(r1.ok, false);
    const out = join(ds, "annotations_detectron2", "validation");
    for (let k = 0; k < 3; k++) {
      const m = await readLabelMap(join(out, `ADE_val_${k}.png`));
      assert.deepEqual(Array.from(m.data), Array.from(mapAde150(vals[k]!)));
    }
    assert.deepEqual(
      Array.from((await readLabelMap(join(out, "ADE_val_0.png"))).data),
      [255, 0, 1, 149, 9, 255],
    );
    assert.ok(!existsSync(join(out, "ADE_val_bad.png")));

    // fix the inputs; a re-run rebuilds only what is missing or stale
    writePng(join(ann, "ADE_val_bad.png"), 3, 2, [7, 7, 7, 7, 7, 7]);
    await writeJpg(join(img, "ADE_val_noimage.jpg"));
    const before = statSync(join(out, "ADE_val_1.png")).mtimeMs;
    rmSync(join(out, "ADE_val_2.png")); // an interrupted run
    const r2 = await prepareDataset("ade150", { ...quiet, root, expected: 5 });
    assert.equal(r2.written, 2);
    assert.equal(r2.upToDate, 3);
    assert.equal(r2.failed.length, 0);
    assert.equal(r2.ok, true);
    assert.equal(statSync(join(out, "ADE_val_1.png")).mtimeMs, before);
    assert.deepEqual(
      Array.from((await readLabelMap(join(out, "ADE_val_2.png"))).data),
      [149, 148, 255, 0, 1, 2],
    );
    // an input newer than its output is rebuilt
    const future = new Date(Date.now() + 10_000);
    utimesSync(join(ann, "ADE_val_1.png"), future, future);
    const r3 = await prepareDataset("ade150", { ...quiet, root: ds, expected: 5 });
    assert.equal(r3.written, 1);
    assert.equal(r3.upToDate, 4);
    // the default count check uses the split size
    const r4 = await prepareDataset("ade150", { ...quiet, root });
    assert.equal(r4.expected, 2000);
    assert.equal(r4.ok, false);
    assert.equal(r4.present, 5);
  });

  it("voc20 / voc20b from palette SegmentationClass and colour masks; missing mask named", async () => {
    const root = tmpDir("voc");
    const ds = join(root, "VOCdevkit", "VOC2012");
    for (const d of ["ImageSets/Segmentation", "SegmentationClass", "JPEGImages"])
      mkdirSync(join(ds, d), { recursive: true });
    const ids = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"];
    writeFileSync(join(ds, "ImageSets", "Segmentation", "val.txt"), `${ids.join("\n")}\n`);
    for (const id of ids) await writeJpg(join(ds, "JPEGImages", `${id}.jpg`));
    const pal = vocPalette();
    writePng(join(ds, "SegmentationClass", `${ids[0]}.png`), 3, 2, [0, 1, 20, 255, 17, 0], pal);
    // colour-rendered RGB mask
    const classes = [0, 17, 255, 3, 3, 0];
    const rgb = new Uint8Array(classes.length * 3);
    for (const [i, k] of classes.entries()) rgb.set(pal.subarray(3 * k, 3 * k + 3), 3 * i);
    writeFileSync(
      join(ds, "SegmentationClass", `${ids[1]}.png`),
      encodePng({ width: 3, height: 2, channels: 3, data: rgb }),
    );
    // background and void only: VOC-20 writes nothing (CAT-Seg), VOC-20b writes background 20
    writePng(join(ds, "SegmentationClass", `${ids[2]}.png`), 3, 2, [0, 0, 255, 0, 0, 0], pal);
    // ids[3] has no mask

    const r = await prepareDataset("voc20", { ...quiet, root, expected: 4 });
    assert.equal(r.written, 2);
    assert.equal(r.empty, 1);
    assert.equal(r.failed.length, 1);
    assert.match(r.failed[0]!.file, /2007_000004\.png$/);
    assert.match(r.failed[0]!.error, /missing input/);
    const out = join(ds, "annotations_detectron2", "val");
    assert.deepEqual(
      Array.from((await readLabelMap(join(out, `${ids[0]}.png`))).data),
      [255, 0, 19, 255, 16, 255],
    );
    assert.deepEqual(
      Array.from((await readLabelMap(join(out, `${ids[1]}.png`))).data),
      [255, 16, 255, 2, 2, 255],
    );
    assert.ok(!existsSync(join(out, `${ids[2]}.png`)));

    const rb = await prepareDataset("voc20b", { ...quiet, root, expected: 4 });
    assert.equal(rb.written, 3);
    assert.equal(rb.empty, 0);
    const outb = join(ds, "annotations_detectron2_bg", "val");
    assert.deepEqual(
      Array.from((await readLabelMap(join(outb, `${ids[0]}.png`))).data),
      [20, 0, 19, 255, 16, 20],
    );
    assert.deepEqual(
      Array.from((await readLabelMap(join(outb, `${ids[2]}.png`))).data),
      [20, 20, 255, 20, 20, 20],
    );
    // SegmentationClassAug (grey) is preferred when present
    mkdirSync(join(ds, "SegmentationClassAug"));
    for (const id of ids) writePng(join(ds, "SegmentationClassAug", `${id}.png`), 2, 1, [0, 15]);
    const r2 = await prepareDataset("voc20", { ...quiet, root, expected: 4 });
    assert.equal(r2.failed.length, 0);
    assert.equal(r2.written, 4);
    assert.equal(r2.ok, true);
    assert.deepEqual(Array.from((await readLabelMap(join(out, `${ids[3]}.png`))).data), [255, 14]);
  });

  it("cocostuff171 from stuffthingmaps", async () => {
    const root = tmpDir("coco");
    const ds = join(root, "coco-stuff");
    mkdirSync(join(ds, "annotations", "val2017"), { recursive: true });
    mkdirSync(join(ds, "images", "val2017"), { recursive: true });
    const raw = [0, 11, 12, 90, 91, 181, 255, 66];
    writePng(join(ds, "annotations", "val2017", "000000000139.png"), 4, 2, raw);
    await writeJpg(join(ds, "images", "val2017", "000000000139.jpg"));
    const r = await prepareDataset("cocostuff171", { ...quiet, root, expected: 1 });
    assert.equal(r.ok, true);
    const m = await readLabelMap(join(ds, "annotations_detectron2", "val2017", "000000000139.png"));
    assert.deepEqual(Array.from(m.data), [0, 255, 11, 255, 80, 170, 255, 60]);
  });

  it("pc59 from trainval_merged.json RLEs", async () => {
    const root = tmpDir("pc");
    const ds = join(root, "VOCdevkit", "VOC2010");
    mkdirSync(join(ds, "JPEGImages"), { recursive: true });
    const h = 3;
    const w = 4;
    // later annotations overwrite earlier ones (as CAT-Seg's loop)
    const masks: [number, number[]][] = [
      [2, [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]],
      [458, [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
      [1, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]],
      [9, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ];
    const annos = masks.map(([cat, m], k) => {
      const cnts = rleEncode(Uint8Array.from(m), h, w);
      return {
        image_id: 7,
        category_id: cat,
        segmentation: { size: [h, w], counts: k % 2 ? cnts : rleToString(cnts) },
      };
    });
    annos.push({ image_id: 8, category_id: 2, segmentation: { size: [h, w], counts: [12] } });
    writeFileSync(
      join(ds, "trainval_merged.json"),
      JSON.stringify({
        images: [
          { image_id: 7, file_name: "2008_000007.jpg", height: h, width: w, phase: "val" },
          { image_id: 8, file_name: "2008_000008.jpg", height: h, width: w, phase: "train" },
        ],
        annos_segmentation: annos,
      }),
    );
    await writeJpg(join(ds, "JPEGImages", "2008_000007.jpg"));
    const r = await prepareDataset("pc59", { ...quiet, root, expected: 1 });
    assert.equal(r.listed, 1);
    assert.equal(r.ok, true, JSON.stringify(r.failed));
    const m = await readLabelMap(join(ds, "annotations_detectron2", "pc59_val", "2008_000007.png"));
    assert.deepEqual(Array.from(m.data), [0, 58, 58, 255, 0, 0, 255, 255, 255, 255, 255, 1]);
    const r2 = await prepareDataset("pc59", { ...quiet, root, expected: 1 });
    assert.equal(r2.upToDate, 1);
    assert.equal(r2.written, 0);
  });

  it("the command: unknown datasets, missing --root, exit code on a count mismatch", async () => {
    const err = console.error;
    const lines: string[] = [];
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      assert.equal(await prepareCommand(["nope", "--root", TMP]), 2);
      assert.equal(await prepareCommand(["ade150"]), 2);
      lines.length = 0;
      assert.equal(await prepareCommand(["cocostuff171", "--root", join(TMP, "coco"), "--no-progress"]), 1);
      assert.ok(lines.some((l) => /count check: 1 files, expected 5000: MISMATCH/.test(l)));
    } finally {
      console.error = err;
    }
  });
});
