"""Library chatter kept from the user: ``with quiet(): ...`` silences warnings and log records below ERROR.

Exporters and quantizers (torch.onnx, onnxruntime's tools) warn about deprecations, missing optional
packages and graph details that are not the user's business: a command prints its own one-line summary,
and a question answered or searched shows no exporter output. Errors still propagate as exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No warnings and no log records up to WARNING inside the block; both settings are restored after."""
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
