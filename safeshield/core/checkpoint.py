"""Pickle-free, atomic checkpoints: safetensors weights + a JSON config.

- ``save_checkpoint``: write ``weights.safetensors`` + ``config.json`` into a directory, atomically.
- ``load_checkpoint``: read them back, checking format, integrity (SHA-256) and kind.
- ``space_signature`` / ``check_space_signature``: describe a Gymnasium space in JSON and refuse
  to load a checkpoint into an environment whose spaces differ.
- ``restore``: the one load sequence every model and agent uses (read -> check spaces ->
  rebuild -> load state), each failure raised as ``CheckpointError``; behind every
  ``Thing.load(path, env=None, *, seed=None)``.
- ``spaces_of``: ``(observation_space, action_space)`` of an env or of such a pair.
- ``CheckpointError``: raised for every unreadable, truncated or mismatched checkpoint.

Why a directory swap: the weights and the config must change together. Both files are
written into a fresh temporary directory next to the target, which then replaces the old
checkpoint with two renames; a crash at any point leaves either the old or the new
checkpoint complete on disk (the old one possibly under ``<path>.old-*``), never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "space_signature",
    "check_space_signature",
    "box_from_signature",
    "restore",
    "spaces_of",
]

T = TypeVar("T")

FORMAT = "safeshield-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit what it is being loaded into."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
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
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        weights = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
        save_file(weights, str(staging / WEIGHTS))
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "weights_sha256": _sha256(staging / WEIGHTS),
            "config": config,
        }
        with open(staging / CONFIG, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(staging)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; the old checkpoint survives until the new one is in place."""
    old = None
    if target.exists():
        if not target.is_dir():
            raise CheckpointError(f"path {str(target)!r} exists and is not a checkpoint directory")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)  # put the previous checkpoint back where it was
        raise
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Return ``(tensors, config, kind)`` from a directory written by ``save_checkpoint``.

    Raises ``CheckpointError`` naming the file when anything is missing, truncated, altered, of
    another format, or (when ``kind`` is given, as a prefix such as ``"shield/"``) of another kind.
    """
    root = Path(path)
    config_path, weights_path = root / CONFIG, root / WEIGHTS
    if not root.is_dir():
        raise CheckpointError(f"path {str(root)!r} is not a checkpoint directory (expected {CONFIG} + {WEIGHTS})")
    for required in (config_path, weights_path):
        if not required.is_file():
            raise CheckpointError(f"checkpoint {str(root)!r} is missing {required.name}")
    try:
        with open(config_path) as handle:
            document = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path} is not valid JSON (truncated or corrupt): {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT or "config" not in document:
        raise CheckpointError(f"{config_path} is not a safeshield checkpoint (missing format={FORMAT!r})")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format_version={document.get('format_version')!r}; this safeshield reads {FORMAT_VERSION}"
        )
    saved_kind = str(document.get("kind", ""))
    if kind is not None and not saved_kind.startswith(kind):
        raise CheckpointError(f"checkpoint {str(root)!r} holds {saved_kind!r}, expected {kind!r}")
    if _sha256(weights_path) != document.get("weights_sha256"):
        raise CheckpointError(f"{weights_path} does not match the hash recorded in {CONFIG} (truncated or altered)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} cannot be read: {error}") from error
    return tensors, document["config"], saved_kind


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
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_signature(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_signature(sub) for sub in space.spaces]}
    return {"type": type(space).__name__, "repr": repr(space)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        # JSON stores inf as Infinity; compare floats with NaN/inf handled exactly.
        return bool(np.isclose(float(a), float(b), rtol=1e-6, atol=1e-6, equal_nan=True)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def box_from_signature(signature: dict[str, Any]) -> gym.spaces.Box:
    """Rebuild the Box a signature describes (only Boxes: other spaces need the env itself)."""
    if signature.get("type") != "Box":
        raise CheckpointError(f"cannot rebuild a {signature.get('type')!r} space from a checkpoint; pass the env")
    shape, dtype = tuple(signature["shape"]), np.dtype(signature["dtype"])
    low = np.asarray(signature["low"], dtype=np.float64).reshape(shape).astype(dtype)
    high = np.asarray(signature["high"], dtype=np.float64).reshape(shape).astype(dtype)
    return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)


def check_space_signature(saved: dict[str, Any], space: gym.Space, name: str) -> None:
    """Raise ``CheckpointError`` if ``space`` differs from the signature saved with a checkpoint."""
    current = space_signature(space)
    if not _same(saved, current):
        raise CheckpointError(
            f"the checkpoint was saved for {name} {_describe(saved)}, but env.{name} is {_describe(current)}"
        )


def _describe(signature: dict[str, Any]) -> str:
    if signature.get("type") == "Box":
        low, high = signature["low"], signature["high"]
        bounds = f"[{min(low):g}, {max(high):g}]" if low else "[]"
        return f"Box(shape={tuple(signature['shape'])}, bounds {bounds}, dtype={signature['dtype']})"
    return json.dumps(signature)[:200]


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
    """Load a checkpoint of ``kind`` (a prefix): read -> check spaces -> rebuild -> load state.

    ``env`` (an env or ``(observation_space, action_space)``) must match the saved spaces; None
    rebuilds them from the checkpoint (Box spaces only). ``build(document, obs_space, act_space)``
    makes the object from the saved config document; ``load_state(obj, tensors, document)`` puts
    weights and counters back. Every failure is a ``CheckpointError`` naming ``path``.
    """
    what = what or kind
    tensors, document, _ = load_checkpoint(path, kind=kind)
    missing = [key for key in (*required, "observation_space", "action_space") if key not in document]
    if missing:
        raise CheckpointError(f"{str(path)!r}/config.json lacks {missing} (truncated or not a {what} checkpoint)")
    saved_obs, saved_act = document["observation_space"], document["action_space"]
    if env is not None:
        observation_space, action_space = spaces_of(env)
        check_space_signature(saved_obs, observation_space, "observation_space")
        check_space_signature(saved_act, action_space, "action_space")
    else:
        observation_space, action_space = box_from_signature(saved_obs), box_from_signature(saved_act)
    try:
        thing = build(document, observation_space, action_space)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} has an invalid {what} config: {error}") from error
    try:
        load_state(thing, tensors, document)
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"weights in {str(path)!r} do not fit this {what}: {error}") from error
    return thing
