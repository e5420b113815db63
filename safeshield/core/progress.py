"""Progress bars that degrade to nothing: tqdm when installed (the ``[experiments]`` extra), else silent.

``import safeshield`` never imports tqdm; the training loops call ``tqdm`` from here when they run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["tqdm"]


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
    return bar(*args, **kwargs)
