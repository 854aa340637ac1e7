"""The rungs of the ladder by name: ``MODELS["transformer"]`` is the class that builds and loads it.

Every class in ``MODELS`` has the members of ``LanguageModel`` (base.py) plus two class attributes:

    config_class   the frozen dataclass of its [model] settings (vocab_size and max_seq_len at least);
                   its __post_init__ raises ValueError for a bad value
    trained_by     "trainer": a torch nn.Module, ``cls(config)``, trained by the one Trainer
                   (training/trainer.py); "fit": fitted in one pass by ``model.fit(data: FitData)`` (base.py)

A config's ``[model] arch = "markov"`` picks the rung (default ``transformer``). The table is filled by
``minillm.models`` (its ``__init__``) once every rung is imported, so that a rung built on others (hybrid)
can look them up by name without importing the package that imports it.
"""

MODELS: dict[str, type] = {}

DEFAULT_ARCH = "transformer"


def model_class(arch: str) -> type:
    """The class registered as ``arch``; ValueError naming the known ones otherwise."""
    try:
        return MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown model arch {arch!r}; choose one of {', '.join(MODELS)}") from None
