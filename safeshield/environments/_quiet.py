"""``quiet_stdout``: silence what C code prints on the process's stdout (PyBullet's ``argv[0]=``).

Python's ``contextlib.redirect_stdout`` only moves ``sys.stdout``; an engine's C code writes to file
descriptor 1 directly, so the descriptor itself is pointed at ``os.devnull`` for the duration
(Python's buffered output is flushed first and kept).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_stdout"]


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
