// Parity case "tokenizer": CLIP BPE ids for every fixture string, plus clip.tokenize padding/truncation.
import { ClipTokenizer, DEFAULT_CONTEXT_LENGTH } from "../../clip/tokenizer.js";
import type { Comparison, Fixture } from "../fixture.js";

interface TokenizerVector {
  text: string;
  source?: string;
  ids: number[];
  tokenize_truncate_true?: number[];
  tokenize_truncate_false?: string;
}

/** How many failing strings a Comparison's note lists. */
const NOTE_LIMIT = 3;

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Exact-match group: the error is the number of failing strings. */
class Group {
  private failures = 0;
  private checked = 0;
  private readonly notes: string[] = [];

  constructor(private readonly name: string) {}

  check(text: string, ok: boolean, detail: () => string): void {
    this.checked++;
    if (ok) return;
    this.failures++;
    if (this.notes.length < NOTE_LIMIT) this.notes.push(`${JSON.stringify(text)}: ${detail()}`);
  }

  result(): Comparison {
    const note =
      this.failures === 0
        ? `${this.checked} strings exact`
        : `${this.failures}/${this.checked} strings differ; ${this.notes.join("; ")}`;
    return {
      name: this.name,
      maxAbsError: this.failures,
      worstExcess: this.failures,
      ok: this.failures === 0,
      note,
    };
  }
}

function attempt<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/**
 * Groups: "ids" ([SOT] + encode + [EOT] per string), "tokenize_padded" (clip.tokenize rows of the strings
 * that fit, zero padded), "truncate" (truncate=true rows of the long strings) and "too_long_error"
 * (truncate=false must throw for them).
 */
export function runTokenizerCase(f: Fixture, tokenizer: ClipTokenizer = ClipTokenizer.load()): Comparison[] {
  const vectors: TokenizerVector[] = f.json.vectors;
  if (!Array.isArray(vectors)) throw new Error(`${f.dir}: case.json has no "vectors" array`);
  const ctx: number = f.json.special_ids?.context_length ?? DEFAULT_CONTEXT_LENGTH;

  const ids = new Group("ids");
  const padded = new Group("tokenize_padded");
  const truncated = new Group("truncate");
  const tooLong = new Group("too_long_error");

  for (const v of vectors) {
    const got = attempt(() => [tokenizer.sotId, ...tokenizer.encode(v.text), tokenizer.eotId]);
    ids.check(v.text, !(got instanceof Error) && sameIds(got, v.ids), () =>
      got instanceof Error ? `threw ${got.message}` : `got [${got}] expected [${v.ids}]`,
    );

    if (v.ids.length <= ctx) {
      const row = attempt(() => tokenizer.tokenize([v.text], { contextLength: ctx }).ids);
      const want = new Int32Array(ctx);
      want.set(v.ids);
      padded.check(v.text, !(row instanceof Error) && sameIds(row, want), () =>
        row instanceof Error ? `threw ${row.message}` : `got [${row}]`,
      );
    }

    if (v.tokenize_truncate_true !== undefined) {
      const want = v.tokenize_truncate_true;
      const row = attempt(() => tokenizer.tokenize([v.text], { contextLength: ctx, truncate: true }).ids);
      truncated.check(v.text, !(row instanceof Error) && sameIds(row, want), () =>
        row instanceof Error ? `threw ${row.message}` : `got [${row}] expected [${want}]`,
      );
    }

    if (v.ids.length > ctx) {
      const r = attempt(() => tokenizer.tokenize([v.text], { contextLength: ctx }));
      tooLong.check(v.text, r instanceof Error, () => "did not throw with truncate=false");
    }
  }
  return [ids.result(), padded.result(), truncated.result(), tooLong.result()];
}
