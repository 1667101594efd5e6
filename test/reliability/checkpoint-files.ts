// Broken and hostile checkpoint files, made by the tests themselves: a small ZIP writer (stored and
// deflated entries, any declared sizes), a deflate bomb that needs no memory to build, raw safetensors
// headers, and a child-process runner that reports a load's error and peak RSS.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { constants, crc32, deflateRawSync } from "node:zlib";
import { PACKAGE_ROOT } from "../../src/util/assets.js";

export interface ZipSpec {
  name: string;
  /** The bytes written as the entry's data (already compressed for method 8). */
  data: Buffer;
  method?: 0 | 8;
  /** Declared sizes and CRC (default: those of `data`). */
  uncompressedSize?: number;
  compressedSize?: number;
  crc?: number;
}

/** Writes a ZIP archive (ZIP64 extra fields when a declared size does not fit 32 bits). */
export function writeZip(file: string, entries: ZipSpec[]): void {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const usize = e.uncompressedSize ?? e.data.length;
    const csize = e.compressedSize ?? e.data.length;
    const crc = e.crc ?? crc32(e.data);
    const big = usize >= 0xffffffff || csize >= 0xffffffff;
    const extra = Buffer.alloc(big ? 20 : 0);
    if (big) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(BigInt(usize), 4);
      extra.writeBigUInt64LE(BigInt(csize), 12);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(big ? 45 : 20, 4);
    local.writeUInt16LE(e.method ?? 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(big ? 0xffffffff : csize, 18);
    local.writeUInt32LE(big ? 0xffffffff : usize, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(big ? 45 : 20, 6);
    cd.writeUInt16LE(e.method ?? 0, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(big ? 0xffffffff : csize, 20);
    cd.writeUInt32LE(big ? 0xffffffff : usize, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(extra.length, 30);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name, extra);
    parts.push(local, name, extra, e.data);
    offset += local.length + name.length + extra.length + e.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(offset, 16);
  writeFileSync(file, Buffer.concat([...parts, cdBytes, eocd]));
}

/**
 * A raw deflate stream that inflates to `chunks` × 64 MiB of zeros, built without holding them: one
 * 64 MiB block ends with a full flush (byte-aligned, fresh dictionary), so its bytes can be repeated, and
 * a final empty fixed-Huffman block (0x03 0x00) closes the stream.
 */
export function zeroBomb(chunks: number): Buffer {
  const block = deflateRawSync(Buffer.alloc(64 * 2 ** 20), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  return Buffer.concat([...new Array<Buffer>(chunks).fill(block), Buffer.from([0x03, 0x00])]);
}

/** A safetensors file from a header object (serialised as given) and data bytes. */
export function writeSafetensorsRaw(
  file: string,
  header: unknown,
  data: Buffer,
  headerLength?: bigint,
): void {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, data]));
}

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  /** What the child printed as its outcome: "ok …" or the error message. */
  message: string;
  /** Peak RSS of the child in MB (process.resourceUsage().maxRSS). */
  peakMb: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `body` (an async function body that may `await import(dist(…))`) in a fresh Node process and
 * reports its outcome and peak RSS; `args` are available as `argv`.
 */
export function runChild(body: string, args: string[] = []): ChildResult {
  const script = `const dist = (p) => ${JSON.stringify(join(PACKAGE_ROOT, "dist/src"))} + "/" + p;
const argv = process.argv.slice(1);
(async () => { ${body} })().then(
  (v) => console.log("RESULT ok " + (v ?? "")),
  (e) => console.log("RESULT " + String(e && e.message).replace(/\\n/g, "\\\\n")),
).finally(() => console.log("MAXRSS " + process.resourceUsage().maxRSS));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, ...args], {
    encoding: "utf8",
    maxBuffer: 64 * 2 ** 20,
  });
  const message = /^RESULT (.*)$/m.exec(r.stdout)?.[1]?.replace(/\\n/g, "\n") ?? "";
  const rss = /^MAXRSS (\d+)$/m.exec(r.stdout)?.[1];
  return {
    status: r.status,
    signal: r.signal,
    message,
    peakMb: rss ? Number(rss) / 1024 : Number.NaN,
    stdout: r.stdout,
    stderr: r.stderr,
  };
}
