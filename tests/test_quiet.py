"""core.quiet, which the ONNX exports run under (export onnx, the engine's step graphs, the question graph)."""

import logging
import warnings

from minillm.core.quiet import quiet


def test_quiet_silences_warnings_and_log_records_below_error_and_restores_both(caplog):
    log = logging.getLogger("exporter")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet():
            warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
            log.warning("a note")
            log.error("kept")
        warnings.warn("after", UserWarning, stacklevel=1)
        log.warning("after")
    assert [str(w.message) for w in seen] == ["after"]
    assert [r.getMessage() for r in caplog.records] == ["kept", "after"]


def test_quiet_restores_logging_when_the_block_raises():
    try:
        with quiet():
            raise ValueError("export failed")
    except ValueError:
        pass
    assert logging.root.manager.disable == logging.NOTSET
