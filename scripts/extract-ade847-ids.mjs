// Extracts the ADE20K-847 class table (name, ADE20K full-format id, trainId) from a copy of CAT-Seg's
// datasets/prepare_ade20k_full.py into assets/classes/ade847-ids.json. Only the numbers and names are read;
// nothing of the script's code is kept. Provenance: assets/SOURCES.md.
//
//   node scripts/extract-ade847-ids.mjs path/to/prepare_ade20k_full.py [assets/classes/ade847-ids.json]
//
// The file may also be just the `ADE20K_SEM_SEG_FULL_CATEGORIES = [ ... ]` list. Checks: 847 entries,
// trainIds 0..846 in order, ids unique.
import { readFileSync, writeFileSync } from "node:fs";

const [src, out = "assets/classes/ade847-ids.json"] = process.argv.slice(2);
if (!src) {
  console.error("usage: node scripts/extract-ade847-ids.mjs prepare_ade20k_full.py [out.json]");
  process.exit(2);
}
const text = readFileSync(src, "utf8");
const start = text.indexOf("ADE20K_SEM_SEG_FULL_CATEGORIES");
if (start < 0) throw new Error(`${src}: no ADE20K_SEM_SEG_FULL_CATEGORIES list`);
const open = text.indexOf("[", start);
const close = text.indexOf("\n]", open);
if (open < 0 || close < 0) throw new Error(`${src}: list not closed`);
const body = text.slice(open + 1, close);

// One dict per entry, on one line or spread over several (with a trailing comma).
const entry = /\{\s*"name":\s*"((?:[^"\\]|\\.)*)",\s*"id":\s*(\d+),\s*"trainId":\s*(\d+),?\s*\}/g;
const rows = [];
for (const m of body.matchAll(entry)) rows.push({ name: JSON.parse(`"${m[1]}"`), id: +m[2], trainId: +m[3] });
const leftover = body.replace(entry, "").replace(/[\s,]/g, "");
if (leftover) throw new Error(`${src}: unparsed text in the list: ${leftover.slice(0, 80)}`);
if (rows.length !== 847) throw new Error(`${src}: ${rows.length} entries, expected 847`);
rows.forEach((r, k) => {
  if (r.trainId !== k) throw new Error(`${src}: entry ${k} has trainId ${r.trainId}`);
});
if (new Set(rows.map((r) => r.id)).size !== rows.length) throw new Error(`${src}: duplicate ids`);

// One entry per line, in trainId order.
const lines = rows.map((r) => `  ${JSON.stringify({ name: r.name, id: r.id, trainId: r.trainId })}`);
writeFileSync(out, `[\n${lines.join(",\n")}\n]\n`);
console.log(`${out}: ${rows.length} entries`);
