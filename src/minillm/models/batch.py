"""Batched decoding: many sequences of one MiniTransformer, each with its own prompt, position, sampling and
stop rules, read by one forward a step. A sequence joins when it comes and leaves when it ends while the
others go on (continuous batching, as vLLM and TGI serve).

    batch = BatchDecoder(model, max_rows=32)
    first = batch.add(prompt_ids, sampling, eos_id=tok.eos_id, decode=tok.decode)  # its first token (or None)
    while batch.sequences:
        for sequence, token in batch.step():  # one token (or None: it ended) for each sequence
            ...

Design choices:
- A prompt is read alone, by the model's own forward (decode_step.DecodeStep.prefill, as ``generate`` reads
  it), and its keys and values copied into a free row of the batch's cache; every later token of every
  sequence is read by one DecodeStep.rows call, at that sequence's own position.
- Each sequence has its own generation.TokenPicker: the sampling and stop rules of ``generate`` (repetition
  penalty, no-repeat n-grams, stop_repeat, suppressed tokens, max_sentences, eos, max_new_tokens, the
  context's end), its own seeded generator, its own decode. The greedy sequences' first choice of a step
  is made for all at once (generation.greedy_picks), each picker then checks its own stop rules.
- Rows stay packed: a sequence that ends or is dropped hands its row to the last sequence (its cache rows
  copied), so a step reads rows 0 .. n-1 and never a gap.
- One thread drives a BatchDecoder (serve/batching.py): nothing here is locked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from minillm.models.decode_step import DecodeStep
from minillm.models.generation import KVCache, Sampling, TokenPicker, check_prompt, greedy_picks


@dataclass(eq=False)
class Sequence:
    """One sequence being decoded: its rules, its row in the batch's cache, the token it reads next."""
    picker: TokenPicker
    row: int = -1
    position: int = 0  # where the next token is read: prompt length + tokens read since
    next_token: int = 0


class BatchDecoder:
    """Decodes up to ``max_rows`` sequences of a MiniTransformer together (see the module docstring); its
    methods are called under torch.inference_mode, with the model in eval mode."""

    def __init__(self, model: nn.Module, max_rows: int):
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.model = model
        self.max_rows = max_rows
        self.decoder = DecodeStep(model)
        self.cache = self.decoder.slot_cache(max_rows)
        self.sequences: list[Sequence] = []

    @property
    def full(self) -> bool:
        return len(self.sequences) >= self.max_rows

    def add(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
            decode: Callable[[list[int]], str] | None = None) -> tuple[Sequence, int | None]:
        """Read a prompt and pick its first token: (the sequence, that token or None). The sequence joins
        ``sequences`` unless it already ended (``sequence.picker.done``)."""
        if self.full:
            raise ValueError(f"the batch is full ({self.max_rows} sequences)")
        check_prompt(prompt_ids, self.model.max_seq_len, sampling, decode)
        logits, cache = self.decoder.prefill(list(prompt_ids))
        picker = TokenPicker(logits, len(prompt_ids), self.model.max_seq_len, sampling, eos_id, decode)
        sequence = Sequence(picker, position=len(prompt_ids))
        token = picker.pick(logits)
        if not picker.done:
            sequence.row, sequence.next_token = len(self.sequences), token
            self._copy_in(cache, sequence.row, len(prompt_ids))
            self.sequences.append(sequence)
        return sequence, token

    def step(self) -> list[tuple[Sequence, int | None]]:
        """Read every sequence's next token with one forward and pick the token after it: (sequence, token
        or None) for each; those that ended leave ``sequences``."""
        if not self.sequences:
            return []
        logits = self.decoder.rows([s.next_token for s in self.sequences], [s.position for s in self.sequences],
                                   self.cache)
        pickers = [s.picker for s in self.sequences]
        banned = [picker.banned() for picker in pickers]
        picked = []
        for sequence, row_logits, first, row_banned in zip(self.sequences, logits,
                                                           greedy_picks(logits, pickers, banned), banned, strict=True):
            token = sequence.picker.pick(row_logits, first, row_banned)
            sequence.position += 1
            if token is not None:
                sequence.next_token = token
            picked.append((sequence, token))
        for sequence, _ in picked:
            if sequence.picker.done:
                self.remove(sequence)
        return picked

    def remove(self, sequence: Sequence) -> None:
        """Drop a sequence (ended, or no longer wanted): the last sequence moves into its row."""
        if sequence.row < 0:
            return
        last = self.sequences.pop()
        if last is not sequence:
            self._move_row(last.row, sequence.row, last.position)
            last.row = sequence.row
            self.sequences[sequence.row] = last
        sequence.row = -1

    def _copy_in(self, cache: KVCache, row: int, length: int) -> None:
        """A batch-1 cache's first ``length`` positions into a row of the batch's cache."""
        self.cache.k[:, row, :, :length] = cache.k[:, 0, :, :length]
        self.cache.v[:, row, :, :length] = cache.v[:, 0, :, :length]
        if cache.copy_keys is not None:
            self.cache.copy_keys[row, :length] = cache.copy_keys[0, :length]
            self.cache.ids[row, :length] = cache.ids[0, :length]

    def _move_row(self, source: int, target: int, length: int) -> None:
        self.cache.k[:, target, :, :length] = self.cache.k[:, source, :, :length]
        self.cache.v[:, target, :, :length] = self.cache.v[:, source, :, :length]
        if self.cache.copy_keys is not None:
            self.cache.copy_keys[target, :length] = self.cache.copy_keys[source, :length]
            self.cache.ids[target, :length] = self.cache.ids[source, :length]
