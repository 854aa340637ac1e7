"""The one error type for bad input (``InputError``: the CLI prints its one line and exits 2) and the
recognition of a full disk behind an OSError, so that it is reported as bad input too, naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from pathlib import Path


class InputError(ValueError):
    """Bad user input: the message names the file (and line and field where there is one)."""


class DiskFullError(InputError):
    """An output could not be written for want of space; the message names it, the previous one is kept."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: not written: {reason}; any previous version is left as it was")
        self.path, self.reason = Path(path), reason


DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (over a file size limit)",
             errno.EDQUOT: "disk quota exceeded"}


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's save/tofile: an OSError with no errno


_SHORT_WRITE_REASON = "file too large or no space left on device (a short write)"


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EFBIG/EDQUOT OSError behind ``exc`` (itself, or one it was raised from or while handling:
    torch.save turns a failed write into a RuntimeError), or numpy's short-write OSError; else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in DISK_FULL or _SHORT_WRITE.fullmatch(str(exc))):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def disk_full_names(path: Path, rename_nested: bool = False) -> Iterator[None]:
    """Turn a full disk inside the block into a DiskFullError naming ``path``; a DiskFullError from a nested
    write is kept as it is, or with ``rename_nested`` (a folder written whole) renamed to ``path``."""
    try:
        yield
    except DiskFullError as e:
        if rename_nested and e.path != path:
            raise DiskFullError(path, e.reason) from None
        raise
    except BaseException as e:
        cause = disk_full_cause(e)
        if cause is None:
            raise
        raise DiskFullError(path, DISK_FULL.get(cause.errno, _SHORT_WRITE_REASON)) from None
