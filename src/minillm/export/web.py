"""`minillm export web RUN --out site/`: a static folder that answers questions entirely in the browser.

    >>> export_web("runs/quickstart", "site")
    'wrote site (31.2 MB, 14 files; onnxruntime-web 1.31.1) — serve it: python -m http.server -d site'

The folder holds everything the page needs; nothing is computed server-side and nothing is fetched from
another host (after loading, the page keeps working with the network cut off):

    index.html, app.js, tokenizer.js, stemmer.js, retrieval.js, reading.js, ranker.js, words.js,
    wordpiece.js, style.css   (web_static/)
    model.onnx       export_onnx's float32 decoder with its KV cache (as onnx_greedy runs it)
    tokenizer.json   the run's own: app's tokenizer.js reads it (byte-level BPE, GPT-2 pre-tokenizer)
    config.json      prompt/sampling settings: engine.ANSWER_SAMPLING, the suppressed tokens
                     (engine.answer_sampling), max_seq_len, special ids; for a run whose [answer] reader is
                     "pattern", ``reading``: the pattern rung's rules (their Python regex text), which
                     reading.js answers open book with, as ``minillm ask`` does (reader.PatternReading);
                     for a run whose reader is "ranker", ``ranker``: the trained reader's settings (hidden,
                     heads, picks, feature names, max_position and the weights' layout), which ranker.js
                     answers open book with (reader.RankerReading)
    reader.f32       (reader "ranker", the page embedding questions) the trained reader's scorer
                     (reader.safetensors) as raw little-endian float32, its tensors in ``ranker.layout``'s order
    index/           (runs with a retrieval index) passages.json (with each passage's sentences, split by
                     data/sentences.py: the page splits none), the bm25s score matrix as raw little-endian
                     arrays (data.f32, indices.i32, indptr.i32) with its vocabulary (vocab.json, the terms
                     in id order) and the title list: retrieval.js re-does retrieval.Index.scores exactly
                     (stemming with a JS Snowball English stemmer, stemmer.js); a hybrid index adds the
                     passages' vectors (embeddings.f32, float32 rows)
    encoder/         (a hybrid index) question.onnx and tokenizer.json: the question encoder, below
    vendor/          onnxruntime-web's WebAssembly build (ort.wasm.min.js, ort-wasm-simd-threaded.wasm/.mjs),
                     from ``npm pack onnxruntime-web@ORT_WEB_VERSION`` into the cache (MINILLM_CACHE, else
                     ~/.cache/minillm), and vendor.json naming the packages and versions.

Design choices:
- Greedy only, with the rules of ``minillm ask`` (ANSWER_SAMPLING: repetition penalty on the answer's own
  tokens, no_repeat_ngram, stop_repeat, max_sentences, whole_sentences; prompts shortened by fit_prompt's
  rule). Single-threaded WebAssembly: no cross-origin isolation headers needed, any static server works.
- A hybrid index (BM25 + all-MiniLM-L6-v2, the quickstart's where the ``[dense]`` extra is installed) is
  searched in the page as ``Index.scores`` searches it: the question embedded by the same exported graph
  ``minillm ask`` runs in onnxruntime (retrieval.dense.question_files, in ``encoder/``: question.onnx, 87 MB
  float32, and the encoder's tokenizer.json, read by wordpiece.js), the passage vectors as saved
  (index/embeddings.f32), the cosine added with the same weight. Without it the page searched words only
  and answered unlike ``ask`` wherever the dense part decided (the third natural set: 0.652 against 0.818).
  ``--no-dense`` leaves it out for a page 87 MB lighter (the summary line says so). Loading a hybrid index
  needs the ``[dense]`` extra, here as everywhere.
- A run whose ``[answer] reader`` is "ranker" (the quickstart's) is read in the page as ``ask`` reads it
  (reader.RankerReading): ranker.js ports the features, the scorer and the answer's composition, and embeds
  the passages' sentences one at a time with the page's question encoder, as ``dense.text_vectors`` does.
  The page has that encoder only for a hybrid index exported without ``--no-dense``; otherwise, or when the
  run has no trained reader (reader.safetensors), the page reads with the pattern rules, as ``ask`` does
  when it cannot load the reader, and the summary line says so (and whether ``ask``'s answers may differ).
- ``--int8`` is left out: the float32 model is small, and int8 greedy answers were not checked to match.
- The page escapes everything (textContent only) and its Content-Security-Policy allows only its own
  scripts (plus WebAssembly compilation).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from minillm.answering.answer import ANSWER_SAMPLING, answer_sampling
from minillm.answering.reader import PatternReading, RankerReading, with_reader
from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, cache_dir, check_new_output
from minillm.core.numbers import human_bytes
from minillm.data.sentences import split_sentences
from minillm.export import neural_run
from minillm.export.onnx import cache_names, export_onnx, present_name
from minillm.models.ranker import MAX_POSITION, NOT_ANSWERED, PLACE_FEATURES, SentenceRanker
from minillm.retrieval.dense import DENSE_MODEL, DENSE_WEIGHT, DIMENSIONS, question_files
from minillm.retrieval.index import load_index
from minillm.training.runs import TOKENIZER_FILE

ORT_WEB = "onnxruntime-web"
ORT_WEB_VERSION = "1.31.1"
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
STATIC = Path(__file__).parent / "web_static"
STATIC_FILES = ("index.html", "app.js", "tokenizer.js", "stemmer.js", "retrieval.js", "reading.js", "ranker.js",
                "words.js", "wordpiece.js", "style.css", "favicon.svg")
READER_WEIGHTS = "reader.f32"
WEB_FORMAT = 1


def vendor_ort(version: str = ORT_WEB_VERSION) -> Path:
    """The unpacked ``package/dist`` of onnxruntime-web ``version``, packed by npm into the cache once."""
    folder = cache_dir() / "npm" / f"{ORT_WEB}-{version}"
    dist = folder / "package" / "dist"
    if all((dist / name).is_file() for name in ORT_FILES):
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise InputError(f"export web needs npm to fetch {ORT_WEB}@{version} (install Node.js and npm)")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([npm, "pack", f"{ORT_WEB}@{version}", "--silent", "--pack-destination", str(folder)],
                              capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InputError(f"export web: npm pack {ORT_WEB}@{version} failed ({e})") from None
    tgz = folder / f"{ORT_WEB}-{version}.tgz"
    if done.returncode != 0 or not tgz.is_file():
        reason = (done.stderr.strip().splitlines() or ["no package written"])[-1]
        raise InputError(f"export web: npm pack {ORT_WEB}@{version} failed ({reason})")
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers() if m.name in {f"package/dist/{n}" for n in ORT_FILES}
                   or m.name == "package/package.json"]
        tar.extractall(folder, members=members, filter="data")
    if not all((dist / name).is_file() for name in ORT_FILES):
        raise InputError(f"export web: {tgz} lacks {', '.join(ORT_FILES)}")
    return dist


def _write_index(index, folder: Path) -> None:
    """The run's retrieval index as the files retrieval.js reads."""
    folder.mkdir()

    passages = [{"title": p.title, "url": p.url, "license": p.license, "text": p.text, "article": int(a),
                 "sentences": list(split_sentences(p.text))}
                for p, a in zip(index.passages, index.passage_article, strict=True)]
    (folder / "passages.json").write_text(json.dumps(passages, ensure_ascii=False), encoding="utf-8")
    (folder / "titles.json").write_text(json.dumps([index.article_titles[a] for a in index.article_ids],
                                                   ensure_ascii=False), encoding="utf-8")
    scores = index.bm25.scores
    np.asarray(scores["data"], dtype="<f4").tofile(folder / "data.f32")
    np.asarray(scores["indices"], dtype="<i4").tofile(folder / "indices.i32")
    np.asarray(scores["indptr"], dtype="<i4").tofile(folder / "indptr.i32")
    vocab = [""] * len(index.bm25.vocab_dict)
    for term, i in index.bm25.vocab_dict.items():
        vocab[i] = term
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


def _write_encoder(index, tmp: Path) -> dict:
    """The question encoder and the passages' vectors of a hybrid index (the design choices); its settings
    for config.json."""
    graph, tokenizer, max_length = question_files("export web")
    (tmp / "encoder").mkdir()
    shutil.copyfile(graph, tmp / "encoder" / "question.onnx")
    shutil.copyfile(tokenizer, tmp / "encoder" / "tokenizer.json")
    np.asarray(index.embeddings, dtype="<f4").tofile(tmp / "index" / "embeddings.f32")
    return {"model": DENSE_MODEL, "weight": DENSE_WEIGHT, "dimensions": DIMENSIONS, "max_length": max_length}


def _pattern_reading(reading: PatternReading) -> dict:
    """config.json's ``reading``: the rules ``reading`` (as ``ask`` builds it) picks with (reading.js)."""
    matcher = reading.matcher
    return {"rules": [r.to_strings() for r in matcher.rules], "max_sentences": matcher.config.max_sentences,
            "prompt_seq_len": reading.prompt_seq_len}


def _write_ranker(ranker: SentenceRanker, tmp: Path, prompt_seq_len: int) -> dict:
    """The trained reader's scorer as reader.f32; config.json's ``ranker`` (ranker.js)."""
    state = ranker.scorer.state_dict()
    np.concatenate([t.detach().cpu().numpy().astype("<f4").ravel() for t in state.values()]).tofile(
        tmp / READER_WEIGHTS)
    return {"hidden": ranker.config.hidden, "heads": ranker.config.heads, "picks": ranker.config.picks,
            "min_cosine": ranker.config.min_cosine, "not_answered": NOT_ANSWERED,
            "features": list(PLACE_FEATURES), "dimensions": DIMENSIONS, "max_position": MAX_POSITION,
            "weights": READER_WEIGHTS, "layout": [[name, list(t.shape)] for name, t in state.items()],
            "prompt_seq_len": prompt_seq_len}


def _open_book_reader(reading: Any, tmp: Path, encoder: bool) -> tuple[dict, str]:
    """What reads open book in the page where ``reading`` (reader.with_reader's, as ``ask`` reads) reads:
    config.json's entries and the summary's words; ``encoder``: whether the page embeds questions."""
    if isinstance(reading, RankerReading):
        if encoder:
            return ({"ranker": _write_ranker(reading.ranker, tmp, reading.prompt_seq_len)},
                    ", read by the trained reader (reader.safetensors)")
        why = ("the trained reader embeds sentences with the question encoder, which this page lacks: a BM25 "
               "index, or --no-dense; the page's answers may differ from `ask`'s")
        rules = PatternReading(reading.model, reading.tokenizer)
        return {"reading": _pattern_reading(rules)}, f", read by the pattern rules ({why})"
    if isinstance(reading, PatternReading):  # `ask` reads with the rules too: as the run says, or for a reason
        note = f" as `ask` ({reading.reader_note})" if reading.reader_note else ""
        return {"reading": _pattern_reading(reading)}, f", read by the pattern rules{note}"
    return {}, ""


def _cache_inputs(model) -> list[dict]:
    """The past inputs of export_onnx's graph with their empty shapes (past length 0), as onnx_greedy's."""
    config, inputs = model.config, []
    for name in cache_names(model):
        if name.startswith("past_key_values."):
            inputs.append({"name": name, "type": "float32", "shape": [1, config.num_heads, 0, config.head_dim]})
        elif name == "past_copy.key":
            inputs.append({"name": name, "type": "float32", "shape": [1, 0, config.head_dim]})
        else:
            inputs.append({"name": name, "type": "int64", "shape": [1, 0]})
    return inputs


def web_config(model, tok) -> dict:
    sampling = answer_sampling(tok, ANSWER_SAMPLING)
    cache = _cache_inputs(model)
    return {"format": WEB_FORMAT, "max_seq_len": model.max_seq_len, "bos_id": tok.bos_id, "eos_id": tok.eos_id,
            "special_ids": [tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id],
            "sampling": {"max_new_tokens": sampling.max_new_tokens, "repetition_penalty": sampling.repetition_penalty,
                         "max_sentences": sampling.max_sentences, "no_repeat_ngram": sampling.no_repeat_ngram,
                         "stop_repeat": sampling.stop_repeat, "suppress_tokens": list(sampling.suppress_tokens),
                         "word_continuations": list(sampling.word_continuations)},
            "k": 3, "context_chars": 1500, "cache": cache,
            "presents": {c["name"]: present_name(c["name"]) for c in cache}}


def export_web(run_dir: str | Path, out: str | Path, dense: bool = True) -> str:
    """Write the static site for the run to ``out`` (new or empty); returns a one-line summary. With
    ``dense`` a hybrid index is searched in the page as ``ask`` searches it (the design choices)."""
    out = check_new_output(out)
    run_dir = Path(run_dir)
    model, tok, cfg = neural_run(run_dir, "web")
    if tok.kind != "bpe":
        raise InputError(f"export web: {run_dir} has a {tok.kind} tokenizer; the page reads byte-level BPE only")
    index = load_index(run_dir)
    dist = vendor_ort()
    if out.is_dir():
        out.rmdir()  # empty (check_new_output): atomic_directory puts the new folder in its place
    with atomic_directory(out) as tmp:
        for name in STATIC_FILES:
            shutil.copyfile(STATIC / name, tmp / name)
        export_onnx(run_dir, tmp / "model.onnx")
        shutil.copyfile(run_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        config = web_config(model, tok)
        config["open_book"] = index is not None
        config["not_answered"] = NOT_ANSWERED  # open book, no passage found (answer.answer, open_book=True)
        config["run"] = run_dir.resolve().name
        hybrid = index is not None and index.embeddings is not None
        read = ""
        if index is not None:
            _write_index(index, tmp / "index")
            # reading.js or ranker.js answers open book, as `ask` (reader.PatternReading, RankerReading)
            reading = with_reader(model, tok, cfg.answer.reader, run_dir)
            entries, read = _open_book_reader(reading, tmp, hybrid and dense)
            config.update(entries)
        if hybrid and dense:
            config["dense"] = _write_encoder(index, tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        (tmp / "vendor").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(dist / name, tmp / "vendor" / name)
        vendor = {"packages": [{"name": ORT_WEB, "version": ORT_WEB_VERSION, "files": list(ORT_FILES),
                                "license": "MIT"}]}
        if "dense" in config:
            vendor["packages"].append({"name": DENSE_MODEL, "files": ["encoder/question.onnx",
                                                                      "encoder/tokenizer.json"],
                                       "license": "Apache-2.0"})
        (tmp / "vendor.json").write_text(json.dumps(vendor, indent=1) + "\n", encoding="utf-8")
    files = [p for p in out.rglob("*") if p.is_file()]
    size = human_bytes(sum(p.stat().st_size for p in files))
    book = "open book" if index is not None else "closed book only (no index)"
    if hybrid and not dense:
        book += ", lexical retrieval only (--no-dense: the page's answers may differ from `ask`'s)"
    elif hybrid:
        book += ", hybrid retrieval (the question embedded in the page)"
    book += read
    return (f"wrote {out} ({size}, {len(files)} files, {book}; vendored {ORT_WEB} {ORT_WEB_VERSION}) — "
            f"serve it: python -m http.server -d {os.fspath(out)}")
