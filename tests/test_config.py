import re
from pathlib import Path

import pytest

from minillm.core.errors import InputError
from minillm.models import MODELS, ModelConfig
from minillm.training import config as config_module
from minillm.training.config import (
    Config,
    TrainConfig,
    config_from_dict,
    load_config,
    parse_override,
    save_config,
    shipped_config,
)

CONFIGS = Path(__file__).resolve().parent.parent / "src" / "minillm" / "configs"
MODEL = {"max_seq_len": 16, "emb_dim": 32, "num_layers": 1, "num_heads": 2}
MODEL_TABLE = "\n[model]\nmax_seq_len = 16\nemb_dim = 32\nnum_layers = 1\nnum_heads = 2\n"


def write(tmp_path, text):
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    return path


SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.toml"))
FITTED = {"extractive", "pattern", "markov", "hybrid"}  # count-based rungs: [train] only says which data to read
OWN_LOOP = {"bert"}  # trained by a loop of its own, which reads only some [train] fields


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_and_comment_every_field(name):
    path = CONFIGS / f"{name}.toml"
    cfg = load_config(path)
    assert cfg.model["vocab_size"] == 0  # taken from the tokenizer
    for line in path.read_text().splitlines():
        if re.match(r"\w+ = ", line):
            assert "#" in line, f"{name}: no comment on '{line}'"
    fields = set()
    while path is not None:  # a config with a base states only what it changes: the base has the rest
        text = path.read_text()
        fields |= {line.split(" = ")[0] for line in text.splitlines() if re.match(r"\w+ = ", line)}
        base = re.search(r'^base = "([^"]+)"', text, re.MULTILINE)
        path = CONFIGS / f"{base.group(1)}.toml" if base else None
    if name in OWN_LOOP:
        read = {"seed", "device", "batch_size", "pretrain_steps", "finetune_steps", "lr", "min_lr", "warmup_steps",
                "weight_decay", "beta1", "beta2", "grad_clip", "finetune_lr"}
        assert read <= fields
    elif name not in FITTED:
        assert set(TrainConfig.__dataclass_fields__) <= fields | {"finetune_lr"}


def test_every_rung_has_a_shipped_config():
    assert set(MODELS) <= set(SHIPPED) | {"transformer"}
    assert "transformer" in SHIPPED and {"tiny-cpu", "seed-3m", "shakespeare-char"} <= set(SHIPPED)


def test_seed_3m_is_the_readme_model():
    cfg = load_config(CONFIGS / "seed-3m.toml")
    model = ModelConfig(**{**cfg.model, "vocab_size": 5000})
    assert (model.max_seq_len, model.emb_dim, model.num_layers, model.num_heads) == (32, 256, 2, 2)
    assert cfg.tokenizer.vocab_size == 5000 and cfg.tokenizer.kind == "bpe"


def test_defaults_fill_missing_sections(tmp_path):
    cfg = load_config(write(tmp_path, MODEL_TABLE))
    assert cfg.train == TrainConfig() and cfg.data.heldout_fraction == 0.05
    assert cfg.model == {**MODEL, "vocab_size": 0}
    assert cfg.train.finetune_peak_lr == cfg.train.lr


def test_overrides_parse_values_as_toml_or_bare_strings(tmp_path):
    path = write(tmp_path, MODEL_TABLE)
    cfg = load_config(path, ["train.lr=3e-4", "data.qa_context=true", "data.text=../input.txt",
                             'data.tokenizer="a b.json"', "model.dropout=0", "train.finetune_lr=1e-4",
                             "model.position=rotary", "train.ddp=flat"])
    assert cfg.train.lr == 0.0003 and isinstance(cfg.model["dropout"], float)
    assert cfg.data.qa_context is True and cfg.data.text == "../input.txt"
    assert cfg.data.tokenizer == "a b.json"
    assert cfg.train.finetune_peak_lr == 1e-4 and cfg.model["position"] == "rotary" and cfg.train.ddp == "flat"
    assert parse_override("train.seed = 5") == ("train", "seed", 5)
    for domains in ("all", "animals, weather", ""):  # every summary, names, the six domains
        assert load_config(path, [f"data.domains={domains}"]).data.domains == domains


def test_save_and_load_give_back_the_same_config(tmp_path):
    cfg = load_config(CONFIGS / "tiny-cpu.toml", ["model.vocab_size=4096", "train.seed=3"])
    save_config(cfg, tmp_path / "run" / "config.toml")
    assert load_config(tmp_path / "run" / "config.toml") == cfg
    bare = config_from_dict({"model": MODEL})  # None fields (ffn_dim, finetune_lr) are left out and come back
    save_config(bare, tmp_path / "bare.toml")
    assert load_config(tmp_path / "bare.toml") == bare
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_model_config_needs_the_vocab_size_resolved():
    cfg = config_from_dict({"model": MODEL})
    with pytest.raises(ValueError, match="vocab_size is 0"):
        cfg.model_config()
    cfg.model["vocab_size"] = 100
    assert cfg.model_config() == ModelConfig(vocab_size=100, **MODEL)


@pytest.mark.parametrize("text, overrides, message", [
    ("[trian]\n", [], "x.toml: trian: unknown section (did you mean 'train'?)"),
    ("[train]\nlearning_rate = 1\n", [], "x.toml: train.learning_rate: unknown key"),
    ("[train]\nbatchsize = 1\n", [], "(did you mean 'batch_size'?)"),
    ("[train]\nlr = 0\n", [], "x.toml: train.lr: must be > 0, got 0.0"),
    ("", ["train.lr=-1"], "x.toml: train.lr: must be > 0, got -1.0 (from --set)"),
    ("[train]\npretrain_steps = -5\n", [], "x.toml: train.pretrain_steps: must be >= 0, got -5"),
    ("[train]\nbatch_size = 0\n", [], "train.batch_size: must be >= 1"),
    ("[train]\nbatch_size = 2.5\n", [], "train.batch_size: expected int, got float 2.5"),
    ("[train]\ncompile = 1\n", [], "train.compile: expected bool, got int 1"),
    ("[train]\nlr = true\n", [], "train.lr: expected float, got bool True"),
    ("[train]\nmin_lr = 0.1\nlr = 0.01\n", [], "train.min_lr: must be <= train.lr"),
    ("[train]\nbeta2 = 1.0\n", [], "train.beta2: must be in [0, 1)"),
    ("[train]\ndevice = \"gpu\"\n", [], "train.device: must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("[train]\ndtype = \"fp8\"\n", [], "train.dtype: must be one of auto, float32, bfloat16, float16"),
    ("", ['train.compile_mode="fast"'], "train.compile_mode: must be one of default, reduce-overhead, max-autotune"),
    ("", ["train.ddp=fsdp"], "x.toml: train.ddp: must be one of ddp, flat, got 'fsdp' (from --set)"),
    ("[train]\nddp = true\n", [], "train.ddp: expected str, got bool True"),
    ("[data]\nheldout_fraction = 1.0\n", [], "x.toml: data.heldout_fraction: must be in [0, 1), got 1.0"),
    ("[data]\nheldout_fraction = -0.1\n", [], "data.heldout_fraction: must be in [0, 1)"),
    ("[tokenizer]\nkind = \"wordpiece\"\n", [], "tokenizer.kind: must be one of bpe, char, word"),
    ("", ["data.domains=weather,plants"], "x.toml: data.domains: unknown domain(s) plants; choose from"),
    ("[data]\ndomains = 3\n", [], "x.toml: data.domains: expected str, got int 3"),
    ("", ["model.emb_dim=33"], "x.toml: model: emb_dim (33) must be divisible by num_heads (2)"),
    ("", ["model.dropout=1.5"], "x.toml: model: dropout must be in [0, 1)"),
    ("", ["model.vocab_size=-1"], "model.vocab_size: must be >= 0"),
    ("", ["model.norm=batchnorm"], "unknown norm 'batchnorm'"),
    ("", ["train=1"], "--set train=1: expected section.key=value"),
    ("", ["train.lr"], "--set train.lr: expected section.key=value"),
    ("train = 3\n", [], "x.toml: train: expected a [train] table, got int"),
    ("[train\n", [], "x.toml: invalid TOML"),
])
def test_bad_configs_name_the_file_and_the_key(tmp_path, text, overrides, message):
    if "[model]" not in text and "train = 3" not in text:
        text += MODEL_TABLE
    with pytest.raises(InputError) as info:
        load_config(write(tmp_path, text), overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_model_section_is_required_and_complete(tmp_path):
    with pytest.raises(InputError, match="x.toml: model: missing \\[model\\] section"):
        load_config(write(tmp_path, "[train]\nlr = 0.1\n"))
    with pytest.raises(InputError, match="x.toml: model: missing emb_dim, num_layers"):
        load_config(write(tmp_path, "[model]\nmax_seq_len = 16\nnum_heads = 2\n"))


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="nope.toml: no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="is a directory"):
        load_config(tmp_path)


def test_config_is_plain_dataclasses():
    cfg = config_from_dict({"model": MODEL})
    assert isinstance(cfg, Config) and cfg.tokenizer.kind == "bpe" and cfg.data.qa_context is False


def test_shipped_config_names_and_paths(tmp_path):
    # the installed package's configs: this clone's, or another's where minillm was installed from there
    assert shipped_config("tiny-cpu") == Path(config_module.__file__).parents[1] / "configs" / "tiny-cpu.toml"
    assert shipped_config("my.toml") == Path("my.toml")
    assert shipped_config(str(tmp_path / "x")) == tmp_path / "x"
    with pytest.raises(InputError, match="config 'tiny': no such shipped config .*seed-3m, .*tiny-cpu"):
        shipped_config("tiny")


def test_a_config_with_a_base_states_only_what_it_changes(tmp_path):
    (tmp_path / "wide.toml").write_text('base = "tiny-cpu"\n[model]\nemb_dim = 256\n[train]\nlr = 1e-3\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.toml").write_text('base = "../wide.toml"\n[train]\nbatch_size = 64\n')
    cfg = load_config(tmp_path / "sub" / "long.toml", ["train.lr=2e-3"])
    tiny = load_config(shipped_config("tiny-cpu"))
    assert (cfg.model["emb_dim"], cfg.train.batch_size, cfg.train.lr) == (256, 64, 2e-3)
    assert cfg.model["num_layers"] == tiny.model["num_layers"] and cfg.data == tiny.data  # the rest: tiny-cpu's
    save_config(cfg, tmp_path / "saved.toml")  # a run's config.toml is whole, no base
    assert "base" not in (tmp_path / "saved.toml").read_text() and load_config(tmp_path / "saved.toml") == cfg


@pytest.mark.parametrize("text, message", [
    ('base = "nosuch"\n', "x.toml: base: config 'nosuch': no such shipped config"),
    ("base = 3\n", "x.toml: base: expected the name of a shipped config or a .toml path, got 3"),
    ('base = "x.toml"\n', "x.toml: base: x.toml is based on this config again (a loop)"),
    ('base = "missing.toml"\n', "missing.toml: no such config file"),
    ('base = "tiny-cpu"\n[train]\nlr = -1\n', "x.toml: train.lr: must be > 0"),
    ('base = "tiny-cpu"\n[modle]\nemb_dim = 8\n', "x.toml: modle: unknown section"),
])
def test_bad_bases_name_the_file(tmp_path, text, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_config(write(tmp_path, text))


def test_a_loop_through_two_bases_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(InputError, match=re.escape("b.toml: base: a.toml is based on this config again (a loop)")):
        load_config(tmp_path / "a.toml")


def test_knowledge_gpu_is_the_measured_gpu_run():
    """knowledge-gpu is tiny-cpu with the settings experiments/gpu/openings_probe.sh measured as --set lines
    (the figures in its header come from that script): the two cannot drift apart."""
    script = (CONFIGS.parents[2] / "experiments" / "gpu" / "openings_probe.sh").read_text(encoding="utf-8")
    train = re.search(r'^C="([^"]+)"', script, re.MULTILINE).group(1).split()
    model = re.search(r'^M="\$\{MODEL:-([^}]+)\}"', script, re.MULTILINE).group(1).split()
    measured = load_config(shipped_config("tiny-cpu"), train + model)
    shipped = load_config(shipped_config("knowledge-gpu"))
    assert shipped == measured and shipped.model["num_layers"] == 6 and shipped.train.pretrain_steps == 4000
