// OpenAI CLIP's byte-level BPE tokenizer (clip/simple_tokenizer.py + clip.tokenize), ported to TypeScript.
// This file is free of Node modules (the browser bundles it): the vocabulary comes in as bytes;
// tokenizer.ts adds loading the bundled file from disk.
//
// Pipeline per text, as the reference runs it:
//   ftfy.fix_text (approximated by NFC) → html.unescape twice → strip → fold \s+ to " " → strip → lower()
//   → split with the pre-tokenisation regex → each piece as UTF-8 bytes mapped to printable characters
//   → greedy lowest-rank BPE merges with "</w>" glued to the last symbol → vocabulary ids.
// Every Python-specific behaviour that JavaScript does differently (whitespace sets, strip(), numeric
// character references) is reproduced explicitly below.
import { decodeHTML } from "entities";

/** Id of `<|startoftext|>` in the standard CLIP vocabulary. */
export const SOT_ID = 49406;
/** Id of `<|endoftext|>` in the standard CLIP vocabulary (the highest id, which CLIP's argmax pools at). */
export const EOT_ID = 49407;
/** Context length of every released CLIP text encoder. */
export const DEFAULT_CONTEXT_LENGTH = 77;

const SOT_TEXT = "<|startoftext|>";
const EOT_TEXT = "<|endoftext|>";
const END_OF_WORD = "</w>";
/** The reference keeps only the first 49152 − 256 − 2 merges of the file (after its header line). */
const MERGE_COUNT = 49152 - 256 - 2;

export interface TokenizeOptions {
  /** Row length (default 77). */
  contextLength?: number;
  /** Cut over-long rows to contextLength and end them with EOT instead of throwing (default false). */
  truncate?: boolean;
}

export interface TokenizedBatch {
  /** Row-major (B × contextLength) ids, zero padded after the end token. */
  ids: Int32Array;
  shape: [number, number];
  /** Per row, the first position of the row's largest id: where CLIP's `text.argmax(-1)` pools (the EOT). */
  eotIndex: number[];
}

// ---------------------------------------------------------------------------------------------------------
// Text clean-up with Python semantics
// ---------------------------------------------------------------------------------------------------------

/**
 * Python str.isspace(): Unicode White_Space plus the information separators U+001C..U+001F (bidi class B/S).
 * Everything in the set is in the BMP, so a UTF-16 code unit test is exact.
 */
function isPySpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Python str.strip(): unlike String.prototype.trim it keeps U+FEFF and removes U+0085 and U+001C..U+001F. */
function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isPySpace(s.charCodeAt(start))) start++;
  while (end > start && isPySpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** The `regex` module's `\s` is the Unicode White_Space property (JS `\s` adds U+FEFF and lacks U+0085). */
const WHITESPACE_RUN = /\p{White_Space}+/gu;

/** Python html.unescape's reference pattern: numeric refs, or a name of up to 32 code points, `;` optional. */
const CHAR_REF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** html.unescape maps these numeric references (NUL, CR and the Windows-1252 C1 range) specially. */
const NUMERIC_REF_REPLACEMENTS = new Map<number, string>([
  [0x00, "\ufffd"],
  [0x0d, "\r"],
  [0x80, "\u20ac"],
  [0x81, "\x81"],
  [0x82, "\u201a"],
  [0x83, "\u0192"],
  [0x84, "\u201e"],
  [0x85, "\u2026"],
  [0x86, "\u2020"],
  [0x87, "\u2021"],
  [0x88, "\u02c6"],
  [0x89, "\u2030"],
  [0x8a, "\u0160"],
  [0x8b, "\u2039"],
  [0x8c, "\u0152"],
  [0x8d, "\x8d"],
  [0x8e, "\u017d"],
  [0x8f, "\x8f"],
  [0x90, "\x90"],
  [0x91, "\u2018"],
  [0x92, "\u2019"],
  [0x93, "\u201c"],
  [0x94, "\u201d"],
  [0x95, "\u2022"],
  [0x96, "\u2013"],
  [0x97, "\u2014"],
  [0x98, "\u02dc"],
  [0x99, "\u2122"],
  [0x9a, "\u0161"],
  [0x9b, "\u203a"],
  [0x9c, "\u0153"],
  [0x9d, "\x9d"],
  [0x9e, "\u017e"],
  [0x9f, "\u0178"],
]);

/** Code points html.unescape drops entirely (controls, noncharacters); the HTML5 spec would keep them. */
function isDroppedCodePoint(n: number): boolean {
  return (
    (n >= 0x01 && n <= 0x08) ||
    n === 0x0b ||
    (n >= 0x0e && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function numericCharRef(num: number): string {
  const special = NUMERIC_REF_REPLACEMENTS.get(num);
  if (special !== undefined) return special;
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return "\ufffd";
  if (isDroppedCodePoint(num)) return "";
  return String.fromCodePoint(num);
}

/**
 * Python's html.unescape. Named references go through entities' HTML5 decoder (same table, same
 * longest-legacy-prefix rule for names without ';'); numeric ones are done here because entities keeps
 * control characters and noncharacters that Python removes, and drops C1 codes Python keeps.
 */
function pyHtmlUnescape(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(CHAR_REF, (whole: string, body: string) => {
    if (body.charCodeAt(0) === 0x23 /* # */) {
      const hex = body[1] === "x" || body[1] === "X";
      const digits = body.slice(hex ? 2 : 1).replace(/;$/, "");
      return numericCharRef(Number.parseInt(digits, hex ? 16 : 10));
    }
    return decodeHTML(whole);
  });
}

/** basic_clean + whitespace_clean + lower(), in the reference's order (exported for tests and debugging). */
export function cleanText(text: string): string {
  // ftfy.fix_text is not ported; its final NFC step is the part that matters for ordinary input.
  let t = text.normalize("NFC");
  t = pyStrip(pyHtmlUnescape(pyHtmlUnescape(t)));
  t = pyStrip(t.replace(WHITESPACE_RUN, " "));
  // toLowerCase is Unicode's full, locale-free lowercasing with the Final_Sigma rule, as is str.lower().
  return t.toLowerCase();
}

/**
 * The reference's pre-tokenisation pattern (`regex` module, IGNORECASE). With `iu` JavaScript also uses
 * simple case folding, so e.g. "'ſ" still matches `'s`; `\s` is again written as White_Space.
 */
const PIECE =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;

const LONE_SURROGATE = /\p{Cs}/u;

// ---------------------------------------------------------------------------------------------------------
// Byte ↔ printable-character table
// ---------------------------------------------------------------------------------------------------------

/**
 * bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes get U+0100.. in byte
 * order, so no BPE symbol is whitespace or a control character. Returned in the reference's dict order
 * (printable bytes first), which is also the order of the first 256 vocabulary entries.
 */
function byteAlphabet(): Array<[byte: number, char: string]> {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: Array<[number, string]> = [];
  for (let b = 0; b < 256; b++) if (printable(b)) out.push([b, String.fromCharCode(b)]);
  let next = 256;
  for (let b = 0; b < 256; b++) if (!printable(b)) out.push([b, String.fromCharCode(next++)]);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------------------

/** The merge lines in use (after the "#version" header) of a merges file's bytes. */
export function mergeLinesOf(raw: Uint8Array): string[] {
  // Only the header line and the merges in use are decoded (the file holds 5× more lines than are used).
  let end = -1;
  for (let line = 0; line <= MERGE_COUNT; line++) {
    end = raw.indexOf(0x0a, end + 1);
    if (end < 0) break;
  }
  const lines = new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end)).split("\n");
  if (end < 0 && lines.at(-1) === "") lines.pop();
  // Line 0 is the "#version" header; a shorter file just yields fewer merges (and other special ids).
  return lines.slice(1, MERGE_COUNT + 1);
}

/** The tokenizer itself; `ClipTokenizer` (tokenizer.ts) adds loading vocabulary files in Node. */
export class ClipTokenizerCore {
  /** Id of `<|startoftext|>` in this vocabulary (SOT_ID for the standard file). */
  readonly sotId: number;
  /** Id of `<|endoftext|>` in this vocabulary (EOT_ID for the standard file). */
  readonly eotId: number;
  /** Number of vocabulary entries (49408 for the standard file). */
  readonly vocabSize: number;

  private readonly encoder: Map<string, number>;
  private readonly decoder: string[];
  /** Merges in rank order, each as its file line "first second". */
  private readonly merges: string[];
  /**
   * Rank by merge line, so a pair's key is just "first second" (symbols never contain a space: byte
   * 0x20 is mapped to U+0120). Reusing the lines as keys keeps load() light on allocations.
   */
  private readonly ranks: Map<string, number>;
  private readonly byteToChar: string[];
  private readonly charToByte: Map<string, number>;
  /** Raw (pre-byte-mapping) piece → ids. Unbounded like the reference's cache; keys are words, not texts. */
  private readonly cache = new Map<string, readonly number[]>();
  private readonly utf8 = new TextEncoder();

  protected constructor(mergeLines: string[]) {
    const alphabet = byteAlphabet();
    this.byteToChar = new Array<string>(256);
    this.charToByte = new Map();
    for (const [b, c] of alphabet) {
      this.byteToChar[b] = c;
      this.charToByte.set(c, b);
    }
    mergeLines.forEach((line, i) => {
      const sp = line.indexOf(" ");
      if (sp < 1 || sp === line.length - 1 || line.indexOf(" ", sp + 1) >= 0) {
        throw new Error(`BPE merges line ${i + 2} is not "first second": ${JSON.stringify(line)}`);
      }
    });
    this.merges = mergeLines;
    // Vocabulary order: bytes, bytes + "</w>", merge results in rank order, then the two special tokens.
    const vocab = alphabet.map(([, c]) => c);
    for (const [, c] of alphabet) vocab.push(c + END_OF_WORD);
    for (const line of mergeLines) vocab.push(line.replace(" ", ""));
    vocab.push(SOT_TEXT, EOT_TEXT);
    this.decoder = vocab;
    this.encoder = new Map();
    for (let id = 0; id < vocab.length; id++) this.encoder.set(vocab[id], id);
    this.ranks = new Map();
    for (let rank = 0; rank < mergeLines.length; rank++) this.ranks.set(mergeLines[rank], rank);
    this.vocabSize = vocab.length;
    this.sotId = this.encoder.get(SOT_TEXT)!;
    this.eotId = this.encoder.get(EOT_TEXT)!;
    // The specials bypass BPE, as the reference pre-seeds its cache with them.
    this.cache.set(SOT_TEXT, [this.sotId]);
    this.cache.set(EOT_TEXT, [this.eotId]);
  }

  /** A tokenizer from the bytes of an (uncompressed) merges file, e.g. after gunzip. */
  static fromMergesBytes(raw: Uint8Array): ClipTokenizerCore {
    return new ClipTokenizerCore(mergeLinesOf(raw));
  }

  /**
   * A tokenizer from the bytes of a gzipped merges file (OpenAI's bpe_simple_vocab_16e6.txt.gz), decompressed
   * with the platform's DecompressionStream (browsers, Node ≥ 18).
   */
  static async fromGzippedMergesAsync(bytes: Uint8Array): Promise<ClipTokenizerCore> {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
      .stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return ClipTokenizerCore.fromMergesBytes(new Uint8Array(await new Response(stream).arrayBuffer()));
  }

  /** BPE ids of a text, without start/end tokens (SimpleTokenizer.encode). */
  encode(text: string): number[] {
    const out: number[] = [];
    const clean = cleanText(text);
    PIECE.lastIndex = 0;
    for (let m = PIECE.exec(clean); m !== null; m = PIECE.exec(clean)) {
      const piece = m[0];
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.encodePiece(piece);
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /** Text of ids (SimpleTokenizer.decode): invalid UTF-8 becomes U+FFFD and every "</w>" a space. */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const tok = this.decoder[ids[i]];
      if (tok === undefined)
        throw new Error(`decode: id ${ids[i]} is not in the vocabulary (size ${this.vocabSize})`);
      for (const ch of tok) bytes.push(this.charToByte.get(ch)!);
    }
    // Keep a leading U+FEFF like Python's bytes.decode does.
    const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(Uint8Array.from(bytes));
    return text.replaceAll(END_OF_WORD, " ");
  }

  /**
   * clip.tokenize: each row is [SOT] + encode(text) + [EOT], zero padded to contextLength. A longer row
   * throws unless `truncate`, which keeps the first contextLength ids and overwrites the last with EOT.
   */
  tokenize(texts: readonly string[], opts: TokenizeOptions = {}): TokenizedBatch {
    const ctx = opts.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    const truncate = opts.truncate ?? false;
    if (!Number.isInteger(ctx) || ctx < 1)
      throw new Error(`tokenize: contextLength must be a positive integer, got ${ctx}`);
    const ids = new Int32Array(texts.length * ctx);
    const eotIndex: number[] = [];
    texts.forEach((text, row) => {
      let tokens = [this.sotId, ...this.encode(text), this.eotId];
      if (tokens.length > ctx) {
        if (!truncate) {
          throw new Error(
            `Input ${JSON.stringify(text)} is too long for context length ${ctx} (${tokens.length} tokens incl. start/end)`,
          );
        }
        tokens = tokens.slice(0, ctx);
        tokens[ctx - 1] = this.eotId;
      }
      ids.set(tokens, row * ctx);
      let best = 0;
      for (let i = 1; i < tokens.length; i++) if (tokens[i] > tokens[best]) best = i;
      eotIndex.push(best);
    });
    return { ids, shape: [texts.length, ctx], eotIndex };
  }

  /** One pre-tokenised piece → ids: UTF-8 bytes as alphabet characters, then BPE. */
  private encodePiece(piece: string): number[] {
    // Python's str.encode("utf-8") raises on lone surrogates; TextEncoder would silently write U+FFFD.
    if (LONE_SURROGATE.test(piece))
      throw new Error(`encode: ${JSON.stringify(piece)} contains a lone surrogate`);
    let mapped = "";
    for (const b of this.utf8.encode(piece)) mapped += this.byteToChar[b];
    return this.bpe(mapped).map((sym) => {
      const id = this.encoder.get(sym);
      if (id === undefined)
        throw new Error(`encode: BPE symbol ${JSON.stringify(sym)} is not in the vocabulary`);
      return id;
    });
  }

  /** Repeatedly merges every occurrence of the lowest-ranked adjacent pair until no pair has a rank. */
  private bpe(word: string): string[] {
    // Alphabet characters are all in the BMP, so UTF-16 units are the reference's code points here.
    let symbols = word.split("");
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < best) best = rank;
      }
      if (best === Number.POSITIVE_INFINITY) break;
      const line = this.merges[best];
      const sp = line.indexOf(" ");
      const first = line.slice(0, sp);
      const second = line.slice(sp + 1);
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (i + 1 < symbols.length && symbols[i] === first && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }
}
