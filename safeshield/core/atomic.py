"""Atomic file writes: a temporary file next to the target, renamed into place only when complete.

- ``atomic_path``: a context manager yielding the temporary path to write; a crash or an error
  leaves the previous file (or none) in place, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (same suffix); on success rename it to ``path``.

    The parent folder is created. The file gets the usual permissions (``0o666`` minus the umask),
    not ``mkstemp``'s private ``0o600``.

    Example:
        >>> import json, tempfile
        >>> target = Path(tempfile.mkdtemp()) / "results.json"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text(json.dumps({"ok": True}))
        >>> json.loads(target.read_text())
        {'ok': True}
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
