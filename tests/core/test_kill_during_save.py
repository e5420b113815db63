"""``kill -9`` during ``save``: the path always holds one complete checkpoint; debris goes away.

A forked child saves checkpoint ``i`` (a tensor filled with ``i`` and ``{"i": i}`` in the config)
in a loop and is killed at a random instant, many times. After every kill, loading the path must
give one complete checkpoint (the tensor's value equals the config's ``i``); the next save (by
the next child) removes the temporary folders of the dead ones, so after the final save only
the checkpoint is left. Both swaps are exercised: the atomic exchange (Linux) and the
two-rename fallback, whose kill window ``load`` repairs from the ``.old-*`` copy.

``benchmarks/kill_save.py`` runs the same loop 50+ times per swap and records what it saw.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from safeshield.core import checkpoint as checkpoint_module
from safeshield.core.checkpoint import read_checkpoint, save_checkpoint

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork + SIGKILL loop (Linux)")
KIND = "test/kill"
SIZE = 100_000  # 400 kB of weights: a save takes long enough for kills to land inside it


def save_forever(path: str, start: int) -> None:
    i = start
    while True:
        save_checkpoint(path, {"w": torch.full((SIZE,), float(i))}, {"i": i}, kind=KIND)
        i += 1


def check_complete(path) -> int:
    """Load ``path``; raise unless it is one complete checkpoint; return its index."""
    checkpoint = read_checkpoint(path, KIND)
    i = checkpoint.config["i"]
    values = checkpoint.tensors({"w": (torch.float32, (SIZE,))})["w"]
    assert torch.all(values == float(i)), f"checkpoint {i} holds weights of another save"
    return i


def kill_loop(path, kills: int, seed: int) -> dict:
    """Save in a forked child, kill it at a random instant, check the path; ``kills`` times."""
    rng = np.random.default_rng(seed)
    context = multiprocessing.get_context("fork")
    save_checkpoint(path, {"w": torch.full((SIZE,), 0.0)}, {"i": 0}, kind=KIND)
    seen, recovered, debris = [], 0, 0
    for k in range(kills):
        child = context.Process(target=save_forever, args=(str(path), 1000 * (k + 1)))
        child.start()
        time.sleep(float(rng.uniform(0.005, 0.08)))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        debris += sum(1 for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))
        if not path.is_dir():
            recovered += 1
        seen.append(check_complete(path))
    save_checkpoint(path, {"w": torch.full((SIZE,), -1.0)}, {"i": -1}, kind=KIND)
    left = sorted(p.name for p in path.parent.iterdir())
    return {"seen": seen, "recovered": recovered, "debris_after_kills": debris, "left": left}


@pytest.mark.parametrize("swap", ["atomic-exchange", "two-renames"])
def test_every_kill_leaves_one_complete_checkpoint_and_no_debris(tmp_path, monkeypatch, swap):
    if swap == "two-renames":
        monkeypatch.setattr(checkpoint_module, "_exchange", lambda a, b: False)
    path = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "recovered ..." is expected with two renames
        result = kill_loop(path, kills=12, seed=0)
    assert len(result["seen"]) == 12
    assert result["debris_after_kills"] > 0, "no kill landed inside a save: the test would prove nothing"
    assert result["left"] == ["ckpt"]
    assert check_complete(path) == -1
