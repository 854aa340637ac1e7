// minillm.models.ranker's open-book reading (reader.RankerReading), for runs whose [answer] reader is "ranker"
// and whose page carries the sentence encoder: every sentence of the passages gets a feature row (its cosine
// with the question under all-MiniLM-L6-v2 and their element-wise product, the question's content words it
// holds, its place), the run's trained scorer (reader.f32: `heads` networks Linear, ReLU, Linear, their
// scores averaged) scores it, and the answer is the lead of the passage holding the best-scored sentence,
// then that passage's `picks` best-scored other sentences, best first (or, when no sentence's cosine reaches
// `min_cosine`, that the articles do not answer it). Sentences are embedded one at a time
// by the page's question encoder, as dense.text_vectors embeds them, each once per page.
import { words } from "./retrieval.js";

const MAX_CACHED = 50_000;  // dense._text_vector's lru_cache

// (passage, sentence) of every sentence of the passages, best passage first
export function candidates(passages) {
  return passages.flatMap((sentences, i) => sentences.map((_, j) => [i, j]));
}

// ranker.features: one Float32Array row per place; vectors[0] is the question's, vectors[k + 1] places[k]'s
export function features(question, passages, places, vectors, maxPosition) {
  const q = vectors[0], d = q.length;
  const asked = new Set(words(question));
  const askedOf = passages.map((p) => {  // the words the lead names the subject by are not counted
    const lead = new Set(words(p[0]));
    return new Set([...asked].filter((w) => !lead.has(w)));
  });
  return places.map(([i, j], k) => {
    const v = vectors[k + 1];
    const counted = j ? askedOf[i] : asked;
    const shared = new Set(words(passages[i][j]).filter((w) => counted.has(w))).size;
    let dot = 0;
    for (let t = 0; t < d; t++) dot += v[t] * q[t];
    const place = [dot, shared, shared / Math.max(1, counted.size), i === 0, i === 1, i >= 2,
      Math.min(j, maxPosition) / maxPosition, j === 0].map(Number);
    const row = new Float32Array(place.length + d);
    row.set(place);
    for (let t = 0; t < d; t++) row[place.length + t] = q[t] * v[t];
    return row;
  });
}

// ranker.Scorer: the mean score of `heads` networks Linear(inputs, hidden), ReLU, Linear(hidden, 1)
export class Scorer {
  // layout: [[name, shape], ...] in the order of the weights (Float32Array), state_dict's names
  constructor(layout, weights) {
    const tensors = new Map();
    let at = 0;
    for (const [name, shape] of layout) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.set(name, { data: weights.subarray(at, at + size), shape });
      at += size;
    }
    if (at !== weights.length) throw new Error(`reader weights: ${weights.length} numbers, the layout names ${at}`);
    this.heads = [];
    for (let h = 0; tensors.has(`heads.${h}.0.weight`); h++) {
      const get = (name) => tensors.get(`heads.${h}.${name}`);
      this.heads.push({ w1: get("0.weight"), b1: get("0.bias").data, w2: get("2.weight").data,
        b2: get("2.bias").data[0] });
    }
    if (!this.heads.length) throw new Error("reader weights: no scorer heads");
  }

  score(row) {
    let total = 0;
    for (const { w1, b1, w2, b2 } of this.heads) {
      const [hidden, inputs] = w1.shape;
      if (row.length !== inputs) throw new Error(`a feature row of ${row.length} numbers, the scorer takes ${inputs}`);
      let out = b2;
      for (let u = 0; u < hidden; u++) {
        let h = b1[u];
        const offset = u * inputs;
        for (let t = 0; t < inputs; t++) h += w1.data[offset + t] * row[t];
        if (h > 0) out += w2[u] * h;
      }
      total += out;
    }
    return Math.fround(total / this.heads.length);
  }

  scores(rows) {
    return rows.map((row) => this.score(row));
  }
}

// ranker.compose: a stable sort by score, best first (ties keep the earlier place first)
export function compose(passages, places, scores, picks) {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  const passage = places[order[0]][0];
  const picked = order.filter((k) => places[k][0] === passage && places[k][1] !== 0).slice(0, picks)
    .map((k) => places[k][1]);
  return [0, ...picked].map((j) => passages[passage][j]);
}

export class SentenceRanker {
  // config: config.json's "ranker"; weights: reader.f32; embed: async text -> unit vector (the page's encoder)
  constructor(config, weights, embed) {
    this.config = config;
    this.scorer = new Scorer(config.layout, weights);
    this.embed = embed;
    this.cache = new Map();
  }

  async vector(text) {  // dense.text_vectors: one text at a time, each once
    let vector = this.cache.get(text);
    if (vector === undefined) {
      vector = Float32Array.from(await this.embed(text));
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value);
      this.cache.set(text, vector);
    }
    return vector;
  }

  // SentenceRanker.answer_sentences: passages is one array of sentences per passage, best first
  async answerSentences(question, passages) {
    passages = passages.filter((p) => p.length);
    if (!passages.length) return ["The passage says nothing."];
    const places = candidates(passages);
    const vectors = [await this.vector(question)];
    for (const [i, j] of places) vectors.push(await this.vector(passages[i][j]));
    const rows = features(question, passages, places, vectors, this.config.max_position);
    // no sentence near the question (row[0]: its cosine): the passages do not answer it
    if (Math.max(...rows.map((row) => row[0])) < this.config.min_cosine) return [this.config.not_answered];
    return compose(passages, places, this.scorer.scores(rows), this.config.picks);
  }
}
