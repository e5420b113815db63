"""Pickle-free, atomic checkpoints: safetensors weights + a JSON config.

- ``save_checkpoint``: write ``weights.safetensors`` + ``config.json`` into a directory, atomically.
- ``read_checkpoint``: open one for loading: the config is read and checked, the weights' header is
  parsed, and one hash over the config and the weights is verified, before anything is built.
  ``Checkpoint.tensors(expected)`` then checks names, dtypes and shapes against what the loader
  expects (``expected_state``: a model built on torch's ``meta`` device, so nothing is allocated)
  and only then reads the tensors, refusing non-finite values.
- ``load_checkpoint``: ``read_checkpoint(...).tensors()`` as ``(tensors, config, kind)``.
- ``read_kind``: the kind a checkpoint declares, or None (a cheap, safe peek for dispatch).
- ``restore``: the one load sequence every model and agent uses (read -> check spaces -> check the
  weights against a ``meta``-device build -> rebuild -> load state), each failure raised as
  ``CheckpointError``; behind every ``Thing.load(path, env=None, *, seed=None)``.
- ``spaces_of``: ``(observation_space, action_space)`` of an env or of such a pair.
- ``space_signature`` / ``check_space_signature`` / ``space_from_signature``: describe a Gymnasium
  space in JSON, refuse a checkpoint whose spaces differ, rebuild a Box or Discrete space.
- ``CheckpointError``: raised for every unreadable, truncated, hostile or mismatched checkpoint,
  naming the file and, where there is one, the field.

What a hostile checkpoint cannot do here: hang the loader (files are opened with ``O_NONBLOCK``
and must be regular files: no FIFO, device or directory), read outside the directory (no
symbolic links), exhaust memory (``config.json`` is capped at ``MAX_CONFIG_BYTES``, the weights
at ``MAX_WEIGHTS_BYTES``, the safetensors header at ``MAX_HEADER_BYTES``, and every tensor's
shape and dtype is compared with the loader's expectation before a byte of it is converted),
smuggle values (bool / integer tensors where floats belong, NaN or inf weights), or raise
anything but ``CheckpointError``.

Why a directory swap: the weights and the config must change together. Both files are
written and fsync'ed into a fresh temporary directory next to the target, which then replaces
the old checkpoint in one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two
renames). A ``kill -9`` at any instant leaves the path holding one complete checkpoint, old or
new, never a mix; with the two-rename fallback the only window leaves the old checkpoint
complete under ``.<name>.old-<pid>-*``, and ``read_checkpoint`` moves it back. Temporary folders
of dead processes are removed by the next save to the same path.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "read_kind",
    "expected_state",
    "restore",
    "spaces_of",
    "space_signature",
    "check_space_signature",
    "box_from_signature",
    "space_from_signature",
    "MAX_CONFIG_BYTES",
    "MAX_WEIGHTS_BYTES",
    "MAX_HEADER_BYTES",
]

T = TypeVar("T")

FORMAT = "safeshield-checkpoint"
FORMAT_VERSION = 2  # 2: one hash over config + weights; 1 (read only): weights hashed alone
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
MAX_CONFIG_BYTES = 16 << 20  # a 100k-dimensional Box signature is about 5 MB of JSON
MAX_WEIGHTS_BYTES = 4 << 30
MAX_HEADER_BYTES = 16 << 20
MAX_SPACE_SIZE = 1 << 24  # elements of a Box rebuilt from a signature
_HASH_DOMAIN = b"safeshield-checkpoint-v2\0"
_STALE_MARKERS = (".tmp-", ".old-")

# safetensors dtype names and their sizes in bytes (safetensors' own table)
_DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_TORCH_DTYPE_NAMES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.float32: "F32",
    torch.int64: "I64",
    torch.float64: "F64",
}


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit what it is being loaded into."""


# -- reading files safely ------------------------------------------------------------------------
def _open_regular(path: Path) -> tuple[int, int]:
    """``(fd, size)`` of the regular file ``path``; never blocks, never follows a symbolic link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path.parent)!r} is missing {path.name}") from None
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error
    if stat.S_ISLNK(info.st_mode):
        raise CheckpointError(f"{path} is a symbolic link; a checkpoint holds regular files only")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"{path} is not a regular file (a FIFO, device or directory); a checkpoint holds regular files only"
        )
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:  # ELOOP: it became a link since lstat
        raise CheckpointError(f"{path} cannot be opened as a regular file: {error}") from error
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or device since lstat
        os.close(fd)
        raise CheckpointError(f"{path} is not a regular file; a checkpoint holds regular files only")
    return fd, info.st_size


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refusing more than ``cap`` of them."""
    fd, size = _open_regular(path)
    try:
        if size > cap:
            raise CheckpointError(f"{path} is {size} bytes; {what} may be at most {cap} bytes")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise CheckpointError(
                    f"{path} grew past {cap} bytes while being read; {what} may be at most {cap} bytes"
                )
        return b"".join(chunks)
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error
    finally:
        os.close(fd)


def _parse_json(data: bytes, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupt): {error}") from error
    except RecursionError as error:
        raise CheckpointError(f"{path} is nested too deeply to be a checkpoint config") from error


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True).encode()


def _content_hash(document: dict[str, Any], weights: bytes) -> str:
    """SHA-256 of the config (canonical JSON, without the hash itself) and the weights' bytes."""
    body = {key: value for key, value in document.items() if key != "content_sha256"}
    digest = hashlib.sha256(_HASH_DOMAIN)
    canonical = _canonical(body)
    digest.update(len(canonical).to_bytes(8, "little"))
    digest.update(canonical)
    digest.update(weights)
    return digest.hexdigest()


# -- the safetensors header ----------------------------------------------------------------------
@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file as its header declares it."""

    dtype: str  # safetensors name: "F32", "I64", ...
    shape: tuple[int, ...]
    start: int
    end: int


def _parse_header(data: bytes, path: Path) -> dict[str, TensorInfo]:
    """Parse and check the header of safetensors ``data`` (bytes only, nothing allocated)."""
    if len(data) < 8:
        raise CheckpointError(
            f"{path} is truncated ({len(data)} bytes; a safetensors file starts with an 8-byte header size)"
        )
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise CheckpointError(f"{path} declares a {size}-byte header in a {len(data)}-byte file (truncated or corrupt)")
    header = _parse_json(bytes(data[8 : 8 + size]), path)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(f"{path}: the safetensors __metadata__ must map names to strings")
    data_size = len(data) - 8 - size
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{where} must have exactly dtype, shape and data_offsets, got {entry!r:.200}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise CheckpointError(f"{where} has dtype {dtype!r:.50}; known dtypes: {sorted(_DTYPE_SIZES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CheckpointError(f"{where} has shape {shape!r:.200}, expected a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise CheckpointError(f"{where} has data_offsets {offsets!r:.200}, expected [start, end]")
        start, end = offsets
        if not 0 <= start <= end <= data_size or end - start != math.prod(shape) * _DTYPE_SIZES[dtype]:
            raise CheckpointError(
                f"{where}: data_offsets {offsets} do not fit shape {shape} of {dtype} in {data_size} bytes of data"
            )
        tensors[name] = TensorInfo(dtype, tuple(shape), start, end)
    position = 0
    for info in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if info.start != position:
            raise CheckpointError(f"{path}: tensor data overlaps or leaves gaps (corrupt)")
        position = info.end
    if position != data_size:
        raise CheckpointError(f"{path}: {data_size - position} bytes after the last tensor (corrupt)")
    return tensors


# -- what a loader expects -----------------------------------------------------------------------
def expected_state(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Names, dtypes and shapes of ``build()``'s ``state_dict``, built on torch's ``meta`` device.

    Nothing is allocated for the tensors, so a config that asks for a 16 GB network is refused by
    ``Checkpoint.tensors`` (its shapes differ from the file's) before the real build.
    """
    with torch.device("meta"):
        module = build()
    return {name: (tensor.dtype, tuple(tensor.shape)) for name, tensor in module.state_dict().items()}


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk whose config and weights passed the hash and format checks."""

    path: Path
    kind: str
    config: dict[str, Any]
    header: dict[str, TensorInfo]
    weights: bytes

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def check_header(self, expected: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], *, exact: bool = True) -> None:
        """Raise ``CheckpointError`` unless the file holds ``expected``'s names, dtypes and shapes.

        ``exact``: the same names, no more, no fewer; otherwise only the names both hold are compared
        (an agent's file also holds optimiser state its fresh build does not have yet).
        """
        where = self.weights_path
        missing = sorted(set(expected) - set(self.header))
        unexpected = sorted(set(self.header) - set(expected))
        if exact and (missing or unexpected):
            raise CheckpointError(
                f"{where} does not fit the model its config describes: missing tensors {missing[:10]}, "
                f"unexpected tensors {unexpected[:10]}"
            )
        for name, (dtype, shape) in expected.items():
            info = self.header.get(name)
            if info is None:
                continue
            want = _TORCH_DTYPE_NAMES.get(dtype, str(dtype))
            if info.dtype != want or info.shape != tuple(shape):
                raise CheckpointError(
                    f"{where}: tensor {name!r} is {info.dtype}{list(info.shape)}, but the config "
                    f"describes {want}{list(shape)}"
                )

    def tensors(
        self, expected: Mapping[str, tuple[torch.dtype, tuple[int, ...]]] | None = None
    ) -> dict[str, torch.Tensor]:
        """The weights, checked against ``expected`` (see ``expected_state``) first; floats must be finite."""
        if expected is not None:
            self.check_header(expected)
        try:
            tensors = load_safetensors_bytes(self.weights)
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{self.weights_path} cannot be read: {error}") from error
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(f"{self.weights_path}: tensor {name!r} holds {bad} NaN or infinite values")
        return tensors


# -- reading -------------------------------------------------------------------------------------
def _recover(root: Path) -> bool:
    """When ``root`` is missing, move back the newest complete ``.<name>.old-*`` copy; True if it did."""
    if root.exists() or root.is_symlink() or not root.parent.is_dir():
        return False
    prefix = f".{root.name}.old-"
    try:
        candidates = [
            p for p in root.parent.iterdir() if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink()
        ]
    except OSError:
        return False
    for candidate in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            _read(candidate, None)
        except CheckpointError:
            continue
        try:
            os.rename(candidate, root)
        except OSError:
            if root.is_dir():  # another process recovered or saved it first
                return True
            continue
        _fsync_dir(root.parent)
        warnings.warn(
            f"checkpoint {str(root)!r} was missing (a save was killed); recovered the complete copy {candidate.name}",
            RuntimeWarning,
            stacklevel=3,
        )
        return True
    return False


def read_checkpoint(path: str | os.PathLike, kind: str | None = None) -> Checkpoint:
    """Open the checkpoint directory ``path`` for loading (see the module docstring for the checks).

    ``kind``, when given, is a prefix the saved kind must start with (``"shield/"``).
    """
    root = Path(path)
    if not root.is_dir():
        _recover(root)
    if not root.is_dir():
        raise CheckpointError(f"path {str(root)!r} is not a checkpoint directory (expected {CONFIG} + {WEIGHTS})")
    return _read(root, kind)


def _read_document(root: Path) -> dict[str, Any]:
    config_path = root / CONFIG
    document = _parse_json(_read_capped(config_path, MAX_CONFIG_BYTES, CONFIG), config_path)
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or not isinstance(document.get("config"), dict)
    ):
        raise CheckpointError(f"{config_path} is not a safeshield checkpoint (missing format={FORMAT!r} or its config)")
    version = document.get("format_version")
    if type(version) is not int or version not in (1, FORMAT_VERSION):
        raise CheckpointError(
            f"{config_path} has format_version={version!r:.50}; this safeshield reads 1 and {FORMAT_VERSION}"
        )
    if not isinstance(document.get("kind", ""), str):
        raise CheckpointError(f"{config_path}: field 'kind' must be a string, got {document.get('kind')!r:.100}")
    return document


def _read(root: Path, kind: str | None) -> Checkpoint:
    config_path, weights_path = root / CONFIG, root / WEIGHTS
    document = _read_document(root)
    saved_kind = document.get("kind", "")
    if kind is not None and not saved_kind.startswith(kind):
        raise CheckpointError(f"checkpoint {str(root)!r} holds {saved_kind!r:.100}, expected {kind!r}")
    weights = _read_capped(weights_path, MAX_WEIGHTS_BYTES, WEIGHTS)
    if document["format_version"] == 1:
        if hashlib.sha256(weights).hexdigest() != document.get("weights_sha256"):
            raise CheckpointError(f"{weights_path} does not match the hash recorded in {CONFIG} (truncated or altered)")
    elif _content_hash(document, weights) != document.get("content_sha256"):
        raise CheckpointError(
            f"{config_path} and {WEIGHTS} do not match the hash recorded in {CONFIG} (truncated, altered, or mixed)"
        )
    header = _parse_header(weights, weights_path)
    return Checkpoint(root, saved_kind, document["config"], header, weights)


def read_kind(path: str | os.PathLike) -> str | None:
    """The kind ``path``'s config declares (``"shield/safer"``), or None if it is no readable checkpoint.

    A cheap peek for dispatching to the right loader: only ``config.json`` is read (safely);
    the loader then verifies everything.
    """
    root = Path(path)
    if not root.is_dir():
        _recover(root)
    try:
        return _read_document(root)["kind"] if root.is_dir() else None
    except CheckpointError:
        return None


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Return ``(tensors, config, kind)`` from a directory written by ``save_checkpoint``.

    Raises ``CheckpointError`` naming the file when anything is missing, truncated, altered,
    hostile, of another format, or (when ``kind`` is given, as a prefix such as ``"shield/"``)
    of another kind. Prefer ``read_checkpoint(...).tensors(expected_state(...))``, which also
    checks the tensors against the model the config describes before building it.
    """
    checkpoint = read_checkpoint(path, kind)
    return checkpoint.tensors(), checkpoint.config, checkpoint.kind


# -- writing -------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    kind: str,
) -> Path:
    """Write ``tensors`` and ``config`` to the directory ``path`` atomically; return the path.

    ``kind`` names what is saved (``"shield/sqrl"``, ``"agent/sac"``) so a loader can refuse a
    checkpoint of the wrong kind. ``config`` must be JSON-serialisable.
    """
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise CheckpointError(f"path {str(target)!r} exists and is not a checkpoint directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    weights = save_safetensors_bytes({name: t.detach().to("cpu").contiguous() for name, t in tensors.items()})
    document: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": config}
    document = json.loads(json.dumps(document))  # what a reader will parse: tuples as lists, ...
    document["content_sha256"] = _content_hash(document, weights)
    text = json.dumps(document, indent=2, sort_keys=True).encode()
    if len(text) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"the config is {len(text)} bytes; {CONFIG} may be at most {MAX_CONFIG_BYTES} bytes")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        _write_file(staging / WEIGHTS, weights)
        _write_file(staging / CONFIG, text)
        _fsync_dir(staging)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_stale(target)
    return target


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2 = None
if sys.platform.startswith("linux"):
    try:
        _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        _renameat2.restype = ctypes.c_int
    except (OSError, AttributeError):
        _renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directories ``a`` and ``b`` (Linux); False where the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOTSUP):
        return False
    raise OSError(code, f"cannot swap {b} for {a}: {os.strerror(code)}")


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; at every instant ``target`` (or its ``.old-*`` copy) is complete."""
    if not target.exists():
        os.rename(staging, target)
        _fsync_dir(target.parent)
        return
    if not target.is_dir():
        raise CheckpointError(f"path {str(target)!r} exists and is not a checkpoint directory")
    if _exchange(staging, target):  # one atomic step; ``staging`` now holds the previous checkpoint
        _fsync_dir(target.parent)
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)  # put the previous checkpoint back where it was
        raise
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _owner_alive(name: str, marker: str, prefix: str) -> bool:
    """Whether the process that made the temporary folder ``name`` still runs (unknown: False)."""
    rest = name[len(prefix) + len(marker) :]
    pid_text = rest.split("-", 1)[0]
    if not pid_text.isdigit():
        return False  # written by an older safeshield, whose folders carry no pid
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # ours: another thread may be saving; a killed save takes the whole process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove the temporary folders of dead saves to ``target`` (a ``kill -9`` leaves them behind)."""
    prefix = f".{target.name}"
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        for marker in _STALE_MARKERS:
            if entry.name.startswith(prefix + marker) and not _owner_alive(entry.name, marker, prefix):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                break


# -- spaces --------------------------------------------------------------------------------------
def space_signature(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a space, precise enough to refuse a checkpoint from another env."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": np.asarray(space.low, dtype=np.float64).ravel().tolist(),
            "high": np.asarray(space.high, dtype=np.float64).ravel().tolist(),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).ravel().tolist(),
            "shape": list(space.shape),
            "start": np.asarray(space.start).ravel().tolist(),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).ravel().tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_signature(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_signature(sub) for sub in space.spaces]}
    return {"type": type(space).__name__, "repr": repr(space)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        # JSON stores inf as Infinity; compare floats with NaN/inf handled exactly.
        try:
            return bool(np.isclose(float(a), float(b), rtol=1e-6, atol=1e-6, equal_nan=True)) or a == b
        except (TypeError, ValueError, OverflowError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _field(signature: dict[str, Any], key: str, check: Callable[[Any], bool], expected: str) -> Any:
    value = signature.get(key)
    if not check(value):
        raise CheckpointError(f"space signature field {key!r} must be {expected}, got {value!r:.100}")
    return value


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_SPACE_SIZE


def space_from_signature(signature: Any) -> gym.Space:
    """Rebuild the Box or Discrete space a signature describes (others need the env itself)."""
    if not isinstance(signature, dict):
        raise CheckpointError(f"a space signature must be a JSON object, got {signature!r:.100}")
    if signature.get("type") == "Discrete":
        n = _field(signature, "n", lambda v: _is_count(v) and v >= 1, "a positive integer")
        start = _field(signature, "start", lambda v: type(v) is int and abs(v) < 2**62, "an integer")
        return gym.spaces.Discrete(n, start=start)
    if signature.get("type") != "Box":
        raise CheckpointError(f"cannot rebuild a {signature.get('type')!r:.50} space from a checkpoint; pass the env")
    shape = tuple(
        _field(
            signature,
            "shape",
            lambda v: isinstance(v, list) and all(_is_count(d) for d in v),
            "a list of non-negative integers",
        )
    )
    size = math.prod(shape)
    if size > MAX_SPACE_SIZE:
        raise CheckpointError(
            f"space signature field 'shape' {list(shape)} has {size} elements, at most {MAX_SPACE_SIZE}"
        )
    try:
        dtype = np.dtype(_field(signature, "dtype", lambda v: isinstance(v, str), "a dtype name"))
    except TypeError as error:
        raise CheckpointError(f"space signature field 'dtype' is not a numpy dtype: {error}") from error
    if dtype.kind not in "fiu":
        raise CheckpointError(f"space signature field 'dtype' must be a numeric dtype, got {dtype}")
    bounds = []
    for key in ("low", "high"):
        values = _field(
            signature,
            key,
            lambda v: (
                isinstance(v, list)
                and len(v) == size
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            ),
            f"a list of {size} numbers",
        )
        array = np.asarray(values, dtype=np.float64).reshape(shape)
        if np.isnan(array).any():
            raise CheckpointError(f"space signature field {key!r} holds NaN")
        bounds.append(array.astype(dtype))
    try:
        return gym.spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)
    except (ValueError, TypeError, AssertionError) as error:
        raise CheckpointError(f"the saved Box signature is not a valid space: {error}") from error


def box_from_signature(signature: dict[str, Any]) -> gym.spaces.Box:
    """Rebuild the Box a signature describes (only Boxes: other spaces need the env itself)."""
    if not isinstance(signature, dict) or signature.get("type") != "Box":
        kind = signature.get("type") if isinstance(signature, dict) else signature
        raise CheckpointError(f"cannot rebuild a {kind!r:.50} space from a checkpoint; pass the env")
    return space_from_signature(signature)


def check_space_signature(saved: dict[str, Any], space: gym.Space, name: str) -> None:
    """Raise ``CheckpointError`` if ``space`` differs from the signature saved with a checkpoint."""
    current = space_signature(space)
    if not _same(saved, current):
        raise CheckpointError(
            f"the checkpoint was saved for {name} {_describe(saved)}, but env.{name} is {_describe(current)}"
            + _next_step(saved, current, name)
        )


def _next_step(saved: Any, current: Any, name: str) -> str:
    """What to do when two Box signatures differ only in dtype or only in bounds."""
    if not (
        isinstance(saved, dict) and isinstance(current, dict) and saved.get("type") == current.get("type") == "Box"
    ):
        return ""
    if saved.get("shape") != current.get("shape"):
        return ""
    same_bounds = _same(saved.get("low"), current.get("low")) and _same(saved.get("high"), current.get("high"))
    if same_bounds and saved.get("dtype") != current.get("dtype"):
        return (
            f"; only the dtype differs: give the env a {saved.get('dtype')} {name} (e.g. "
            f"gymnasium.wrappers.{'DtypeObservation' if 'observation' in name else 'TransformAction'}) "
            "or load the checkpoint where it was trained"
        )
    if saved.get("dtype") == current.get("dtype") and not same_bounds and "action" in name:
        low, high = saved.get("low") or [0], saved.get("high") or [0]
        return (
            f"; only the bounds differ: wrap the env in gymnasium.wrappers.RescaleAction(env, "
            f"{min(low):g}, {max(high):g}) to act in the saved bounds"
        )
    return ""


def _describe(signature: Any) -> str:
    if isinstance(signature, dict) and signature.get("type") == "Box":
        try:
            low, high = signature["low"], signature["high"]
            bounds = f"[{min(low):g}, {max(high):g}]" if low else "[]"
            return f"Box(shape={tuple(signature['shape'])}, bounds {bounds}, dtype={signature['dtype']})"
        except (KeyError, TypeError, ValueError):
            pass
    return json.dumps(signature, default=str)[:200]


# -- the one load sequence -----------------------------------------------------------------------
def spaces_of(env: Any) -> tuple[gym.Space, gym.Space]:
    """``(observation_space, action_space)`` of an env (or anything with both) or of such a pair."""
    if isinstance(env, (tuple, list)):
        if len(env) != 2:
            raise TypeError(f"env must be an env or (observation_space, action_space), got {len(env)} items")
        return env[0], env[1]
    try:
        return env.observation_space, env.action_space
    except AttributeError as error:
        raise TypeError(f"env must be an env or (observation_space, action_space), got {type(env).__name__}") from error


def _state_of(thing: Any) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...]]], bool]:
    """Names, dtypes and shapes of what ``thing`` would save; exact for a module, else its modules'."""
    if isinstance(thing, torch.nn.Module):
        return {name: (t.dtype, tuple(t.shape)) for name, t in thing.state_dict().items()}, True
    state = {}
    for attribute, value in vars(thing).items():
        if isinstance(value, torch.nn.Module):
            state.update({f"{attribute}.{name}": (t.dtype, tuple(t.shape)) for name, t in value.state_dict().items()})
    return state, False


def restore(
    path: str | os.PathLike,
    env: Any,
    *,
    kind: str,
    build: Callable[[dict[str, Any], gym.Space, gym.Space], T],
    load_state: Callable[[T, dict[str, torch.Tensor], dict[str, Any]], None],
    what: str | None = None,
    required: Sequence[str] = (),
) -> T:
    """Load a checkpoint of ``kind`` (a prefix): read -> check spaces -> check weights -> rebuild -> load state.

    ``env`` (an env or ``(observation_space, action_space)``) must match the saved spaces; None
    rebuilds them from the checkpoint (Box and Discrete spaces only). ``build(document, obs_space,
    act_space)`` makes the object from the saved config document; it runs once on torch's ``meta``
    device first, and the tensors that build would hold must match the file's header (names,
    dtypes, shapes; exactly for a model, on the shared names for an agent) before it runs for real,
    so a config describing a huge network is refused without allocating it.
    ``load_state(obj, tensors, document)`` puts weights and counters back. Every failure is a
    ``CheckpointError`` naming the file (and the field, where there is one).
    """
    what = what or kind
    checkpoint = read_checkpoint(path, kind=kind)
    document, config_path = checkpoint.config, checkpoint.path / CONFIG
    missing = [key for key in (*required, "observation_space", "action_space") if key not in document]
    if missing:
        raise CheckpointError(f"{config_path} lacks {missing} (truncated or not a {what} checkpoint)")
    saved_obs, saved_act = document["observation_space"], document["action_space"]
    if env is not None:
        observation_space, action_space = spaces_of(env)
        check_space_signature(saved_obs, observation_space, "observation_space")
        check_space_signature(saved_act, action_space, "action_space")
    else:
        observation_space, action_space = space_from_signature(saved_obs), space_from_signature(saved_act)
    try:
        with torch.device("meta"):
            shadow = build(document, observation_space, action_space)
        expected, exact = _state_of(shadow)
    except CheckpointError:
        raise
    except Exception as error:  # the saved config is what failed: report it as the checkpoint's fault
        raise CheckpointError(
            f"{config_path} does not describe a valid {what}: {type(error).__name__}: {error}"
        ) from error
    del shadow
    checkpoint.check_header(expected, exact=exact)
    tensors = checkpoint.tensors()
    try:
        thing = build(document, observation_space, action_space)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{config_path} does not describe a valid {what}: {type(error).__name__}: {error}"
        ) from error
    try:
        load_state(thing, tensors, document)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{checkpoint.weights_path} does not fit this {what}: {type(error).__name__}: {error}"
        ) from error
    return thing
