// The page of `minillm export web`: `minillm ask` in the browser. The model runs in onnxruntime-web
// (WebAssembly, one thread) with its KV cache as minillm.export.onnx.onnx_greedy runs it; the sampling loop
// is minillm.engine.sample_tokens with ANSWER_SAMPLING (greedy) and its stop rules; open book retrieves with
// retrieval.js and is read by reading.js (the pattern rules) or ranker.js (the trained reader) when the
// run's [answer] reader says so. Every string from the user, the model or an article is shown as text
// (textContent only).
import { SentenceRanker } from "./ranker.js";
import { PatternReading, contextSentences } from "./reading.js";
import { Index, QuestionEncoder, passagesContext, pyStrip } from "./retrieval.js";
import { Tokenizer } from "./tokenizer.js";
import { WordPiece } from "./wordpiece.js";
import { VOCABULARY_TRIES, Vocabulary } from "./words.js";

const $ = (id) => document.getElementById(id);
const state = { config: null, tok: null, index: null, session: null, encoder: null, reading: null, busy: false };

// --- models/generation.py, greedy ---------------------------------------------------------------------------------------
const PY_S = "(?:[^\\S\\ufeff]|[\\x1c-\\x1f\\x85])";  // Python's \s
const SENTENCE_END = new RegExp(`[.!?]["')\\]]*(?=${PY_S})|(?<!\\p{Nd})[.!?]["')\\]]*(?=\\n?$)`, "gu");
const WORD = /[\p{L}\p{N}_]+/gu;

export function sentenceEnds(text) {
  return Array.from(text.matchAll(SENTENCE_END), (m) => m.index + m[0].length);
}

export function wholeSentences(text) {
  const ends = sentenceEnds(text);
  return ends.length ? text.slice(0, ends[ends.length - 1]) : text;
}

export function repeatsWordNgram(text, n) {
  const words = text.toLowerCase().match(WORD) || [];
  if (words.length && /[\p{L}\p{N}_]$/u.test(text)) words.pop();  // the last word may still grow
  if (words.length <= n) return false;
  const newest = words.slice(-n).join(" ");
  for (let i = 0; i < words.length - n; i++) if (words.slice(i, i + n).join(" ") === newest) return true;
  return false;
}

const PROMPT_LABEL = /(?<![\p{L}\p{N}_])(?:Question|Answer|Context) *:/gu;
const labels = (text) => (text.match(PROMPT_LABEL) || []).length;

export function repeatedNgramEnds(ids, n) {
  if (n < 1 || ids.length < n - 1) return [];
  const tail = n > 1 ? ids.slice(ids.length - n + 1) : [];
  const found = [];
  for (let i = 0; i + n - 1 < ids.length; i++) {
    let same = true;
    for (let j = 0; j < n - 1; j++) if (ids[i + j] !== tail[j]) { same = false; break; }
    if (same) found.push(ids[i + n - 1]);
  }
  return found;
}

function greedyToken(logits, seen, banned, penalty) {  // engine.adjust_logits + argmax, in float32
  const p = Math.fround(penalty);
  let best = -1, bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    let v = banned.has(i) ? -Infinity : logits[i];
    if (penalty !== 1 && seen[i]) v = v > 0 ? Math.fround(v / p) : Math.fround(v * p);
    if (best < 0 || v > bestValue) { best = i; bestValue = v; }
  }
  return best;
}

function formatPrompt(question, context) {
  return context ? `Context: ${context}\nQuestion: ${question}\nAnswer:` : `Question: ${question}\nAnswer:`;
}

function encodePrompt(question, context) {
  return [state.config.bos_id, ...state.tok.encode(formatPrompt(question, context))];
}

export function fitPrompt(question, context, maxLen) {  // engine.fit_prompt
  return fittedPrompt(question, context, maxLen).ids;
}

// fit_prompt's ids and the context they keep (null: none, the closed-book prompt)
function fittedPrompt(question, context, maxLen) {
  let ids = encodePrompt(question, context);
  if (ids.length <= maxLen) return { ids, context };
  if (context) {
    const ends = Array.from(context.matchAll(/\S+/gu), (m) => m.index + m[0].length);
    let kept = 0, high = ends.length;
    while (kept < high) {
      const probe = Math.floor((kept + high + 1) / 2);
      if (encodePrompt(question, context.slice(0, ends[probe - 1])).length <= maxLen) kept = probe;
      else high = probe - 1;
    }
    if (kept) {
      const cut = context.slice(0, ends[kept - 1]);
      return { ids: encodePrompt(question, cut), context: cut };
    }
  }
  ids = encodePrompt(question);
  if (ids.length <= maxLen) return { ids, context: null };
  return { ids: [ids[0], ...ids.slice(ids.length - maxLen + 1)], context: null };
}

// the decoder as onnx_greedy calls it: the prompt once with empty past tensors, then one token at a time
class Decoder {
  constructor(session, config) {
    this.session = session;
    this.config = config;
  }

  reset(promptIds) {
    this.ids = promptIds.slice();
    this.cached = 0;
    this.past = {};
    for (const c of this.config.cache) {
      const data = c.type === "int64" ? new BigInt64Array(0) : new Float32Array(0);
      this.past[c.name] = new ort.Tensor(c.type, data, c.shape);
    }
  }

  async logits() {  // the logits after this.ids
    const useCache = this.config.cache.length > 0;
    const fresh = this.ids.slice(useCache ? this.cached : 0);
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(fresh, BigInt), [1, fresh.length]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(this.ids.length).fill(1n), [1, this.ids.length]),
      ...(useCache ? this.past : {}),
    };
    const out = await this.session.run(feeds);
    if (useCache) {
      for (const c of this.config.cache) {
        this.past[c.name].dispose?.();
        this.past[c.name] = out[this.config.presents[c.name]];
      }
      this.cached = this.ids.length;
    }
    const vocab = out.logits.dims[2];
    const last = out.logits.data.slice((fresh.length - 1) * vocab, fresh.length * vocab);
    out.logits.dispose?.();
    return last;
  }
}

// engine.sample_tokens, temperature 0; ``extra`` (open book: the question's and passages' words) keeps the
// answer to the index's vocabulary and its own (core/words.BoundedDecode)
async function generate(promptIds, extra = null) {
  const s = state.config.sampling;
  const vocabulary = extra ? indexVocabulary() : null;
  const maxSeqLen = state.config.max_seq_len;
  const decoder = new Decoder(state.session, state.config);
  decoder.reset(promptIds);
  let logits = await decoder.logits();
  const seen = new Uint8Array(logits.length);
  const newIds = [];
  let text = "";
  const insideWords = new Set(s.word_continuations);  // the no-repeat ban never cuts a word (models/generation.py)
  for (;;) {
    const repeats = repeatedNgramEnds(newIds, s.no_repeat_ngram).filter((t) => !insideWords.has(t));
    if (s.no_repeat_ngram && insideWords.size) {  // no token pair twice inside one word (engine.word_tail)
      let start = newIds.length;
      while (start > 0 && insideWords.has(newIds[start - 1])) start--;
      repeats.push(...repeatedNgramEnds(newIds.slice(Math.max(start - 1, 0)), 2).filter((t) => insideWords.has(t)));
    }
    const banned = [...s.suppress_tokens, ...repeats];
    let token, candidate;
    let refused = 0;
    // with a closed vocabulary (open-book reading) an answer ends at the end of a sentence and a word: not
    // inside a word no text has whole, nor inside its first sentence
    const openEnd = vocabulary && (!vocabulary.allows(text, extra, true)
      || (pyStrip(text) !== "" && !sentenceEnds(text).length));
    for (;;) {
      const bannedSet = new Set(banned);
      if (bannedSet.size >= logits.length) return newIds;
      token = greedyToken(logits, seen, bannedSet, s.repetition_penalty);
      if (token === state.config.eos_id) {
        if (openEnd) {
          banned.push(token);  // not in the middle of a word of no text, nor of its first sentence
          continue;
        }
        return newIds;
      }
      candidate = state.tok.decode([...newIds, token]);
      if (s.suppress_tokens.length && labels(candidate) > labels(text)) {  // never the prompt's "Answer:"
        banned.push(token);
        continue;
      }
      if (vocabulary && !vocabulary.allows(candidate, extra)) {  // a word of no text it was given
        if (++refused > VOCABULARY_TRIES && !openEnd) return newIds;  // none in sight: over
        banned.push(token);
        continue;
      }
      if (!(s.stop_repeat && repeatsWordNgram(candidate, s.stop_repeat))) break;
      if (sentenceEnds(text).length) return newIds;
      banned.push(token);
    }
    newIds.push(token);
    const previous = text;
    text = candidate;
    if (s.max_sentences) {
      const ends = sentenceEnds(text);
      if (ends.length >= s.max_sentences) {
        if (!(ends[s.max_sentences - 1] > previous.length)) newIds.pop();
        return newIds;
      }
    }
    if (newIds.length === s.max_new_tokens || promptIds.length + newIds.length === maxSeqLen) return newIds;
    seen[token] = 1;
    decoder.ids.push(token);
    logits = await decoder.logits();
  }
}

function indexVocabulary() {  // retrieval.Index.vocabulary: the words of every passage, built on first use
  if (!state.vocabulary) state.vocabulary = Vocabulary.ofTexts(state.index.passages.map((p) => p.text));
  return state.vocabulary;
}

// models.pattern.answer_ids under reader.PatternReading or reader.RankerReading (state.reading picks the
// sentences of the passages the prompt holds): whole sentences while they fit the token budget
async function readAnswer(question, passages) {
  const config = state.config, s = config.sampling;
  const window = (state.reading instanceof SentenceRanker ? config.ranker : config.reading).prompt_seq_len;
  const lined = passagesContext(passages, config.context_chars, "\n");
  const fitted = fittedPrompt(question, lined, window - Math.min(s.max_new_tokens, Math.floor(window / 2)));
  const promptIds = fitted.ids;
  let sentences = await state.reading.answerSentences(pyStrip(question),
    fitted.context ? contextSentences(passages, fitted.context) : []);
  if (s.max_sentences) sentences = sentences.slice(0, s.max_sentences);
  const budget = Math.min(s.max_new_tokens, window - promptIds.length);
  let ids = state.tok.encode(" " + sentences.join(" "));
  while (ids.length > budget && sentences.length > 1) {
    sentences = sentences.slice(0, -1);
    ids = state.tok.encode(" " + sentences.join(" "));
  }
  return [promptIds, ids.slice(0, Math.max(0, budget))];
}

export async function answer(question, mode) {
  const config = state.config;
  let passages = [], context = null;
  if (mode === "open" && state.index) {
    passages = await search(question);
    context = passagesContext(passages, config.context_chars) || null;
  }
  const start = performance.now();
  let promptIds, newIds, extra = null;
  if (mode === "open" && state.index && !passages.length) {  // answer.answer(open_book=True): nothing found
    return { answer: config.not_answered, passages, newIds: [], promptTokens: 0, seconds: 0, tokensPerSecond: 0 };
  }
  if (state.reading && passages.length) {  // reader.PatternReading or RankerReading reads the passages
    [promptIds, newIds] = await readAnswer(question, passages);
  } else {
    const room = Math.min(config.sampling.max_new_tokens, Math.floor(config.max_seq_len / 2));
    promptIds = fitPrompt(question, context, config.max_seq_len - room);
    extra = context ? Vocabulary.ofTexts([question, context]) : null;
    newIds = await generate(promptIds, extra);
  }
  const seconds = (performance.now() - start) / 1000;
  let text = wholeSentences(pyStrip(state.tok.decode(newIds)));
  if (extra) text = indexVocabulary().finish(text, extra);  // answer.answer_text
  return { answer: text, passages, newIds,
    promptTokens: promptIds.length, seconds, tokensPerSecond: seconds > 0 ? newIds.length / seconds : 0 };
}

// --- the page -----------------------------------------------------------------------------------------------
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function webUrl(url) {  // only web addresses become links: a javascript: URL stays inert text
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function showSources(passages) {
  const container = $("sources");
  container.replaceChildren();
  if (!passages.length) return;
  container.append(element("span", "label", "Sources"));
  const list = element("ul");
  for (const p of passages) {
    const href = webUrl(p.url);
    const title = element(href ? "a" : "span", "source-title", p.title);
    if (href) {
      title.href = href;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    }
    const item = element("li");
    item.append(title, element("span", "source-url", ` · ${p.url}`), element("span", "license", ` · ${p.license}`));
    list.append(item);
  }
  container.append(list);
}

async function onAsk(event) {
  event.preventDefault();
  const question = $("question").value;
  if (!question.trim() || state.busy) return;
  state.busy = true;
  const result = $("result");
  result.dataset.state = "thinking";
  $("asked").textContent = question;
  $("answer").textContent = "";
  $("answer").classList.remove("error");
  $("stats").textContent = "";
  $("sources").replaceChildren();
  try {
    const r = await answer(question, $("mode").value);
    $("answer").textContent = r.answer || "(no answer)";
    $("stats").textContent = `${r.newIds.length} tokens · ${r.seconds.toFixed(2)} s · ` +
      `${r.tokensPerSecond.toFixed(1)} tokens/s · ${$("mode").value}-book`;
    showSources(r.passages);
    state.last = { answer: r.answer, sources: r.passages.map((p) => ({ title: p.title, url: p.url,
      license: p.license })), tokens: r.newIds.length, seconds: r.seconds };
    result.dataset.state = "done";
    result.dataset.count = String(Number(result.dataset.count || 0) + 1);
  } catch (error) {
    $("answer").textContent = `Something went wrong: ${error.message || error}`;
    $("answer").classList.add("error");
    result.dataset.state = "error";
    result.dataset.count = String(Number(result.dataset.count || 0) + 1);
  } finally {
    state.busy = false;
  }
}

// retrieval.retrieve: a hybrid index embeds the question first (the encoder graph `ask` runs)
async function search(question) {
  const vector = state.encoder ? await state.encoder.vector(question) : null;
  return state.index.search(question, state.config.k, vector);
}

function fetchEncoder() {  // config.json's "dense": encoder/question.onnx and its tokenizer.json
  return Promise.all([fetchOk("encoder/tokenizer.json").then((r) => r.json()),
    fetchOk("encoder/question.onnx").then((r) => r.arrayBuffer())]);
}

async function fetchOk(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

async function load() {
  ort.env.wasm.numThreads = 1;  // no SharedArrayBuffer: any static server will do
  ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href;
  const config = await (await fetchOk("config.json")).json();
  state.config = config;
  $("model-name").textContent = config.run;
  const dense = config.open_book && config.dense ? config.dense : null;
  const ranker = config.open_book && dense && config.ranker ? config.ranker : null;
  const [tokJson, model, index, encoder, rankerWeights] = await Promise.all([
    fetchOk("tokenizer.json").then((r) => r.json()),
    fetchOk("model.onnx").then((r) => r.arrayBuffer()),
    config.open_book ? Index.load("index/", dense) : null,
    dense ? fetchEncoder() : null,
    ranker ? fetchOk(ranker.weights).then((r) => r.arrayBuffer()) : null]);
  state.tok = new Tokenizer(tokJson);
  state.index = index;
  state.reading = null;
  if (config.reading) {
    try {  // the rules need RegExp modifiers, (?-i:...): Chromium 125 and later have them
      state.reading = new PatternReading(config.reading.rules, config.reading.max_sentences);
    } catch (error) {
      console.warn(`the pattern reading needs a newer browser (${error.message}): the network reads instead`);
    }
  }
  state.session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  state.encoder = encoder && new QuestionEncoder(
    await ort.InferenceSession.create(encoder[1], { executionProviders: ["wasm"] }), new WordPiece(encoder[0]),
    dense.max_length);
  if (config.ranker && state.encoder) {  // the trained reader: its sentences embedded by the same encoder
    state.reading = new SentenceRanker(config.ranker, new Float32Array(rankerWeights),
      (text) => state.encoder.vector(text));
  }
  const open = $("mode").querySelector('option[value="open"]');
  if (index) {
    $("mode").value = "open";
  } else {
    open.disabled = true;
    open.textContent = "open-book (no index in this export)";
  }
  $("status").textContent = `ready · ${(model.byteLength / 1e6).toFixed(1)} MB model · context ` +
    `${config.max_seq_len} tokens${index ? ` · ${index.passages.length} passages` : ""}` +
    (state.encoder ? " · hybrid retrieval" : "") + (state.reading ? ` · open book read by ${
      state.reading instanceof SentenceRanker ? "the trained reader" : "the pattern rung"}` : "");
  $("question").disabled = false;
  $("question").focus();
  document.body.dataset.ready = "true";
}

$("ask").addEventListener("submit", onAsk);
// for tests and the curious: the page's own tokenizer and answers (`minillm ask` in the browser)
window.minillm = {
  state,
  ready: load().catch((error) => {
    $("status").textContent = `could not load the model: ${error.message || error}`;
    $("status").classList.add("error");
    document.body.dataset.ready = "error";
    throw error;
  }),
  encode: (text) => state.tok.encode(text),
  decode: (ids) => state.tok.decode(ids),
  search: async (question) => (await search(question)).map((p) => ({ title: p.title, score: p.score })),
  answer,
};
