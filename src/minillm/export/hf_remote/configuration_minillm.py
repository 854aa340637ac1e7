"""The config of a minillm model exported by ``minillm export hf``: the rung (``arch``) and its own config.

Shipped into the exported folder and loaded with ``trust_remote_code=True``; modeling_minillm.py builds the
model from it. ``minillm_config`` is the rung's config dataclass as a dict (ModelConfig for the transformer).
"""

from transformers import PretrainedConfig


class MinillmConfig(PretrainedConfig):
    model_type = "minillm"

    def __init__(self, arch: str = "transformer", minillm_config: dict | None = None, use_cache: bool = False,
                 **kwargs):
        self.arch = arch  # minillm's [model] arch: transformer, attention or mlp
        self.minillm_config = minillm_config or {}  # minillm.models.model_class(arch).config_class's fields
        self.use_cache = use_cache  # no KV cache: generate reads the whole sequence at every step
        super().__init__(**kwargs)
