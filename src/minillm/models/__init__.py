"""The rungs of the ladder by name: ``MODELS["transformer"]`` is the class that builds and loads it."""

from minillm.models.base import LanguageModel
from minillm.models.transformer import MiniTransformer, ModelConfig

MODELS = {"transformer": MiniTransformer}

__all__ = ["MODELS", "LanguageModel", "MiniTransformer", "ModelConfig"]
