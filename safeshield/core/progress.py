"""Progress bars that degrade to nothing: tqdm when installed (the ``[experiments]`` extra), else silent.

``import safeshield`` never imports tqdm; the training loops call ``tqdm`` from here when they run.
Writing to something that is not a terminal (a log file, a CI job), a bar prints a line at most
every ``NON_TTY_INTERVAL`` seconds instead of redrawing: each redraw would be a new line there.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NON_TTY_INTERVAL", "tqdm"]

NON_TTY_INTERVAL = 30.0  # seconds between progress lines in a non-terminal log


class _SilentBar:
    """The part of tqdm's interface the training loops use, doing nothing."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def tqdm(*args: Any, **kwargs: Any):
    """``tqdm.auto.tqdm(*args, **kwargs)`` when tqdm is installed, else a silent bar."""
    try:
        from tqdm.auto import tqdm as bar
    except ImportError:
        return _SilentBar()
    if not _is_terminal(kwargs.get("file")):
        kwargs = {"mininterval": NON_TTY_INTERVAL, "maxinterval": 2 * NON_TTY_INTERVAL, **kwargs}
    return bar(*args, **kwargs)


def _is_terminal(stream: Any) -> bool:
    import sys

    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
