"""A minillm model inside a transformers ``PreTrainedModel``: the modeling code of the runs that
``minillm export hf`` cannot map to a standard class (a copy head, shared layers, a mixed shape, the
attention and mlp rungs).

Needs minillm installed (``pip install minillm``): the model is minillm's own class,
``minillm.models.model_class(config.arch)`` built from ``config.minillm_config``, so its outputs are exactly
minillm's. The weights are its state dict under the prefix ``model.``.

- ``forward(input_ids)`` returns ``CausalLMOutputWithPast(logits=...)``; with a copy head they are
  log-probabilities, which are valid logits (softmax gives the probabilities back).
- No KV cache: ``use_cache`` is off in config.json and generation_config.json, so ``generate`` feeds the
  whole sequence at every step instead of only the newest token; asking for a cache is an error.
- No padding: every position of ``input_ids`` is read, so ``attention_mask`` must be all ones.
- Inference only: no loss from ``labels`` (minillm trains its models itself).
"""

import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from minillm.models import model_class
from minillm.models.transformer import rotary_tables

from .configuration_minillm import MinillmConfig


class MinillmForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = MinillmConfig

    def __init__(self, config: MinillmConfig):
        super().__init__(config)
        cls = model_class(config.arch)
        self.model = cls(cls.config_class(**config.minillm_config))
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # generate must not make a cache this model never fills

    def _init_weights(self, module: torch.nn.Module) -> None:
        # Everything but the rotary tables comes from model.safetensors (or minillm's own init). The tables
        # are not saved (derived from the config), and transformers leaves such buffers empty when loading.
        if getattr(module, "rope_cos", None) is not None:
            cos, sin = rotary_tables(module.config.head_dim, module.config.max_seq_len)
            module.rope_cos.copy_(cos)
            module.rope_sin.copy_(sin)

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                use_cache: bool | None = None, **kwargs) -> CausalLMOutputWithPast:
        if use_cache:
            raise ValueError("this minillm model keeps no KV cache: generate with use_cache=False (the default)")
        if attention_mask is not None and not attention_mask.all():
            raise ValueError("this minillm model reads every position: no padding (attention_mask all ones)")
        return CausalLMOutputWithPast(logits=self.model(input_ids))
