"""Exercise (neural MLP page): the forward pass of a Bengio-style language model. Fill in the function.

Check your work with ``python docs/exercises/check_bengio_mlp.py`` (it runs the checks on this file).

The model (Bengio et al., 2003; minillm's ``MLPLanguageModel`` in src/minillm/models/mlp.py) predicts the
token after position t from a window of the last ``context`` tokens, ids[t - context + 1 .. t]:

1. look up each window token's row of ``emb``; positions before the sequence starts read the extra
   "before start" row, the last one (id ``vocab``, where ``emb`` has ``vocab + 1`` rows);
2. concatenate the rows, oldest token first, into one vector of ``context * emb_dim``;
3. h = tanh(window @ hidden_weight.T + hidden_bias);
4. logits = h @ out_weight.T + out_bias, one score per vocabulary token.
"""

from __future__ import annotations

import torch


def mlp_logits(ids: torch.Tensor, emb: torch.Tensor, hidden_weight: torch.Tensor, hidden_bias: torch.Tensor,
               out_weight: torch.Tensor, out_bias: torch.Tensor, context: int) -> torch.Tensor:
    """Logits (B, T, vocab) for every position of ids (B, T) at once.

    Shapes: emb (vocab + 1, emb_dim); hidden_weight (hidden, context * emb_dim), hidden_bias (hidden,);
    out_weight (vocab, hidden), out_bias (vocab,).
    """
    raise NotImplementedError("pad with the before-start id, gather the windows, tanh layer, output layer")
