"""``quiet_stdout``: silence what C code prints on the process's stdout (PyBullet's ``argv[0]=``);
``without_notice``: drop one known notice a dependency prints on ``sys.stderr``, pass the rest on
(``ADROIT_NOTICE``: gymnasium-robotics').

Python's ``contextlib.redirect_stdout`` only moves ``sys.stdout``; an engine's C code writes to file
descriptor 1 directly, so the descriptor itself is pointed at ``os.devnull`` for the duration
(Python's buffered output is flushed first and kept).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator

__all__ = ["ADROIT_NOTICE", "quiet_stdout", "without_notice"]

ADROIT_NOTICE = "AdroitHandRelocateDense-v1, AdroitHandHammerDense-v1"
"""How the notice starts that gymnasium-robotics 1.4.2 prints on import about its Adroit envs' rewards
(envs this package does not use); importing it (ShadowHand, Safety-Gymnasium) drops only that line."""


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


@contextlib.contextmanager
def without_notice(start: str) -> Iterator[None]:
    """Drop the lines starting with ``start`` that Python code prints on ``sys.stderr`` meanwhile (a
    dependency's import-time notice about parts of it this package does not use); every other line
    is written to ``sys.stderr`` afterwards, unchanged."""
    caught = io.StringIO()
    try:
        with contextlib.redirect_stderr(caught):
            yield
    finally:
        kept = [line for line in caught.getvalue().splitlines(keepends=True) if not line.startswith(start)]
        sys.stderr.write("".join(kept))
