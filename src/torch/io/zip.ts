// A minimal ZIP reader for PyTorch archives (torch.save ≥ 1.6 and torch.jit.save). It reads the
// end-of-central-directory record (ZIP64 included), the central directory and every local header, and
// reports where each entry's data starts in the file, so that stored (uncompressed) tensor entries can be
// memory-mapped in place. Deflated entries can be read whole with `readEntry` (meant for small pickles
// and code files), never inflating more than the entry declares nor more than the caller allows: a
// 3 MB archive whose data.pkl inflates to 3 GiB is refused from its directory. Errors name the file.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { crc32, inflateRawSync } from "node:zlib";

/** ZIP compression methods this reader knows. */
export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

/** The most `readEntry` reads into memory unless told otherwise (pickles and code files are far smaller). */
export const MAX_ENTRY_BYTES = 2 ** 30;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated; other methods are listed but cannot be read. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  localHeaderOffset: number;
  /** Absolute offset in the file of the entry's (possibly compressed) data. */
  dataOffset: number;
}

export interface ZipArchive {
  file: string;
  /** File size in bytes. */
  size: number;
  /** Entries by name, in central-directory order. */
  entries: Map<string, ZipEntry>;
  comment: string;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

function readAt(fd: number, file: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) {
      throw new Error(
        `${file}: unexpected end of file at byte ${position + got} (wanted ${length} bytes from ${position})`,
      );
    }
    got += n;
  }
  return buf;
}

function u64(buf: Buffer, at: number, file: string, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${file}: ZIP ${what} ${v} is too large`);
  return Number(v);
}

/** True when the file starts like a ZIP archive (a local header, or the end record of an empty archive). */
export function isZipFile(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(4);
    if (readSync(fd, head, 0, 4, 0) < 4) return false;
    const sig = head.readUInt32LE(0);
    return sig === SIG_LOCAL || sig === SIG_EOCD;
  } finally {
    closeSync(fd);
  }
}

interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
  comment: string;
  /** Where the end records start (the central directory must end before it). */
  end: number;
}

function findEnd(fd: number, file: string, size: number): EndRecord {
  if (size < EOCD_SIZE) {
    throw new Error(
      `${file}: not a ZIP archive or truncated (only ${size} bytes, no end-of-central-directory record)`,
    );
  }
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLen;
  const tail = readAt(fd, file, tailStart, tailLen);
  let at = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tailLen) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    throw new Error(`${file}: not a ZIP archive or truncated (end-of-central-directory record not found)`);
  }
  const eocdPos = tailStart + at;
  const commentLen = tail.readUInt16LE(at + 20);
  const comment = tail.toString("utf8", at + EOCD_SIZE, at + EOCD_SIZE + commentLen);
  let entries = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  let end = eocdPos;
  // A ZIP64 locator sits right before the classic end record when any count or offset overflowed.
  if (eocdPos >= 20) {
    const loc = readAt(fd, file, eocdPos - 20, 20);
    if (loc.readUInt32LE(0) === SIG_EOCD64_LOCATOR) {
      const pos = u64(loc, 8, file, "zip64 end record offset");
      if (pos + 56 > eocdPos - 20) throw new Error(`${file}: corrupt ZIP64 locator (end record at ${pos})`);
      const rec = readAt(fd, file, pos, 56);
      if (rec.readUInt32LE(0) !== SIG_EOCD64) {
        throw new Error(`${file}: corrupt ZIP64 end-of-central-directory record at byte ${pos}`);
      }
      entries = u64(rec, 32, file, "entry count");
      cdSize = u64(rec, 40, file, "central directory size");
      cdOffset = u64(rec, 48, file, "central directory offset");
      end = pos;
    }
  }
  if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // Overflow markers without a ZIP64 record: only trust them if they happen to be real values.
    if (cdOffset === 0xffffffff || cdOffset + cdSize > end) {
      throw new Error(`${file}: ZIP64 archive without a ZIP64 end-of-central-directory record`);
    }
  }
  if (cdOffset + cdSize > end) {
    throw new Error(
      `${file}: central directory (${cdSize} bytes at ${cdOffset}) runs past the end records at byte ${end} (truncated or corrupt ZIP)`,
    );
  }
  return { entries, cdSize, cdOffset, comment, end };
}

/** Reads the directory of a ZIP archive and the local header of every entry (entry data is not read). */
export function readZipArchive(file: string): ZipArchive {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const endRec = findEnd(fd, file, size);
    const cd = readAt(fd, file, endRec.cdOffset, endRec.cdSize);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < endRec.entries; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) {
        throw new Error(`${file}: corrupt ZIP central directory (entry ${i} at byte ${endRec.cdOffset + p})`);
      }
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let uncompressedSize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const nameEnd = p + 46 + nameLen;
      if (nameEnd + extraLen + commentLen > cd.length) {
        throw new Error(`${file}: corrupt ZIP central directory (entry ${i} runs past its end)`);
      }
      const name = cd.toString(flags & 0x800 ? "utf8" : "latin1", p + 46, nameEnd);
      // ZIP64 extended information: 8-byte values for exactly those fields that hold 0xFFFFFFFF.
      let x = nameEnd;
      const xEnd = nameEnd + extraLen;
      while (x + 4 <= xEnd) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (id === 0x0001) {
          let q = x + 4;
          const take = (what: string): number => {
            if (q + 8 > x + 4 + len)
              throw new Error(`${file}: entry "${name}" has a short ZIP64 extra field`);
            const v = u64(cd, q, file, `${what} of "${name}"`);
            q += 8;
            return v;
          };
          if (uncompressedSize === 0xffffffff) uncompressedSize = take("size");
          if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take("offset");
        }
        x += 4 + len;
      }
      if (flags & 0x1) throw new Error(`${file}: entry "${name}" is encrypted`);
      if (!entries.has(name)) {
        entries.set(name, {
          name,
          method,
          compressedSize,
          uncompressedSize,
          crc32: crc,
          localHeaderOffset,
          dataOffset: -1,
        });
      }
      p = xEnd + commentLen;
    }
    // Local headers may carry a different extra field (PyTorch pads it to align tensor data), so the data
    // offset can only be known from the local header itself.
    const lh = Buffer.allocUnsafe(30);
    for (const e of entries.values()) {
      if (e.localHeaderOffset + 30 > size) {
        throw new Error(
          `${file}: entry "${e.name}" starts at byte ${e.localHeaderOffset} past the end of the file (${size} bytes)`,
        );
      }
      const n = readSync(fd, lh, 0, 30, e.localHeaderOffset);
      if (n < 30 || lh.readUInt32LE(0) !== SIG_LOCAL) {
        throw new Error(
          `${file}: corrupt ZIP local header for entry "${e.name}" at byte ${e.localHeaderOffset}`,
        );
      }
      e.dataOffset = e.localHeaderOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
      if (e.method === ZIP_STORED && e.compressedSize !== e.uncompressedSize) {
        // A stored entry is mapped by its uncompressed size: it must be the bytes it occupies.
        throw new Error(
          `${file}: stored entry "${e.name}" declares ${e.uncompressedSize} bytes but occupies ${e.compressedSize} (corrupt ZIP)`,
        );
      }
      if (e.dataOffset + e.compressedSize > size) {
        throw new Error(
          `${file}: entry "${e.name}" ends at byte ${e.dataOffset + e.compressedSize} but the file has ${size} bytes (truncated file?)`,
        );
      }
    }
    return { file, size, entries, comment: endRec.comment };
  } finally {
    closeSync(fd);
  }
}

function getEntry(zip: ZipArchive, entry: ZipEntry | string): ZipEntry {
  if (typeof entry !== "string") return entry;
  const e = zip.entries.get(entry);
  if (!e) throw new Error(`${zip.file}: no entry "${entry}" in the archive`);
  return e;
}

export interface ReadEntryOptions {
  /** Refuse entries that declare more bytes than this (default MAX_ENTRY_BYTES, 1 GiB). */
  maxBytes?: number;
  /** What the entry is, for the error message (default "an archive entry"). */
  what?: string;
}

/**
 * Reads and (if deflated) inflates a whole entry, checking its size and CRC. For small entries only: the
 * entry's declared size is checked against `maxBytes` before anything is read, and inflating stops as
 * soon as the output would exceed the declared size, into one buffer of exactly that size.
 */
export function readEntry(zip: ZipArchive, entry: ZipEntry | string, opts: ReadEntryOptions = {}): Buffer {
  const e = getEntry(zip, entry);
  const limit = opts.maxBytes ?? MAX_ENTRY_BYTES;
  if (e.uncompressedSize > limit) {
    throw new Error(
      `${zip.file}: entry "${e.name}" declares ${e.uncompressedSize} bytes uncompressed, more than the ${formatBytes(limit)} allowed for ${opts.what ?? "an archive entry"} (a decompression bomb or a corrupt archive?)`,
    );
  }
  const fd = openSync(zip.file, "r");
  let raw: Buffer;
  try {
    raw = readAt(fd, zip.file, e.dataOffset, e.compressedSize);
  } finally {
    closeSync(fd);
  }
  let data: Buffer;
  if (e.method === ZIP_STORED) {
    data = raw;
  } else if (e.method === ZIP_DEFLATED) {
    // One output chunk one byte larger than the declared size: a stream that inflates to the declared
    // size fits it (no second buffer, no concatenation), and one that goes on is stopped at that byte.
    const declared = Math.max(1, e.uncompressedSize);
    try {
      data = inflateRawSync(raw, { maxOutputLength: declared, chunkSize: Math.max(64, declared + 1) });
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
        throw new Error(
          `${zip.file}: entry "${e.name}" inflates to more than the ${e.uncompressedSize} bytes its directory declares (a decompression bomb or a corrupt archive?)`,
        );
      }
      throw new Error(`${zip.file}: cannot inflate entry "${e.name}" (${(err as Error).message})`);
    }
  } else {
    throw new Error(`${zip.file}: entry "${e.name}" uses unsupported ZIP compression method ${e.method}`);
  }
  if (data.length !== e.uncompressedSize) {
    throw new Error(
      `${zip.file}: entry "${e.name}" has ${data.length} bytes, the directory says ${e.uncompressedSize}`,
    );
  }
  if (crc32(data) !== e.crc32)
    throw new Error(`${zip.file}: entry "${e.name}" fails its CRC-32 check (corrupt file?)`);
  return data;
}

/**
 * Where a stored entry's bytes are in the file, for memory-mapping. Throws (naming the file and entry) if
 * the entry is compressed, since compressed tensor data cannot be mapped in place.
 */
export function storedEntryRange(
  zip: ZipArchive,
  entry: ZipEntry | string,
): { offset: number; length: number } {
  const e = getEntry(zip, entry);
  if (e.method !== ZIP_STORED) {
    const how = e.method === ZIP_DEFLATED ? "deflate-compressed" : `compressed (method ${e.method})`;
    throw new Error(
      `${zip.file}: entry "${e.name}" is ${how}; tensor data must be stored uncompressed to be memory-mapped (re-save the checkpoint with torch.save)`,
    );
  }
  return { offset: e.dataOffset, length: e.uncompressedSize };
}

function formatBytes(n: number): string {
  if (n >= 2 ** 30 && n % 2 ** 30 === 0) return `${n / 2 ** 30} GiB`;
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  return `${n} bytes`;
}
