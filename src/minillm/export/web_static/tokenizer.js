// A reader of the run's tokenizer.json (Hugging Face `tokenizers`, byte-level BPE as minillm trains it):
// GPT-2 regex pre-tokenization, bytes mapped to printable characters, merges applied by rank. Special tokens
// are never matched in text (minillm sets encode_special_tokens): "<eos>" in a question is ordinary text.
const PIECE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

function byteChars() {  // GPT-2's bytes_to_unicode: byte -> a printable character
  const chars = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return chars;
}

export class Tokenizer {
  constructor(json) {
    if (json.model.type !== "BPE") throw new Error("not a byte-level BPE tokenizer.json");
    this.vocab = new Map(Object.entries(json.model.vocab));
    this.tokens = [];
    for (const [token, id] of this.vocab) this.tokens[id] = token;
    this.special = new Set();
    for (const added of json.added_tokens || []) {
      this.tokens[added.id] = added.content;
      if (added.special) this.special.add(added.id);
    }
    this.ranks = new Map();
    json.model.merges.forEach((m, rank) => {
      const [a, b] = typeof m === "string" ? m.split(" ") : m;
      this.ranks.set(a + " " + b, rank);
    });
    this.byteToChar = byteChars();
    this.charToByte = new Map(this.byteToChar.map((c, b) => [c, b]));
    this.utf8 = new TextEncoder();
    this.cache = new Map();
  }

  bpe(piece) {
    const cached = this.cache.get(piece);
    if (cached) return cached;
    const symbols = Array.from(this.utf8.encode(piece), (b) => this.byteToChar[b]);
    while (symbols.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.ranks.get(symbols[i] + " " + symbols[i + 1]);
        if (rank !== undefined && rank < bestRank) { bestRank = rank; best = i; }
      }
      if (best < 0) break;
      symbols.splice(best, 2, symbols[best] + symbols[best + 1]);
    }
    const ids = symbols.map((s) => this.vocab.get(s));
    if (this.cache.size < 50000) this.cache.set(piece, ids);
    return ids;
  }

  encode(text) {
    const ids = [];
    for (const m of text.matchAll(PIECE)) for (const id of this.bpe(m[0])) ids.push(id);
    return ids;
  }

  decode(ids) {  // skip_special_tokens, as tokenizer.decode
    const bytes = [];
    for (const id of ids) {
      if (this.special.has(id)) continue;
      for (const c of this.tokens[id] ?? "") bytes.push(this.charToByte.get(c));
    }
    return new TextDecoder("utf-8").decode(new Uint8Array(bytes));
  }
}
