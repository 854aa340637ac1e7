"""Run configuration: five dataclass sections loaded from and saved to TOML, with ``--set`` overrides.

    [data]       where the pretraining text and the QA splits are, and how to hold out validation text
    [tokenizer]  which tokenizer to train when no tokenizer.json is given
    [model]      ``arch`` (the rung, default transformer; see minillm.models.MODELS) and the fields of that
                 rung's config class, e.g. ``ModelConfig`` (vocab_size 0 = take it from the tokenizer)
    [train]      optimisation, schedule, logging and checkpoint settings for both phases
    [answer]     who answers open book: the model, the run's trained reader, or the pattern rung (answering/reader.py)

    >>> cfg = load_config("configs/tiny-cpu.toml", ["train.lr=3e-4", "data.qa_context=true"])
    >>> cfg.train.lr, cfg.data.qa_context
    (0.0003, True)

Design choices:
- A config file is plain data (TOML), not code: nanoGPT's ``exec``-a-Python-file configurator is the part of
  nanoGPT its users complain about. Every field is visible in one dataclass below, with its default.
- Checking is strict: an unknown section or key (a typo) is an error, with a suggestion; so is a value of the
  wrong type or out of range. Every error is one ``InputError`` line naming the file and the key,
  ``configs/x.toml: train.lr: must be > 0``, and says when the value came from ``--set``.
- An override ``section.key=value`` parses ``value`` as TOML (``3e-4``, ``true``, ``"x"``) and falls back to
  the bare string, so ``--set data.text=input.txt`` needs no quotes.
- A config may start from another: ``base = "tiny-cpu"`` (a shipped name, or a .toml path relative to this
  file) at the top takes every key of that config, and this file's keys replace its keys one by one (as
  litgpt's and Hydra's defaults do), so a variant states only what it changes.
- Paths in ``[data]`` are relative to the working directory (the project root), not to the config file.
- Named configs (``tiny-cpu``, ``seed-3m``) are the files in the repository's ``configs/`` folder;
  ``shipped_config`` turns a name into that path and passes a path through.
- ``save_config`` writes the resolved config (the tokenizer's vocab_size filled in), so a run directory's
  config.toml alone rebuilds the model. TOML has no null: fields that are ``None`` are left out and come back
  as their default ``None``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from minillm.core.checks import comma_list
from minillm.core.errors import InputError
from minillm.core.files import atomic_write
from minillm.data.fetch import parse_domains
from minillm.models import DEFAULT_ARCH, MODELS, ModelConfig, model_class

CONFIG_DIR = Path(__file__).parent.parent / "configs"  # shipped inside the package; configs/ in the repo links here

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass
class DataConfig:
    articles: str = "data/raw/articles.jsonl"  # pretraining text: one Article per JSON line
    train_qa: str = "data/splits/train.jsonl"  # QA pairs to fine-tune on
    val_qa: str = "data/splits/val.jsonl"  # QA pairs for validation loss ("" = none)
    tokenizer: str = ""  # a tokenizer.json to use; "" = train one on the pretraining text
    text: str = ""  # a plain text file to pretrain on instead of articles (split 90/10 by position)
    heldout_fraction: float = 0.05  # share of articles held out of pretraining for validation loss
    qa_context: bool = False  # also fine-tune on each pair with its passage in the prompt (open book)
    qa_retrieved: int = 0  # also with the k passages retrieval finds for its question, as answers see them (0 = off)
    # knowledge augmentation of the pretraining text (data/augment.py, training/data.py)
    name_subject: bool = False  # every sentence about an article's subject names it ("It has" -> "Jupiter has")
    orders: int = 0  # each article again in this many shuffled orders of its sentences (0 = as written only)
    mix_qa: int = 0  # the training split's QA pairs interleaved in the pretraining text, each this many times
    # which offline articles the quickstart's pipeline fetches where data/ has none yet
    domains: str = ""  # "" = the six domains; "all" = every offline summary; or names, "animals,weather"
    described: bool = False  # its QA pairs also ask each lead the other way round (generate --described)


@dataclass
class TokenizerConfig:
    kind: str = "bpe"  # bpe | char | word
    vocab_size: int = 5000


@dataclass
class TrainConfig:
    seed: int = 1337
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto (bf16, else fp16 + GradScaler on CUDA; float32 elsewhere) | float32 | ...
    compile: bool = False  # torch.compile the model
    compile_mode: str = "default"  # torch.compile mode; reduce-overhead replays CUDA graphs (GPU)
    ddp: str = "ddp"  # several processes: ddp (DistributedDataParallel) | flat (one gradient buffer, one all-reduce)
    batch_size: int = 32  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    pretrain_steps: int = 2000  # optimizer steps on article text (0 = skip)
    finetune_steps: int = 1000  # optimizer steps on QA pairs (0 = skip)
    lr: float = 1e-3  # peak learning rate of pretraining
    min_lr: float = 1e-4  # cosine decays to this (fine-tuning: scaled by finetune_lr / lr)
    warmup_steps: int = 100  # linear warmup at the start of each phase
    weight_decay: float = 0.1  # AdamW, on matrices only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm (0 = off)
    eval_interval: int = 250  # steps between validation losses (0 = at the end of each phase only)
    eval_batches: int = 20  # batches per validation loss
    log_interval: int = 10  # steps between metrics.jsonl lines
    checkpoint_interval: int = 500  # steps between checkpoints (0 = at the end of each phase only)
    finetune_lr: float | None = None  # peak learning rate of fine-tuning (None = lr)

    @property
    def finetune_peak_lr(self) -> float:
        return self.lr if self.finetune_lr is None else self.finetune_lr


@dataclass
class AnswerConfig:
    # open book: model (it reads the passages itself) | ranker (the run's trained reader picks sentences:
    # minillm reader train) | pattern (the pattern rung's rules pick them); answering/reader.py
    reader: str = "model"


@dataclass
class Config:
    # The [model] table as checked values. It stays a dict rather than a ModelConfig because its vocab_size
    # may be 0, "the tokenizer's", which only training resolves; model_config() builds the ModelConfig.
    model: dict[str, Any]
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)

    @property
    def arch(self) -> str:
        """The rung this config builds (``[model] arch``, default transformer)."""
        return self.model.get("arch", DEFAULT_ARCH)

    def model_config(self) -> Any:
        """The ``config_class`` of the arch's model class (ModelConfig for the transformer)."""
        if not self.model.get("vocab_size"):
            raise ValueError("model.vocab_size is 0 (the tokenizer's): resolve it before building the model")
        return model_class(self.arch).config_class(**{k: v for k, v in self.model.items() if k != "arch"})


SECTIONS: dict[str, type] = {"data": DataConfig, "tokenizer": TokenizerConfig, "model": ModelConfig,
                             "train": TrainConfig, "answer": AnswerConfig}

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_CHOICES = {
    "tokenizer.kind": ("bpe", "char", "word"),
    "train.dtype": ("auto", "float32", "bfloat16", "float16"),
    "train.compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "train.ddp": ("ddp", "flat"),
    "answer.reader": ("model", "pattern", "ranker"),
}
_AT_LEAST = {  # key -> smallest allowed value; ModelConfig checks the other [model] keys itself
    "tokenizer.vocab_size": 1, "model.vocab_size": 0, "data.qa_retrieved": 0,
    "data.orders": 0, "data.mix_qa": 0, "train.seed": 0, "train.batch_size": 1,
    "train.grad_accum": 1, "train.pretrain_steps": 0, "train.finetune_steps": 0, "train.min_lr": 0,
    "train.warmup_steps": 0, "train.weight_decay": 0, "train.grad_clip": 0, "train.eval_interval": 0,
    "train.eval_batches": 1, "train.log_interval": 1, "train.checkpoint_interval": 0,
}
_POSITIVE = {"train.lr", "train.finetune_lr"}
_UNIT_INTERVAL = {"data.heldout_fraction", "train.beta1", "train.beta2"}  # [0, 1)


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (int, float, bool, str or ``X | None``); TypeError if it is not one."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(value, inner[0])
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (bool, str) and isinstance(value, annotation):
        return value
    raise TypeError(f"expected {annotation.__name__}, got {type(value).__name__} {value!r}")


def _range_error(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key in _CHOICES and value not in _CHOICES[key]:
        return f"must be one of {', '.join(_CHOICES[key])}, got {value!r}"
    if key == "data.domains":
        try:
            parse_domains(comma_list(value))
        except InputError as e:
            return str(e).removeprefix("--domains: ")
    if key == "train.device" and not _DEVICE.fullmatch(value):
        return f"must be auto, cpu, cuda, cuda:N or mps, got {value!r}"
    if key in _AT_LEAST and value < _AT_LEAST[key]:
        return f"must be >= {_AT_LEAST[key]}, got {value}"
    if key in _POSITIVE and value <= 0:
        return f"must be > 0, got {value}"
    if key in _UNIT_INTERVAL and not 0 <= value < 1:
        return f"must be in [0, 1), got {value}"
    return None


def _section(schema: type, table: dict[str, Any], name: str, fail) -> Any:
    hints = typing.get_type_hints(schema)
    known = {f.name for f in dataclasses.fields(schema)}
    values = {}
    for key, raw in table.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            fail(f"{name}.{key}", "unknown key" + (f" (did you mean '{close[0]}'?)" if close else ""))
        try:
            values[key] = _coerce(raw, hints[key])
        except TypeError as e:
            fail(f"{name}.{key}", str(e))
        error = _range_error(f"{name}.{key}", values[key])
        if error:
            fail(f"{name}.{key}", error)
    if name != "model":
        return schema(**values)
    values.setdefault("vocab_size", 0)
    missing = [f.name for f in dataclasses.fields(schema)
               if f.default is dataclasses.MISSING and f.name not in values]
    if missing:
        fail(name, f"missing {', '.join(missing)}")
    try:  # the config class's own checks, e.g. emb_dim divisible by num_heads; vocab_size 0 stands in as 1
        schema(**{**values, "vocab_size": values["vocab_size"] or 1})
    except (ValueError, TypeError) as e:
        fail(name, str(e))
    return values


def _model_section(table: dict[str, Any], fail) -> dict[str, Any]:
    """The [model] table checked against its arch's config class; ``arch`` is kept when given."""
    arch = table.get("arch", DEFAULT_ARCH)
    if arch not in MODELS:
        close = difflib.get_close_matches(str(arch), MODELS, n=1)
        fail("model.arch", f"unknown arch {arch!r}; choose one of {', '.join(MODELS)}"
             + (f" (did you mean '{close[0]}'?)" if close else ""))
    values = _section(MODELS[arch].config_class, {k: v for k, v in table.items() if k != "arch"}, "model", fail)
    return {"arch": arch, **values} if "arch" in table else values


def config_from_dict(tables: dict[str, Any], source: str = "<config>",
                     overridden: frozenset[str] = frozenset()) -> Config:
    """Build and check a ``Config`` from TOML tables; errors name ``source`` and the key."""

    def fail(key: str, reason: str) -> typing.NoReturn:
        note = " (from --set)" if key in overridden else ""
        raise InputError(f"{source}: {key}: {reason}{note}")

    sections = {}
    for name, table in tables.items():
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, SECTIONS, n=1)
            fail(name, "unknown section" + (f" (did you mean '{close[0]}'?)" if close else ""))
        if not isinstance(table, dict):
            fail(name, f"expected a [{name}] table, got {type(table).__name__}")
        sections[name] = (_model_section(table, fail) if name == "model"
                          else _section(SECTIONS[name], table, name, fail))
    if "model" not in sections:
        fail("model", "missing [model] section (max_seq_len, emb_dim, num_layers, num_heads at least)")
    cfg = Config(**sections)
    if cfg.train.min_lr > cfg.train.lr:
        fail("train.min_lr", f"must be <= train.lr ({cfg.train.lr}), got {cfg.train.min_lr}")
    augment = [f"data.{key}" for key in ("name_subject", "orders", "mix_qa") if getattr(cfg.data, key)]
    if cfg.data.text and augment:
        fail(augment[0], "augments articles; data.text is a plain text file (set data.text = \"\" or drop it)")
    return cfg


def parse_override(item: str) -> tuple[str, str, Any]:
    """``"train.lr=3e-4"`` -> ``("train", "lr", 0.0003)``; the value is TOML, or else a bare string."""
    key, sep, text = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise InputError(f"--set {item}: expected section.key=value, e.g. train.lr=3e-4")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, name, value


def shipped_config(name: str) -> Path:
    """``configs/NAME.toml`` for a bare name such as ``tiny-cpu``; a name ending in .toml or holding a
    directory separator is a path and comes back as it is."""
    if name.endswith(".toml") or "/" in name or os.sep in name:
        return Path(name)
    path = CONFIG_DIR / f"{name}.toml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))) or f"none in {CONFIG_DIR}"
        raise InputError(f"config '{name}': no such shipped config (shipped: {names}); or give a .toml file")
    return path


def _read_tables(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The TOML tables of ``path``, on top of those of its ``base`` config when it names one."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TOML config file") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: invalid TOML ({e})") from None
    if "base" not in tables:
        return tables
    base = tables.pop("base")
    if not isinstance(base, str) or not base:
        raise InputError(f"{path}: base: expected the name of a shipped config or a .toml path, got {base!r}")
    try:
        base_path = shipped_config(base)
    except InputError as e:
        raise InputError(f"{path}: base: {e}") from None
    if base_path == Path(base):
        base_path = path.parent / base_path  # a path is relative to the config that names it
    seen = (*seen, path.resolve())  # this config and those based on it
    if base_path.resolve() in seen:
        raise InputError(f"{path}: base: {base} is based on this config again (a loop)")
    merged = _read_tables(base_path, seen)
    for name, table in tables.items():
        if isinstance(table, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **table}
        else:
            merged[name] = table  # a wrong shape is config_from_dict's error to report
    return merged


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML config, apply ``section.key=value`` overrides, check everything; raises InputError."""
    path = Path(path)
    tables = _read_tables(path, ())
    overridden = set()
    for item in overrides:
        section, name, value = parse_override(item)
        table = tables.setdefault(section, {})
        if not isinstance(table, dict):
            raise InputError(f"{path}: {section}: expected a [{section}] table")
        table[name] = value
        overridden.add(f"{section}.{name}")
    return config_from_dict(tables, str(path), frozenset(overridden))


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The TOML tables of ``cfg``; ``None`` values are left out (TOML has no null)."""
    tables = {name: dataclasses.asdict(getattr(cfg, name)) for name in ("data", "tokenizer", "train", "answer")}
    tables["model"] = dict(cfg.model)
    return {name: {k: v for k, v in tables[name].items() if v is not None} for name in SECTIONS}


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as TOML, atomically; ``load_config(path)`` gives back an equal Config."""
    text = "# minillm run config: load_config() of this file rebuilds the run.\n\n"
    text += tomli_w.dumps(config_to_dict(cfg))
    with atomic_write(path, "w") as fh:
        fh.write(text)
