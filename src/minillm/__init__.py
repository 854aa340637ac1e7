"""minillm: reference articles in, a small question-answering language model out."""

__version__ = "0.1.0"
