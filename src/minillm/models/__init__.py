"""The rungs of the ladder by name: ``MODELS["transformer"]`` is the class that builds and loads it.

Every class in ``MODELS`` has the members of ``LanguageModel`` (base.py) plus two class attributes:

    config_class   the frozen dataclass of its [model] settings (vocab_size and max_seq_len at least);
                   its __post_init__ raises ValueError for a bad value
    trained_by     "trainer": a torch nn.Module, ``cls(config)``, trained by the one Trainer (train.py);
                   "fit": count-based, fitted in one pass by ``model.fit(data: FitData)`` (base.py)

A config's ``[model] arch = "markov"`` picks the rung (default ``transformer``).
"""

from minillm.models.attention import AttentionLanguageModel
from minillm.models.base import FitData, LanguageModel
from minillm.models.bert import BertReader
from minillm.models.extractive import ExtractiveReader
from minillm.models.hybrid import HybridModel
from minillm.models.markov import MarkovChain
from minillm.models.mlp import MLPLanguageModel
from minillm.models.pattern import PatternMatcher
from minillm.models.transformer import MiniTransformer, ModelConfig

MODELS: dict[str, type] = {"extractive": ExtractiveReader, "pattern": PatternMatcher, "markov": MarkovChain,
                           "mlp": MLPLanguageModel, "attention": AttentionLanguageModel,
                           "transformer": MiniTransformer, "hybrid": HybridModel, "bert": BertReader}

DEFAULT_ARCH = "transformer"


def model_class(arch: str) -> type:
    """The class registered as ``arch``; ValueError naming the known ones otherwise."""
    try:
        return MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown model arch {arch!r}; choose one of {', '.join(MODELS)}") from None


__all__ = ["DEFAULT_ARCH", "MODELS", "FitData", "LanguageModel", "MiniTransformer", "ModelConfig", "model_class"]
