// minillm.models.pattern's open-book reading (reader.PatternReading), for runs whose [answer] reader is
// "pattern": the best passage's lead, then its sentence that answers, copied whole. The rules come in
// config.json as the Python regex text the run answers with; pyRegex spells them for JavaScript (Unicode \w,
// \b, \d and \s as Python's re means them). The passages' sentences come split by Python (pysbd) in
// passages.json, so nothing here splits sentences.
import { SuperlativeIndex, pyStrip, words } from "./retrieval.js";

const CUE_BONUS = 1.5;
const WC = "\\p{L}\\p{N}_";
const PY_WS = "\\t-\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const QUOTES = " \"'“”";

export function pyRegex(source) {  // Python re syntax of the rules -> JavaScript ("iu" flags)
  let out = "", inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      const n = source[++i];
      if (n === "w") out += inClass ? WC : `[${WC}]`;
      else if (n === "W") out += `[^${WC}]`;
      else if (n === "d") out += "\\p{Nd}";
      else if (n === "s") out += inClass ? PY_WS : `[${PY_WS}]`;
      else if (n === "b") out += `(?:(?<=[${WC}])(?![${WC}])|(?<![${WC}])(?=[${WC}]))`;
      else out += "\\" + n;
    } else if (!inClass && source.startsWith("(?P<", i)) {
      out += "(?<";
      i += 3;
    } else {
      if (c === "[" && !inClass) inClass = true;
      else if (c === "]" && inClass) inClass = false;
      out += c;
    }
  }
  return out;
}

const stripChars = (text, chars) => {
  let a = 0, b = text.length;
  while (a < b && chars.includes(text[a])) a++;
  while (b > a && chars.includes(text[b - 1])) b--;
  return text.slice(a, b);
};

export class PatternReading {
  constructor(rules, maxSentences) {  // rules: [name, question regex, strategy, cue regex], as pattern.json
    this.maxSentences = maxSentences;
    this.rules = rules.map(([name, question, strategy, cue]) => ({
      name, strategy, question: new RegExp(pyRegex(question), "iu"),
      cue: cue ? new RegExp(pyRegex(cue), "giu") : null }));
  }

  // PatternMatcher.answer_sentences with a context: passages is one array of sentences per passage
  answerSentences(rawQuestion, passages) {
    const question = rawQuestion.split(new RegExp(`[${PY_WS}]+`, "u")).filter((w) => w).join(" ")
      .replace(new RegExp(`[${PY_WS}?.!]+$`, "u"), "");
    let rule = null, match = null;
    for (const r of this.rules) {
      match = r.question.exec(question);
      if (match) { rule = r; break; }
    }
    if (!rule) return ["I don't understand the question."];
    const group = match.slice(1).find((g) => g);
    const subject = group === undefined ? null : stripChars(group, QUOTES);
    passages = passages.filter((p) => p.length);
    if (!passages.length) return ["The passage says nothing."];
    if (rule.strategy === "search") {
      const sentences = passages.flatMap((p, i) => p.map((s, j) => [i, j, s]));
      const found = new SuperlativeIndex(sentences, () => []).best(subject || "", question)[0];
      if (found) return this.withLead(passages[found.group], this.fact(passages[found.group], found.place));
    }
    const first = passages[0];
    const known = new Set();
    if (subject) {
      const lead = new Set(words(first[0]));
      for (const w of words(subject)) if (lead.has(w)) known.add(w);
    }
    if ((rule.strategy === "cue" || rule.strategy === "search") && first.length > 1) {
      return this.withLead(first, this.pick(rule, question, first.slice(1), known));
    }
    return this.pick(rule, question, first, known);
  }

  pick(rule, question, sentences, known) {
    const n = this.maxSentences;
    if (rule.strategy === "more" && sentences.length > 2) return sentences.slice(2, 2 + n);
    if (rule.strategy === "cue" || rule.strategy === "search") {
      const asked = new Set(words(question).filter((w) => !known.has(w)));
      const scores = sentences.map((s) => new Set(words(s).filter((w) => asked.has(w))).size +
        CUE_BONUS * this.cues(rule, s));
      let best = 0;
      scores.forEach((score, j) => { if (score > scores[best]) best = j; });
      if (scores[best] > 0) return this.fact(sentences, best);
    }
    return sentences.slice(0, n);
  }

  cues(rule, sentence) {
    if (!rule.cue) return 0;
    return Math.min(2, new Set(Array.from(sentence.matchAll(rule.cue), (m) => m[0].toLowerCase())).size);
  }

  withLead(sentences, picked) {
    if (this.maxSentences === 1 || picked[0] === sentences[0]) return picked.slice(0, this.maxSentences);
    return [sentences[0], ...picked].slice(0, this.maxSentences);
  }

  fact(sentences, j) {
    if (this.maxSentences === 1) return [sentences[j]];
    const start = j > 0 && j === sentences.length - 1 ? j - 1 : j;
    return sentences.slice(start, start + 2);
  }
}

// the sentences of each passage as the prompt holds them: "\n"-joined passages cut to context_chars, so the
// last one may be cut short (its whole sentences, then what is left of it, as the splitter would give)
export function contextSentences(passages, lined) {
  return lined.split("\n").map((text, i) => {
    const full = passages[i].sentences;
    if (text === pyStrip(passages[i].text)) return full;
    const kept = [];
    let rest = text;
    for (const s of full) {
      const at = rest.indexOf(s);
      if (at === -1) break;
      kept.push(s);
      rest = rest.slice(at + s.length);
    }
    rest = pyStrip(rest);
    return rest ? [...kept, rest] : kept;
  });
}
