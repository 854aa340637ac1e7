// minillm.retrieval.Index.scores/search and passages_context, with retrieval_match's query analysis, over the
// exported bm25s score matrix: the same passages as `minillm ask` finds for the same question.
import { stem } from "./stemmer.js";

const STOP_WORDS = new Set((
  "a an and are as at be but by for if in into is it no not of on or such that the their then there these " +
  "they this to was will with what which who whom how why where when does do did much many made called " +
  "tell else me can you about kind type").split(" "));
const TITLE_BONUS = 1.0, TITLE_WORD_BONUS = 0.1, QUALIFIER_BONUS = 0.3, HEAD_WORD_BONUS = 0.35;
const ANSWER_SEEKING_SCALE = 0.3;
const SYNONYMS = {
  biggest: "largest", bigger: "larger", tallest: "highest", taller: "higher", closest: "nearest",
  closer: "nearer", quickest: "fastest", quicker: "faster", warmest: "hottest", warmer: "hotter",
  coolest: "coldest", cooler: "colder", tiniest: "smallest", tinier: "smaller",
  "most common": "most abundant", commonest: "most abundant", "most populated": "most populous", world: "earth",
};
// Python's \w and \b (Unicode) spelled for JavaScript
const W = "[\\p{L}\\p{N}_]";
const B_BEFORE = `(?<!${W})`, B_AFTER = `(?!${W})`;
const SYNONYM = new RegExp(B_BEFORE + "(?:" + Object.keys(SYNONYMS).sort((a, b) => b.length - a.length).join("|") +
  ")" + B_AFTER, "gu");
const WORD = /[\p{L}\p{N}]+(?:[-'’][\p{L}\p{N}]+)*/gu;
const POSSESSIVE = new RegExp(`['’]s${B_AFTER}`, "gu");
const QUALIFIER = /\s*\(([^)]*)\)\s*$|,\s*([^,]*)$/u;
const AUX = "(?:is|are|was|were|do|does|did|has|have|can|could|will|would)";
const SUPERLATIVE = "(?:largest|biggest|smallest|tallest|highest|lowest|longest|shortest|deepest|heaviest|" +
  "lightest|hottest|coldest|fastest|slowest|oldest|youngest|closest|nearest|farthest|furthest|" +
  "brightest|densest|greatest|widest|driest|wettest|rarest|best|worst|first|second|third|fourth|" +
  `fifth|sixth|seventh|eighth|ninth|tenth|last|capital|(?:most|least)\\s+${W}+)`;
const PHRASE_END = "(?:in|of|on|at|to|from|by|for|that|which|who|and|with|ever|among|after|than|known|found|" +
  AUX.slice(3);
const PHRASE = "[\\p{L}\\p{N}_'’-]+";
const SUPERLATIVE_PHRASE = new RegExp(`${B_BEFORE}${SUPERLATIVE}((?:\\s+(?!${PHRASE_END}${B_AFTER})${PHRASE}){0,3})`, "u");
const WHICH_PHRASE = new RegExp(`^\\s*(?:which|what)((?:\\s+(?!${AUX}${B_AFTER})${PHRASE}){1,3})\\s+${AUX}${B_AFTER}`, "u");
const ATTRIBUTE_PHRASE = new RegExp(`^\\s*(?:what|which|how)\\s+(?:is|are|was|were)\\s+(?:the\\s+)?` +
  `((?:${PHRASE}\\s+){1,3}?)of\\s+${W}`, "u");

export function fold(text) {
  return text.toLowerCase().normalize("NFKD").replace(/\p{Mn}/gu, "");
}

export function words(text) {
  const found = fold(text).replace(POSSESSIVE, "").match(WORD) || [];
  return found.filter((w) => !STOP_WORDS.has(w)).map(stem);
}

export function terms(text) {
  const w = words(text);
  const pairs = [];
  for (let i = 0; i < w.length; i++) for (const j of [i + 1, i + 2]) if (j < w.length) pairs.push(w[i] + " " + w[j]);
  return w.concat(pairs);
}

export function queryTerms(question) {
  const own = terms(question);
  const swapped = terms(fold(question).replace(SYNONYM, (m) => SYNONYMS[m]));
  const ownSet = new Set(own);
  return own.concat(swapped.filter((t) => !ownSet.has(t)));
}

function splitTitle(title) {
  const m = QUALIFIER.exec(title);
  if (!m || m.index === 0) return [title, ""];
  return [title.slice(0, m.index), m[1] !== undefined ? m[1] : m[2]];
}

function questionFrame(question) {
  const text = fold(question);
  const phrases = [];
  let seeking = false;
  for (const [pattern, asksOther] of [[SUPERLATIVE_PHRASE, true], [WHICH_PHRASE, true], [ATTRIBUTE_PHRASE, false]]) {
    const m = pattern.exec(text);
    if (m) {
      phrases.push(words(m[1]));
      seeking = seeking || asksOther;
    }
  }
  return [phrases, seeking];
}

const sameWords = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const contains = (seq, sub) => {
  for (let i = 0; i + sub.length <= seq.length; i++) if (sameWords(seq.slice(i, i + sub.length), sub)) return true;
  return false;
};
const round6 = (x) => parseFloat(x.toFixed(6));

class TitleMatcher {
  constructor(titles) {
    this.bases = []; this.qualifiers = []; this.byFirst = new Map(); this.byHead = new Map();
    titles.forEach((title, i) => {
      const [base, qualifier] = splitTitle(title);
      const b = words(base);
      this.bases.push(b);
      this.qualifiers.push(new Set(words(qualifier)));
      if (b.length) {
        if (!this.byFirst.has(b[0])) this.byFirst.set(b[0], []);
        this.byFirst.get(b[0]).push(i);
        const head = b[b.length - 1];
        if (!this.byHead.has(head)) this.byHead.set(head, []);
        this.byHead.get(head).push(i);
      }
    });
  }

  bonuses(question) {
    const q = words(question);
    const [phrases, seeking] = questionFrame(question);
    const scale = seeking ? ANSWER_SEEKING_SCALE : 1.0;
    const full = [];
    q.forEach((word, start) => {
      for (const i of this.byFirst.get(word) || []) {
        const end = start + this.bases[i].length;
        if (sameWords(q.slice(start, end), this.bases[i])) full.push([start, end, i]);
      }
    });
    const result = new Map();
    for (const [start, end, i] of full) {
      const insideLonger = full.some(([s, e]) => s <= start && end <= e && e - s > end - start);
      if (insideLonger || phrases.some((p) => contains(p, this.bases[i]))) continue;
      let bonus = TITLE_BONUS + TITLE_WORD_BONUS * this.bases[i].length;
      if (q.some((w) => this.qualifiers[i].has(w))) bonus += QUALIFIER_BONUS;
      result.set(i, round6(scale * bonus));
    }
    const named = new Set(full.map(([, , i]) => i));
    for (const word of new Set(q)) {
      if (phrases.some((p) => p.includes(word))) continue;
      for (const i of this.byHead.get(word) || []) {
        if (!named.has(i) && this.bases[i].length > 1) {
          const share = this.bases[i].filter((w) => q.includes(w)).length / this.bases[i].length;
          result.set(i, round6(HEAD_WORD_BONUS * share));
        }
      }
    }
    return result;
  }
}

export class Index {
  // files: {passages, titles, vocab, data: Float32Array, indices: Int32Array, indptr: Int32Array}
  constructor(files) {
    Object.assign(this, files);
    this.vocabIds = new Map(files.vocab.map((t, i) => [t, i]));
    this.matcher = new TitleMatcher(files.titles);
  }

  static async load(base) {
    const get = async (name) => {
      const response = await fetch(base + name);
      if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
      return response;
    };
    const [passages, titles, vocab, data, indices, indptr] = await Promise.all([
      get("passages.json").then((r) => r.json()), get("titles.json").then((r) => r.json()),
      get("vocab.json").then((r) => r.json()), get("data.f32").then((r) => r.arrayBuffer()),
      get("indices.i32").then((r) => r.arrayBuffer()), get("indptr.i32").then((r) => r.arrayBuffer())]);
    return new Index({ passages, titles, vocab, data: new Float32Array(data), indices: new Int32Array(indices),
      indptr: new Int32Array(indptr) });
  }

  scores(question) {
    const n = this.passages.length;
    const scores = new Float64Array(n);
    const query = queryTerms(question).filter((t) => this.vocabIds.has(t)).map((t) => this.vocabIds.get(t));
    if (query.length) {
      const bm25 = new Float32Array(n);  // bm25s accumulates in float32, term by term
      for (const t of query) {
        for (let j = this.indptr[t]; j < this.indptr[t + 1]; j++) bm25[this.indices[j]] += this.data[j];
      }
      let max = -Infinity;
      for (let i = 0; i < n; i++) { scores[i] = bm25[i]; if (scores[i] > max) max = scores[i]; }
      if (max > 0) for (let i = 0; i < n; i++) scores[i] /= max;
    }
    const bonus = this.matcher.bonuses(question);
    for (let i = 0; i < n; i++) {
      const b = bonus.get(this.passages[i].article);
      if (b !== undefined) scores[i] += b;
    }
    return scores;
  }

  search(question, k = 3) {
    const scores = this.scores(question);
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
    return order.slice(0, k).filter((i) => scores[i] > 0).map((i) => ({ ...this.passages[i], score: scores[i] }));
  }
}

const PY_SPACE = /^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu;
export const pyStrip = (s) => s.replace(PY_SPACE, "");

export function passagesContext(passages, maxChars = 1500) {
  const text = passages.map((p) => pyStrip(p.text)).filter((t) => t).join(" ");
  const chars = Array.from(text);  // Python counts code points
  if (chars.length <= maxChars) return text;
  const cut = chars.slice(0, maxChars + 1);
  const space = cut.lastIndexOf(" ");
  return (space > 0 ? cut.slice(0, space) : cut.slice(0, maxChars)).join("").replace(/[\s\x1c-\x1f\x85]+$/u, "");
}
