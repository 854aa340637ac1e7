// The Snowball English ("Porter2") stemmer, as PyStemmer's Stemmer("english") stems: retrieval_match.words
// stems the question's words with it, and the page must find the same index terms.
const VOWELS = new Set(["a", "e", "i", "o", "u", "y"]);
const isV = (c) => VOWELS.has(c);
const EXCEPTIONS = {
  skis: "ski", skies: "sky", idly: "idl", gently: "gentl", ugly: "ugli", early: "earli", only: "onli",
  singly: "singl", sky: "sky", news: "news", howe: "howe", atlas: "atlas", cosmos: "cosmos", bias: "bias",
  andes: "andes", dying: "die", lying: "lie", tying: "tie",
};
const AFTER_1A = new Set(["inning", "outing", "canning", "herring", "earring", "proceed", "exceed", "succeed", "evening"]);
const R1_PREFIXES = ["gener", "commun", "arsen", "past", "univers", "later", "emerg", "organ", "inter"];

function longest(w, suffixes) {
  let best = null;
  for (const s of suffixes) if (w.endsWith(s) && (best === null || s.length > best.length)) best = s;
  return best;
}

// a short syllable ends at position end (exclusive) of w
function shortAt(w, end) {
  if (end >= 3) {
    const a = w[end - 3], b = w[end - 2], c = w[end - 1];
    if (!isV(a) && isV(b) && !isV(c) && c !== "w" && c !== "x" && c !== "Y") return true;
  }
  return end === 2 && isV(w[0]) && !isV(w[1]);
}

function regions(w) {
  let p1 = w.length, p2 = w.length;
  const afterVC = (from) => {  // the position after the first non-vowel that follows a vowel, from `from`
    let i = from;
    while (i < w.length && !isV(w[i])) i++;
    while (i < w.length && isV(w[i])) i++;
    return i < w.length ? i + 1 : w.length;
  };
  const prefix = R1_PREFIXES.find((p) => w.startsWith(p));
  p1 = prefix ? prefix.length : afterVC(0);
  p2 = afterVC(p1);
  return [p1, p2];
}

export function stem(word) {
  if (Object.prototype.hasOwnProperty.call(EXCEPTIONS, word)) return EXCEPTIONS[word];
  if (word.length < 3) return word;
  let w = word;
  if (w[0] === "'") w = w.slice(1);
  // prelude: initial y, and y after a vowel, are consonants (Y)
  let chars = Array.from(w);
  if (chars[0] === "y") chars[0] = "Y";
  for (let i = 1; i < chars.length; i++) if (chars[i] === "y" && isV(chars[i - 1])) chars[i] = "Y";
  w = chars.join("");
  const [p1, p2] = regions(w);
  // step 0: apostrophes
  const s0 = longest(w, ["'s'", "'s", "'"]);
  if (s0) w = w.slice(0, -s0.length);
  // step 1a
  const s1a = longest(w, ["sses", "ied", "ies", "s", "us", "ss"]);
  if (s1a === "sses") w = w.slice(0, -2);
  else if (s1a === "ied" || s1a === "ies") w = w.slice(0, -3) + (w.length > 4 ? "i" : "ie");
  else if (s1a === "s") {
    const before = w.slice(0, -2);
    if (Array.from(before).some(isV)) w = w.slice(0, -1);
  }
  if (AFTER_1A.has(w)) return w;
  // step 1b
  const s1b = longest(w, ["eed", "eedly", "ed", "edly", "ing", "ingly"]);
  if (s1b === "eed" || s1b === "eedly") {
    if (w.length - s1b.length >= p1) w = w.slice(0, -s1b.length) + "ee";
  } else if (s1b) {
    const rest = w.slice(0, -s1b.length);
    if (Array.from(rest).some(isV)) {
      w = rest;
      if (w.endsWith("at") || w.endsWith("bl") || w.endsWith("iz")) w += "e";
      else if (/(bb|dd|ff|gg|mm|nn|pp|rr|tt)$/.test(w) && !/^[aeo]..$/.test(w)) w = w.slice(0, -1);
      else if (w.length <= p1 && shortAt(w, w.length)) w += "e";
    }
  }
  // step 1c
  if (w.length > 2 && (w.endsWith("y") || w.endsWith("Y")) && !isV(w[w.length - 2])) w = w.slice(0, -1) + "i";
  // step 2
  const STEP2 = {
    tional: "tion", enci: "ence", anci: "ance", abli: "able", entli: "ent", izer: "ize", ization: "ize",
    ational: "ate", ation: "ate", ator: "ate", alism: "al", aliti: "al", alli: "al", fulness: "ful",
    ousli: "ous", ousness: "ous", iveness: "ive", iviti: "ive", biliti: "ble", bli: "ble", ogi: "og",
    fulli: "ful", lessli: "less", li: "", ogist: "og",
  };
  const s2 = longest(w, Object.keys(STEP2));
  if (s2 && w.length - s2.length >= p1) {
    const rest = w.slice(0, -s2.length);
    if (s2 === "ogi" || s2 === "ogist") { if (rest.endsWith("l")) w = rest + "og"; }
    else if (s2 === "li") { if (/[cdeghkmnrt]$/.test(rest)) w = rest; }
    else w = rest + STEP2[s2];
  }
  // step 3
  const STEP3 = { tional: "tion", ational: "ate", alize: "al", icate: "ic", iciti: "ic", ical: "ic", ful: "",
    ness: "", ative: "" };
  const s3 = longest(w, Object.keys(STEP3));
  if (s3 && w.length - s3.length >= p1) {
    if (s3 !== "ative") w = w.slice(0, -s3.length) + STEP3[s3];
    else if (w.length - s3.length >= p2) w = w.slice(0, -s3.length);
  }
  // step 4
  const s4 = longest(w, ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ism",
    "ate", "iti", "ous", "ive", "ize", "ion"]);
  if (s4 && w.length - s4.length >= p2) {
    if (s4 !== "ion") w = w.slice(0, -s4.length);
    else if (/[st]$/.test(w.slice(0, -3))) w = w.slice(0, -3);
  }
  // step 5
  if (w.endsWith("e")) {
    const at = w.length - 1;
    if (at >= p2 || (at >= p1 && !shortAt(w, at))) w = w.slice(0, -1);
  } else if (w.endsWith("l") && w.length - 1 >= p2 && w[w.length - 2] === "l") {
    w = w.slice(0, -1);
  }
  return w.replace(/Y/g, "y");
}
