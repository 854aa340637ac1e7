"""ranker.js (the browser's port of models/ranker.py, the trained reader) computes what Python computes: node
runs the module's features (words.js-free: retrieval.js's words, the stemmer), the scorer on feature rows and
the answer's composition, and each is compared with models/ranker.py's on the same inputs."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

if shutil.which("node") is None:
    pytest.skip("node is missing: ranker.js is run with it", allow_module_level=True)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from minillm.models.ranker import MAX_POSITION, RankerConfig, Scorer, candidates, compose, features  # noqa: E402
from minillm.retrieval.dense import DIMENSIONS  # noqa: E402

STATIC = Path(__file__).resolve().parents[1] / "src/minillm/export/web_static"

DRIVER = """
import { readFileSync } from "node:fs";
import { Scorer, candidates, compose, features } from "./ranker.js";
const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const scorer = new Scorer(input.layout, new Float32Array(input.weights));
const rows = input.rows.map((r) => Float32Array.from(r));
const cases = input.cases.map(({ question, passages, vectors }) => {
  const places = candidates(passages);
  const rows = features(question, passages, places, vectors.map((v) => Float32Array.from(v)), input.max_position);
  return { places, features: rows.map((r) => Array.from(r)), scores: scorer.scores(rows) };
});
const composed = input.compose.map(({ passages, scores }) =>
  compose(passages, candidates(passages), scores, input.picks));
process.stdout.write(JSON.stringify({ scores: scorer.scores(rows), cases, composed }));
"""

PASSAGES = [
    [["The lion is a large cat of Africa and India.", "It lives in groups called prides.",
      "Male lions' manes are darker with age.", "Lions eat zebras, antelopes and buffaloes."],
     ["The Nile is a river in northeast Africa.", "It flows north into the Mediterranean Sea."],
     ["Café culture: naïve résumés of Ångström's work.", "Pandas eat bamboo.", "It is 3.5 m long.", "a", "b", "c",
      "d", "e", "f", "g", "h", "i", "j (the twelfth)."]],
    [["Water is a compound of hydrogen and oxygen.", "Its formula is H2O."]],
]
QUESTIONS = ["Where do lions live in Africa?", "What is the formula of water's compound?"]


def unit_vectors(texts, rng):
    vectors = rng.standard_normal((len(texts), DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run_node(tmp_path, data: dict) -> dict:
    for name in ("ranker.js", "retrieval.js", "stemmer.js"):
        shutil.copy(STATIC / name, tmp_path / name)
    (tmp_path / "package.json").write_text('{"type": "module"}', encoding="utf-8")
    (tmp_path / "driver.js").write_text(DRIVER, encoding="utf-8")
    (tmp_path / "input.json").write_text(json.dumps(data), encoding="utf-8")
    done = subprocess.run(["node", str(tmp_path / "driver.js"), str(tmp_path / "input.json")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ranker_js_scores_features_and_composes_as_python(tmp_path):
    torch.manual_seed(3)
    config = RankerConfig(hidden=16, heads=3, picks=2)
    scorer = Scorer(config).eval()
    with torch.no_grad():  # biases away from zero, so that they are tested too
        for p in scorer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = scorer.state_dict()
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((12, 8 + DIMENSIONS)).astype(np.float32)
    cases, expected = [], []
    for question, passages in zip(QUESTIONS, PASSAGES, strict=True):
        places = candidates(passages)
        texts = [question] + [passages[i][j] for i, j in places]
        vectors = dict(zip(texts, unit_vectors(texts, rng), strict=True))
        rows_of = features(question, passages, places, lambda ts, v=vectors: np.stack([v[t] for t in ts]))
        expected.append((places, rows_of))
        cases.append({"question": question, "passages": passages, "vectors": [vectors[t].tolist() for t in texts]})
    ties = [1.0, 0.5, 2.0, 2.0, 0.5, 2.0, -1.0, 0.0]  # equal scores keep their places' order
    compose_cases = [{"passages": [["L0", "a", "b"], ["L1", "c", "d", "e"], ["L2"]], "scores": ties},
                     {"passages": [["L0", "a", "b"], ["L1", "c", "d", "e"], ["L2"]], "scores": ties[::-1]}]
    got = run_node(tmp_path, {
        "layout": [[name, list(t.shape)] for name, t in state.items()],
        "weights": np.concatenate([t.numpy().ravel() for t in state.values()]).tolist(),
        "rows": rows.tolist(), "cases": cases, "compose": compose_cases, "max_position": MAX_POSITION,
        "picks": config.picks})

    with torch.no_grad():
        assert got["scores"] == pytest.approx(scorer(torch.from_numpy(rows)).tolist(), abs=1e-4)
        for case, (places, rows_of) in zip(got["cases"], expected, strict=True):
            assert [tuple(p) for p in case["places"]] == places
            assert np.allclose(np.array(case["features"]), rows_of.numpy(), atol=1e-6)
            assert case["features"][0][1] >= 1  # the lead shares words with the question
            assert case["scores"] == pytest.approx(scorer(rows_of).tolist(), abs=1e-4)
    shared = [row[1] for case in got["cases"] for row in case["features"]]
    assert 0 in shared and 1 in shared  # the lead's words are not counted again
    for case, composed in zip(compose_cases, got["composed"], strict=True):
        passages = case["passages"]
        assert composed == compose(passages, candidates(passages), torch.tensor(case["scores"]), config.picks)
