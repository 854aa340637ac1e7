"""The models layer: the interface (base.py), weights files (weights.py), decoding (generation.py), the
registry (registry.py, which says what a rung class provides) and one file per rung of the ladder.

Importing this package registers every rung, in the ladder's order.
"""

from minillm.models.attention import AttentionLanguageModel
from minillm.models.base import FitData, LanguageModel
from minillm.models.bert import BertReader
from minillm.models.extractive import ExtractiveReader
from minillm.models.hybrid import HybridModel
from minillm.models.markov import MarkovChain
from minillm.models.mlp import MLPLanguageModel
from minillm.models.pattern import PatternMatcher
from minillm.models.registry import DEFAULT_ARCH, MODELS, model_class
from minillm.models.transformer import MiniTransformer, ModelConfig

MODELS.update({"extractive": ExtractiveReader, "pattern": PatternMatcher, "markov": MarkovChain,
               "mlp": MLPLanguageModel, "attention": AttentionLanguageModel, "transformer": MiniTransformer,
               "hybrid": HybridModel, "bert": BertReader})

__all__ = ["DEFAULT_ARCH", "MODELS", "FitData", "LanguageModel", "MiniTransformer", "ModelConfig", "model_class"]
