// minillm.retrieval.Index.scores/search and passages_context, with retrieval_match's query analysis, over the
// exported bm25s score matrix: the same passages as `minillm ask` finds for the same question.
import { stem } from "./stemmer.js";

const STOP_WORDS = new Set((
  "a an and are as at be but by for if in into is it no not of on or such that the their then there these " +
  "they this to was will with what which who whom how why where when does do did much many made called " +
  "tell else me can you about kind type").split(" "));
const TITLE_BONUS = 1.0, TITLE_WORD_BONUS = 0.1, QUALIFIER_BONUS = 0.3, PRIMARY_BONUS = 0.1, HEAD_WORD_BONUS = 0.35;
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

// "how do sharks breathe": the last word is the verb of the do-support (retrieval_match._DO_SUPPORT)
const PY_WS = "[\\t-\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const DO_SUPPORT = new RegExp(`^${PY_WS}*(?:how|what|where|why|when|which ${W}+)${PY_WS}+(?:do|does|did)${PY_WS}+` +
  `[\\p{L}\\p{N}_'’ -]+?${PY_WS}+[a-z]+[^\\p{L}\\p{N}_]*$`, "u");

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
    if (q.length === 2 && DO_SUPPORT.test(fold(question))) {
      const keep = full.filter(([start]) => start < q.length - 1);
      full.length = 0;
      full.push(...keep);
    }
    const result = new Map();
    for (const [start, end, i] of full) {
      const insideLonger = full.some(([s, e]) => s <= start && end <= e && e - s > end - start);
      if (insideLonger || phrases.some((p) => contains(p, this.bases[i]))) continue;
      let bonus = TITLE_BONUS + TITLE_WORD_BONUS * this.bases[i].length;
      if (q.some((w) => this.qualifiers[i].has(w))) bonus += QUALIFIER_BONUS;
      else if (this.qualifiers[i].size === 0) bonus += PRIMARY_BONUS;
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

// --- the superlative search (retrieval_match.SuperlativeIndex): the passage that states what is asked ------

const SUPERLATIVE_BONUS = 1.0;
const MIN_SEARCH_SCORE = 2.0;
const ORDINAL = "(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)";
const NOT_SUPERLATIVE = `(?:forest|interest|west|test|chest|nest|rest|guest|quest|crest|harvest|contest|honest)${B_AFTER}`;
const superlativeOf = (space) => `(?:${ORDINAL}${space})?(?:(?:most|least) [\\p{L}\\p{N}_-]+|` +
  `(?!${NOT_SUPERLATIVE})${W}+est${B_AFTER}|first|only)`;
const PLAIN_SUPERLATIVE = `(?:${ORDINAL}[- ])?(?:(?:most|least) [\\p{L}\\p{N}_-]+|largest|biggest|smallest|` +
  "tallest|highest|lowest|longest|shortest|deepest|heaviest|lightest|hottest|coldest|fastest|slowest|oldest|" +
  "youngest|closest|nearest|farthest|furthest|brightest|densest|greatest|widest|driest|wettest|rarest)";
const SUPERLATIVE_QUESTION = new RegExp(`^(?:what|which|who)(?: [\\p{L}\\p{N}_'-]+){0,2}? (?:is|are|was|were) ` +
  `((?:the ${superlativeOf("[- ]")}|${PLAIN_SUPERLATIVE})${B_AFTER}.*)`, "iu");
const SUPERLATIVE_HEAD = new RegExp(`^${superlativeOf(" ")}`, "u");
const UNRANKED = ["second", "third", "th", "\\p{Nd}st", "\\p{Nd}nd", "\\p{Nd}rd", "one of the"]
  .map((o) => `(?<!${o} )`).join("");
const SENTENCE_END = new RegExp(`(?<=[.!?])${PY_WS}+(?=["'(\\[]?[A-Z0-9])`, "u");
const escapeRegExp = (s) => s.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");

function normalized(text) {
  return (fold(text).match(/[\p{L}\p{N}]+/gu) || []).join(" ");
}

function encyclopediaWording(text) {
  let padded = ` ${text} `;
  for (const [informal, formal] of Object.entries(SYNONYMS)) padded = padded.replaceAll(` ${informal} `, ` ${formal} `);
  return pyStrip(padded);
}

export function superlativePhrase(question) {
  const text = question.split(new RegExp(`${PY_WS}+`, "u")).filter((w) => w).join(" ")
    .replace(new RegExp(`(?:${PY_WS}|[?.!])+$`, "u"), "");
  const m = SUPERLATIVE_QUESTION.exec(text);
  return m ? m[1] : null;
}

export class SuperlativeIndex {
  constructor(sentences, titleWords) {  // sentences: [group, place, text]
    this.sentences = sentences.map(([group, place, text]) => [group, place, normalized(text)]);
    this.titleWords = titleWords;
  }

  best(phraseText, question) {
    const phrase = normalized(phraseText.replace(new RegExp(`^the${PY_WS}+`, "iu"), ""));
    const head = SUPERLATIVE_HEAD.exec(phrase);
    if (!head) return [];
    const unranked = new RegExp(`^${ORDINAL}`, "u").test(head[0]) ? "" : UNRANKED;
    const eitherWording = (...texts) => {
      const forms = new Set(texts.flatMap((t) => [t, encyclopediaWording(t)]));
      return new RegExp([...forms].sort().map((f) => `${unranked}${B_BEFORE}${escapeRegExp(f)}${B_AFTER}`).join("|"), "u");
    };
    const forms = [...new Set([head[0], encyclopediaWording(head[0])])];
    const world = /^(.+?) (?:in|on) the (world|earth)$/u.exec(phrase);
    const superlative = eitherWording(head[0]);
    const whole = eitherWording(phrase, ...(world ? [`${world[2]} s ${world[1]}`] : []));
    const own = new RegExp(`${unranked}${B_BEFORE}${escapeRegExp(head[0])}${B_AFTER}`, "u");
    const asked = new Set([...words(question), ...words(encyclopediaWording(normalized(question)))]);
    let best = [], bestScore = MIN_SEARCH_SCORE - 1e-9;
    for (const [group, place, text] of this.sentences) {
      if (!forms.some((f) => text.includes(f)) || !superlative.test(text)) continue;
      const title = group >= 0 ? this.titleWords(group) : [];
      const shared = new Set(words(text).filter((w) => asked.has(w))).size;
      const named = title.filter((w) => asked.has(w)).length;
      const score = shared + 2.0 * (whole.test(text) ? 1 : 0) + 0.5 * (place === 0 ? 1 : 0) +
        0.5 * named / Math.max(1, title.length) + 0.25 * (own.test(text) ? 1 : 0);
      if (score > bestScore + 1e-9) { best = []; bestScore = score; }
      if (score > bestScore - 1e-9) best.push({ group, place, score });
    }
    return best;
  }
}

export class Index {
  // files: {passages, titles, vocab, data: Float32Array, indices: Int32Array, indptr: Int32Array}, and for a
  // hybrid index embeddings (Float32Array, one row of `dimensions` a passage) and the cosine's `weight`
  constructor(files) {
    Object.assign(this, files);
    this.vocabIds = new Map(files.vocab.map((t, i) => [t, i]));
    this.matcher = new TitleMatcher(files.titles);
  }

  static async load(base, dense = null) {  // dense: config.json's "dense" (a hybrid index), else null
    const get = async (name) => {
      const response = await fetch(base + name);
      if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
      return response;
    };
    const [passages, titles, vocab, data, indices, indptr, embeddings] = await Promise.all([
      get("passages.json").then((r) => r.json()), get("titles.json").then((r) => r.json()),
      get("vocab.json").then((r) => r.json()), get("data.f32").then((r) => r.arrayBuffer()),
      get("indices.i32").then((r) => r.arrayBuffer()), get("indptr.i32").then((r) => r.arrayBuffer()),
      dense ? get("embeddings.f32").then((r) => r.arrayBuffer()) : null]);
    const files = { passages, titles, vocab, data: new Float32Array(data), indices: new Int32Array(indices),
      indptr: new Int32Array(indptr) };
    if (dense) {
      Object.assign(files, { embeddings: new Float32Array(embeddings), weight: dense.weight,
        dimensions: dense.dimensions });
    }
    return new Index(files);
  }

  // retrieval.Index.scores; for a hybrid index `vector` is the question's (QuestionEncoder.vector)
  scores(question, vector = null) {
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
    const phrase = superlativePhrase(question);
    if (phrase !== null) {
      for (const found of this.superlatives().best(phrase, question)) scores[found.group] += SUPERLATIVE_BONUS;
    }
    if (this.embeddings && vector) {  // the weighted cosine (float32, as torch's product), where words matched
      const d = this.dimensions;
      for (let i = 0; i < n; i++) {
        if (!(scores[i] > 0)) { scores[i] = 0; continue; }
        let dot = 0;
        for (let j = 0; j < d; j++) dot += this.embeddings[i * d + j] * vector[j];
        scores[i] += Math.fround(this.weight * Math.fround(dot));
      }
    }
    return scores;
  }

  superlatives() {  // every passage's sentences, built on the first superlative question
    if (!this.superlativeIndex) {
      const sentences = this.passages.flatMap((p, i) => p.text.split(SENTENCE_END).map((s, j) => [i, j, s]));
      this.superlativeIndex = new SuperlativeIndex(sentences, (i) => this.matcher.bases[this.passages[i].article]);
    }
    return this.superlativeIndex;
  }

  search(question, k = 3, vector = null) {
    const scores = this.scores(question, vector);
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
    return order.slice(0, k).filter((i) => scores[i] > 0).map((i) => ({ ...this.passages[i], score: scores[i] }));
  }
}

// retrieval.dense.OnnxQuestionEncoder: the question's unit vector from the exported encoder graph
export class QuestionEncoder {
  constructor(session, wordpiece, maxLength) {
    Object.assign(this, { session, wordpiece, maxLength });
  }

  async vector(text) {
    const ids = this.wordpiece.encode(text, this.maxLength), n = ids.length;
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
      token_type_ids: new ort.Tensor("int64", new BigInt64Array(n), [1, n]),
    };
    return (await this.session.run(feeds)).vector.data;
  }
}

const PY_SPACE = /^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu;
export const pyStrip = (s) => s.replace(PY_SPACE, "");

export function passagesContext(passages, maxChars = 1500, separator = " ") {
  const text = passages.map((p) => pyStrip(p.text)).filter((t) => t).join(separator);
  const chars = Array.from(text);  // Python counts code points
  if (chars.length <= maxChars) return text;
  const cut = chars.slice(0, maxChars + 1);
  const space = cut.lastIndexOf(" ");
  return (space > 0 ? cut.slice(0, space) : cut.slice(0, maxChars)).join("").replace(/[\s\x1c-\x1f\x85]+$/u, "");
}
