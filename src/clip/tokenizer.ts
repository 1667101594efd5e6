// OpenAI CLIP's BPE tokenizer in Node: the tokenizer of tokenizer-core.ts (free of Node modules, shared with
// the browser) plus loading vocabulary files, the bundled one by default.
import { gunzipSync } from "node:zlib";
import { readBundledFile } from "../util/assets.js";
import { ClipTokenizerCore, mergeLinesOf } from "./tokenizer-core.js";

export {
  cleanText,
  DEFAULT_CONTEXT_LENGTH,
  EOT_ID,
  SOT_ID,
  type TokenizedBatch,
  type TokenizeOptions,
} from "./tokenizer-core.js";

/** The bundled vocabulary (assets/vocab/), also what the browser page fetches. */
export const DEFAULT_VOCAB = ["vocab", "bpe_simple_vocab_16e6.txt.gz"];

export class ClipTokenizer extends ClipTokenizerCore {
  /** The tokenizer of the bundled vocabulary (assets/vocab/bpe_simple_vocab_16e6.txt.gz). */
  static load(): ClipTokenizer {
    return ClipTokenizer.fromGzippedMerges(readBundledFile(...DEFAULT_VOCAB));
  }

  /** A tokenizer from the bytes of a gzipped merges file (OpenAI's bpe_simple_vocab_16e6.txt.gz format). */
  static fromGzippedMerges(bytes: Uint8Array): ClipTokenizer {
    return new ClipTokenizer(mergeLinesOf(gunzipSync(bytes)));
  }
}
