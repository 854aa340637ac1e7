// minillm.core.words: a closed vocabulary, the words an open-book answer may spell (the words of the
// index's passages, the question and its context). A word is a run of letters (Python's [^\W\d_]+: letters,
// letter-like and other numerals, no decimal digits), lowercased as Python's str.lower does.
const LETTERS = /[\p{L}\p{Nl}\p{No}]+/gu;
const PY_TRAILING_SPACE = /(?:[^\S\ufeff]|[\x1c-\x1f\x85])+$/u;  // Python's str.rstrip()
const UNFINISHED = /\ufffd+$/u;  // a character whose last bytes are still to come: its word goes on
export const VOCABULARY_TRIES = 64;  // generation.VOCABULARY_TRIES
const WINDOW = 200, RECENT = 3;  // allows checks the last RECENT whole words in the last WINDOW characters

export function letterWords(text) {
  return Array.from(text.toLowerCase().matchAll(LETTERS), (m) => m[0]);
}

export class Vocabulary {
  constructor(words) {
    this.words = new Set(words);
    this.prefixes = new Set();
    this.beforeWide = new Set();  // the prefixes a character of several bytes follows
    for (const word of this.words) {
      const chars = Array.from(word);  // code points, as Python slices
      for (let i = 1; i < chars.length; i++) {
        const prefix = chars.slice(0, i).join("");
        this.prefixes.add(prefix);
        if (chars[i].codePointAt(0) > 127) this.beforeWide.add(prefix);
      }
    }
  }

  static ofTexts(texts) {
    return new Vocabulary(texts.flatMap((text) => letterWords(text)));
  }

  has(word, extra) {
    return this.words.has(word) || (extra != null && extra.words.has(word));
  }

  // Vocabulary.finish: the answer without a last word that is no whole word (cut short, or unfinished)
  finish(text, extra = null) {
    const stripped = text.replace(UNFINISHED, "");
    const found = Array.from(stripped.matchAll(LETTERS));
    if (!found.length) return stripped;
    const last = found[found.length - 1];
    if (last.index + last[0].length !== stripped.length || this.has(last[0].toLowerCase(), extra)) return stripped;
    return stripped.slice(0, last.index).replace(PY_TRAILING_SPACE, "");
  }

  // Vocabulary.allows: every whole word known, the word it ends in at least the start of one (whole if final)
  allows(text, extra = null, final = false) {
    const lowered = text.toLowerCase();
    const unfinished = lowered.replace(UNFINISHED, "");
    const pending = lowered.length - unfinished.length;
    if (pending > 1) return false;  // bytes that make no character
    const start = Math.max(0, unfinished.length - WINDOW);
    let found = Array.from(unfinished.slice(start).matchAll(LETTERS));
    if (start && found.length && found[0].index === 0) found = found.slice(1);  // it may begin inside a word
    if (!found.length) return true;
    const lastMatch = found[found.length - 1];
    const ending = start + lastMatch.index + lastMatch[0].length === unfinished.length;
    if (pending && ending) {  // the word goes on with that character, or it is whole and a sign follows
      const wide = this.beforeWide.has(lastMatch[0]) || (extra != null && extra.beforeWide.has(lastMatch[0]));
      if (!(wide || this.has(lastMatch[0], extra))) return false;
      final = false;
    }
    const whole = ending ? found.slice(0, -1) : found;
    if (whole.slice(-RECENT).some((m) => !this.has(m[0], extra))) return false;
    const last = lastMatch[0];
    return !ending || this.has(last, extra) || (!final &&
      (this.prefixes.has(last) || (extra != null && extra.prefixes.has(last))));
  }
}
