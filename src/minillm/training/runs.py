"""A run folder, the one hand-off between training and everything after it: its file names, how a run
starts (``start_run``), how a resumed run's config is checked (``resumed_config``), how a count-based rung
is fitted into one (``fit_run``) and how a finished run is loaded (``load_run``).

A run directory (runs/NAME/) holds:

    config.toml        the resolved config (vocab_size filled in): enough to rebuild the model
    tokenizer.json     Hugging Face tokenizers format
    model.safetensors  the weights with the best validation loss of the latest phase (pretraining: held-out
                       text; fine-tuning: the val split's QA pairs); the latest checkpoint's weights when
                       there is no validation data, or before the first evaluation. Fine-tuning starts a
                       new "best": a fine-tuned model wins even where pretraining's val QA loss was lower
                       (fine-tuning can raise it by forgetting articles), because only it has learnt to
                       answer in the QA format and stop.
    last.safetensors   the weights at the latest checkpoint
    train_state.pt     everything resume needs, in one file written atomically: weights, optimizer, grad
                       scaler, phase and step, best loss, RNG states (python, numpy, torch, data sampler),
                       data position. Only tensors and plain containers, so it loads with weights_only=True.
    metrics.jsonl      one JSON object per log line ("event": "train") and evaluation ("event": "eval")
    fit.json           a count-based rung's summary instead of the checkpoint files
    eval.json          the last evaluation (minillm eval)
    index/             the retrieval index, for open-book answers (minillm index build)

Design choices:
- Every file name of a run folder is a constant here (or in the layer that writes the file: tokenizer,
  weights, checkpoint), so a reader of the code finds a run's layout in one place.
- A count-based rung gets training's loop and run loader through ``FitData`` (``minimize``, ``load_run``):
  models never import training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from minillm.core.device import resolve_device
from minillm.core.errors import InputError
from minillm.core.files import append_jsonl, atomic_write
from minillm.models import LanguageModel, model_class
from minillm.models.weights import WEIGHTS_FILE, load_weights
from minillm.tokenizer import TOKENIZER_FILE, Tokenizer
from minillm.training.config import Config, load_config, save_config
from minillm.training.data import (
    fit_data,
    tokenizer_file,
)
from minillm.training.steps import minimize

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "train_state.pt"  # training/checkpoint.py writes and reads it
LAST_WEIGHTS_FILE = "last.safetensors"
FIT_FILE = "fit.json"  # a count-based run's summary; its presence marks the run as done
EVAL_FILE = "eval.json"
# TOKENIZER_FILE (tokenizer.py) and WEIGHTS_FILE (models/weights.py) are named by the layers that write them
RUN_FILES = (STATE_FILE, LAST_WEIGHTS_FILE, WEIGHTS_FILE, METRICS_FILE, CONFIG_FILE, TOKENIZER_FILE)


def start_run(cfg: Config, run_dir: Path) -> tuple[Config, Tokenizer]:
    """Create the run directory with its tokenizer.json and resolved config.toml."""
    source = tokenizer_file(cfg)
    tok = Tokenizer.load(source)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / TOKENIZER_FILE, "wb") as fh:  # the same bytes: same cache keys
        fh.write(source.read_bytes())
    vocab_size = cfg.model["vocab_size"]
    if vocab_size == 0:
        cfg = replace(cfg, model={**cfg.model, "vocab_size": tok.vocab_size})
    elif vocab_size < tok.vocab_size:
        raise InputError(f"{source}: {tok.vocab_size} tokens do not fit model.vocab_size = {vocab_size}; "
                         "set it to 0 to take the tokenizer's")
    save_config(cfg, run_dir / CONFIG_FILE)
    return cfg, tok


def fit_run(cfg: Config | None, run_dir: Path, resume: bool, started: float) -> TrainResult:
    """A count-based rung: one pass of ``model.fit`` over the data the Trainer would use, then save."""
    if resume:
        raise InputError(f"{run_dir}: a {(cfg or load_config(run_dir / CONFIG_FILE)).arch} model is fitted "
                         "in one pass; there is nothing to resume (train again into a new directory)")
    if (run_dir / FIT_FILE).exists() or (run_dir / STATE_FILE).exists():
        raise InputError(f"{run_dir}: already holds a run; pick another output directory")
    cfg, tok = start_run(cfg, run_dir)
    data = replace(fit_data(cfg, tok, (run_dir / TOKENIZER_FILE).read_bytes()), minimize=minimize,
                   load_run=load_run)
    model = model_class(cfg.arch)(cfg.model_config())
    summary = model.fit(data) or {}
    model.save(run_dir)
    seconds = time.perf_counter() - started
    tokens = len(data.text) + sum(len(q) for q in data.qa)
    record = {"event": "fit", "phase": "fit", "step": 0, "global_step": 0, **summary,
              "tokens": tokens, "elapsed": round(seconds, 3)}
    append_jsonl(run_dir / METRICS_FILE, [record])
    with atomic_write(run_dir / FIT_FILE, "w") as fh:
        json.dump(record, fh, indent=2)
    losses = {k.removesuffix("_loss"): v for k, v in summary.items()
              if k.endswith("_loss") and isinstance(v, float)}
    return TrainResult(out_dir=run_dir, steps=0, best_val_loss=losses.get("val_qa", losses.get("val_text")),
                       final_losses=losses, seconds=seconds, tokens=tokens,
                       tokens_per_s=tokens / seconds if seconds else 0.0)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[LanguageModel, Tokenizer, Config]:
    """The model (eval mode, weights of model.safetensors), tokenizer and config of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    cfg = load_config(run_dir / CONFIG_FILE)
    tok = Tokenizer.load(run_dir / TOKENIZER_FILE)
    cls = model_class(cfg.arch)
    if cls.trained_by == "fit":
        if not (run_dir / FIT_FILE).is_file():
            raise InputError(f"{run_dir / FIT_FILE}: no such file (the {cfg.arch} fit did not finish)")
        model = cls.load(run_dir)
        return (model.to(resolve_device(device)) if hasattr(model, "to") else model), tok, cfg
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{weights}: no such file (has the run saved a checkpoint yet?)")
    model = cls(cfg.model_config())
    load_weights(model, weights)
    return model.to(resolve_device(device)).eval(), tok, cfg


def resumed_config(cfg: Config | None, run_dir: Path) -> Config:
    """On resume: the run's config.toml, whose [train] section ``cfg`` may replace (to train longer)."""
    saved = load_config(run_dir / CONFIG_FILE)
    if cfg is None:
        return saved
    for section in ("data", "tokenizer", "model"):
        ours, theirs = getattr(cfg, section), getattr(saved, section)
        if section == "model" and not ours.get("vocab_size"):
            ours = {**ours, "vocab_size": theirs["vocab_size"]}
        if ours != theirs:
            raise InputError(f"{run_dir / CONFIG_FILE}: [{section}] differs from the given config; "
                             "a resumed run can change only [train]")
    return replace(saved, train=cfg.train)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run directory still holds the last good checkpoint."""


@dataclass
class TrainResult:
    out_dir: Path
    steps: int  # optimizer steps completed over the whole run, both phases
    best_val_loss: float | None  # of the weights in model.safetensors
    final_losses: dict[str, float]  # "train" (last step), "val_text", "val_qa" where there is data
    seconds: float  # wall time of this call, data preparation included
    tokens: int  # tokens trained on in this call by all processes, padding included
    tokens_per_s: float  # of those, per second of training steps (evaluation and checkpoints excluded)
