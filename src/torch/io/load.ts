// Turns file records into tensors (memory-mapped, lazily per tensor) and reads any supported checkpoint
// format into a state dict: safetensors, torch.save zip/legacy `.pth`/`.bin`, TorchScript `.pt`.
import { closeSync, fstatSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { writeAtomicWithSync } from "../../util/fs.js";
import { type DType, dtypeCode } from "../dtype.js";
import { native as N } from "../native.js";
import { Tensor } from "../tensor.js";
import { readTorchCheckpoint } from "./pth.js";
import type { TensorRecord } from "./records.js";
import { buildSafetensorsHeader, readSafetensorsIndex } from "./safetensors-format.js";

const mappings = new Map<string, unknown>();

function mapping(file: string): unknown {
  // Keyed by identity and modification, so a file replaced on disk is mapped afresh.
  const st = statSync(file);
  const key = `${file}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  let m = mappings.get(key);
  if (!m) {
    for (const k of mappings.keys()) if (k.startsWith(`${file}\0`)) mappings.delete(k); // tensors keep their own
    m = N.mapFile(file);
    mappings.set(key, m);
  }
  return m;
}

/** A tensor viewing the record's bytes in its file (copy-on-write; the file is never modified). */
export function tensorFromRecord(rec: TensorRecord): Tensor {
  const dtype: DType = rec.dtype === "uint16" ? "int16" : rec.dtype;
  if (rec.dtype === "uint16") {
    // libtorch 1.13 has no uint16: widen to int32 so label maps keep their values (65535 stays 65535).
    const raw = new Tensor(
      N.fromMapped(mapping(rec.file), rec.byteOffset, dtypeCode(dtype), rec.shape, rec.strides ?? null),
    );
    const wide = raw.to("int32");
    raw.dispose();
    const fixed = wide.add(wide.lt(0).to("int32").mul(65536));
    wide.dispose();
    return fixed;
  }
  return new Tensor(
    N.fromMapped(mapping(rec.file), rec.byteOffset, dtypeCode(dtype), rec.shape, rec.strides ?? null),
  );
}

/** Forgets cached file mappings (tensors already created keep theirs alive). */
export function releaseMappings(): void {
  mappings.clear();
}

export type CheckpointFormat = "safetensors" | "zip" | "legacy" | "torchscript";

export interface LoadedCheckpoint {
  file: string;
  format: CheckpointFormat;
  /** Tensors by key (lazily mapped). */
  tensors: Map<string, Tensor>;
  /** Records by key (dtype, shape, position) without mapping anything. */
  records: Map<string, TensorRecord>;
  /** Non-tensor content: safetensors metadata, or a `.pth`'s other top-level entries (iteration, …). */
  extra: Record<string, unknown>;
}

function sniff(file: string): "safetensors" | "torch" {
  // safetensors begins with a little-endian header length and then the JSON header's "{"; anything else is
  // left to the PyTorch reader (zip archives, legacy pickles), which reports what it finds.
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(9);
    const n = readSync(fd, b, 0, 9, 0);
    if (n === 9 && b[8] === 0x7b) {
      const len = b.readBigUInt64LE(0);
      if (len > 0n && len + 8n <= BigInt(fstatSync(fd).size)) return "safetensors";
    }
    return "torch";
  } finally {
    closeSync(fd);
  }
}

/** Reads only the records (names, dtypes, shapes) of a checkpoint file of any supported format. */
export function readCheckpointRecords(file: string): {
  format: CheckpointFormat;
  records: Map<string, TensorRecord>;
  extra: Record<string, unknown>;
} {
  if (sniff(file) === "safetensors") {
    const idx = readSafetensorsIndex(file);
    return { format: "safetensors", records: idx.records, extra: idx.metadata };
  }
  const r = readTorchCheckpoint(file);
  return { format: r.format, records: r.records, extra: r.extra };
}

/** Loads a checkpoint of any supported format; tensors map the file lazily and cost no copy until used. */
export function loadCheckpoint(file: string): LoadedCheckpoint {
  const { format, records, extra } = readCheckpointRecords(file);
  const tensors = new Map<string, Tensor>();
  for (const [k, r] of records) tensors.set(k, tensorFromRecord(r).keep());
  return { file, format, tensors, records, extra };
}

/** Runs `fn` on a checkpoint's tensors; they are freed afterwards, whether `fn` returns or throws. */
export function withCheckpoint<T>(file: string, fn: (ckpt: LoadedCheckpoint) => T): T {
  const ckpt = loadCheckpoint(file);
  try {
    return fn(ckpt);
  } finally {
    for (const t of ckpt.tensors.values()) t.dispose();
  }
}

/**
 * Writes tensors to a safetensors file atomically (a temporary file, then rename), so a crash never leaves a
 * half-written file under the final name.
 */
export function saveSafetensors(
  file: string,
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const entries = [...tensors].map(([name, t]) => {
    const dtype = t.dtype;
    return { name, dtype: dtype as Exclude<DType, never>, shape: t.shape, t };
  });
  const { header } = buildSafetensorsHeader(entries, metadata);
  writeAtomicWithSync(file, (tmp) => {
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, header);
      for (const e of entries) writeSync(fd, Buffer.from(N.toBuffer(e.t.handle)));
    } finally {
      closeSync(fd);
    }
  });
}
