"""Does `minillm export web`'s page answer the natural questions as `minillm ask` does? Retrieval and answers.

    minillm export web RUN --out SITE [--no-dense]
    python experiments/web/parity_check.py RUN SITE

Serves SITE on 127.0.0.1, opens it in Debian's headless Chromium (/usr/bin/chromium, driven by Playwright),
asks every question of the three natural sets and the unanswerable one open book through the page's
``window.minillm.answer``, and compares each with the Python library's answer (``load_answerer(RUN)``, the
run's own reader, and ``answer_open``): the same top-3 passages, the same text, and each side's keyword hit,
per set and in all (the natural sets), and how many answers say the articles do not answer.
Prints JSON; ``reader`` is who reads open book in Python (reader_info) and ``status`` the page's own line
(it names the page's reader: the pattern rung or the trained reader).
"""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from minillm.answering.answer import ANSWER_SAMPLING
from minillm.answering.open_book import answer_open
from minillm.answering.reader import load_answerer, reader_info
from minillm.evaluation.metrics import keyword_hit
from minillm.evaluation.qa import SHIPPED_SETS
from minillm.evaluation.retrieval import NATURAL_SETS, natural_questions_path
from minillm.models.ranker import NOT_ANSWERED
from minillm.retrieval.index import load_index

ASK_ALL = """qs => (async () => {
  const replies = [];
  for (const q of qs) {
    const a = await window.minillm.answer(q, "open");
    replies.push({answer: a.answer, titles: a.passages.map(p => p.title)});
  }
  return replies;
})()"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(run: Path, site: Path) -> dict:
    model, tok, _ = load_answerer(run)
    index = load_index(run)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    report: dict = {"reader": reader_info(model)}
    total = {"questions": 0, "same_top3": 0, "same_answer": 0, "hits_page": 0, "hits_ask": 0}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector("body[data-ready]", state="attached", timeout=120_000)
        report["load_s"], report["status"] = round(time.perf_counter() - start, 1), page.text_content("#status")
        for name, file in SHIPPED_SETS.items():
            lines = natural_questions_path(file).read_text(encoding="utf-8").splitlines()
            questions = [json.loads(line) for line in lines if line.strip()]
            start = time.perf_counter()
            shown = page.evaluate(ASK_ALL, [q["question"] for q in questions])
            seconds = time.perf_counter() - start
            same_top = same_answer = hits_page = hits_ask = withheld = 0
            for q, s in zip(questions, shown, strict=True):
                reply, passages = answer_open(model, tok, index, q["question"], ANSWER_SAMPLING)
                same_top += s["titles"] == [p.title for p in passages]
                same_answer += s["answer"] == reply.text
                hits_page += bool(q.get("keywords")) and keyword_hit(s["answer"], q["keywords"])
                hits_ask += bool(q.get("keywords")) and keyword_hit(reply.text, q["keywords"])
                withheld += reply.text == NOT_ANSWERED
            report[name] = {"questions": len(questions), "same_top3": same_top, "same_answer": same_answer,
                            "withheld_ask": withheld,
                            "keyword_page": round(hits_page / len(questions), 3),
                            "keyword_ask": round(hits_ask / len(questions), 3),
                            "page_s_per_question": round(seconds / len(questions), 3)}
            for key, value in zip(total, (len(questions), same_top, same_answer, hits_page, hits_ask), strict=True):
                total[key] += value if name in NATURAL_SETS else 0  # "all": the natural sets
        browser.close()
    server.shutdown()
    n = max(1, total["questions"])
    report["all"] = {"questions": total["questions"], "same_top3": total["same_top3"],
                     "same_answer": total["same_answer"], "keyword_page": round(total["hits_page"] / n, 3),
                     "keyword_ask": round(total["hits_ask"] / n, 3)}
    return report


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
