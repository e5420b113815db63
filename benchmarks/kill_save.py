"""``kill -9`` during ``save``: does the path always hold one complete checkpoint, and does debris go?

Run ``python benchmarks/kill_save.py [--quick] [--kills 50] [--out benchmarks/results/kill_save]``.

For each swap (the atomic ``renameat2(RENAME_EXCHANGE)`` and the two-rename fallback), a
forked child process saves checkpoint ``i`` (a 400 kB tensor filled with ``i``, ``{"i": i}``
in the config) in a loop and is killed with SIGKILL at a random instant (20-500 ms after it
starts); ``--kills`` times. After every kill
the parent loads the path and checks it is one complete checkpoint (the tensor equals the
config's ``i``), counts the temporary folders the dead child left, and whether the path had
to be recovered from its ``.old-*`` copy. A final save must leave only the checkpoint.

Writes ``results.json``: per swap, kills, complete loads, kills that landed mid-save (a
temporary folder was left), recoveries, the largest number of temporary folders seen at once,
and what was left after the final save.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from safeshield.experiments.runner import write_json

SIZE = 100_000
KIND = "bench/kill"


def save_forever(path: str, start: int) -> None:
    """The child: save checkpoint ``start``, ``start + 1``, ... until killed."""
    import torch

    from safeshield.core import checkpoint as module

    i = start
    while True:
        module.save_checkpoint(path, {"w": torch.full((SIZE,), float(i))}, {"i": i}, kind=KIND)
        i += 1


def check_complete(path: Path) -> int:
    import torch

    from safeshield.core.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path, KIND)
    i = checkpoint.config["i"]
    values = checkpoint.tensors({"w": (torch.float32, (SIZE,))})["w"]
    if not bool(torch.all(values == float(i))):
        raise AssertionError(f"checkpoint {i} holds weights of another save")
    return i


def run_swap(swap: str, kills: int, seed: int, workdir: Path) -> dict:
    from safeshield.core import checkpoint as module

    exchange = module._exchange
    if swap == "two-renames":
        module._exchange = lambda a, b: False
    try:
        return _kill_loop(module, swap, kills, seed, workdir)
    finally:
        module._exchange = exchange


def _kill_loop(module, swap: str, kills: int, seed: int, workdir: Path) -> dict:
    import torch

    torch.set_num_threads(1)  # a forked child of a multi-threaded torch can deadlock in its first op
    rng = np.random.default_rng(seed)
    path = workdir / f"ckpt-{swap}"
    module.save_checkpoint(path, {"w": torch.full((SIZE,), 0.0)}, {"i": 0}, kind=KIND)
    context = multiprocessing.get_context("fork")  # a real process, killed mid-save; no import cost per kill
    complete = recovered = mid_save = max_debris = 0
    seen = []
    for k in range(kills):
        child = context.Process(target=save_forever, args=(str(path), 1000 * (k + 1)))
        child.start()
        time.sleep(float(rng.uniform(0.02, 0.5)))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        debris = sum(1 for p in workdir.iterdir() if p.name.startswith(f".{path.name}."))
        mid_save += debris > 0
        max_debris = max(max_debris, debris)
        recovered += not path.is_dir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            seen.append(check_complete(path))
        complete += 1
    module.save_checkpoint(path, {"w": torch.full((SIZE,), -1.0)}, {"i": -1}, kind=KIND)
    left = sorted(
        p.name for p in workdir.iterdir() if p.name.startswith(path.name) or p.name.startswith(f".{path.name}.")
    )
    return {
        "kills": kills,
        "complete_loads": complete,
        "distinct_checkpoints_loaded": len(set(seen)),
        "kills_mid_save": int(mid_save),
        "recovered_from_old": int(recovered),
        "max_temp_folders_at_once": int(max_debris),
        "left_after_final_save": left,
        "only_the_checkpoint_left": left == [path.name],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 kills per swap (a smoke run, a few seconds)")
    parser.add_argument("--kills", type=int, default=50, help="kills per swap (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kill_save")
    args = parser.parse_args(argv)
    kills = 5 if args.quick else args.kills
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for swap in ("atomic-exchange", "two-renames"):
            workdir = Path(tmp) / swap
            workdir.mkdir()
            start = time.perf_counter()
            results[swap] = run_swap(swap, kills, args.seed, workdir)
            results[swap]["seconds"] = round(time.perf_counter() - start, 1)
            print(swap, json.dumps(results[swap]))
    document = {
        "benchmark": "kill_save",
        "size_floats": SIZE,
        "seed": args.seed,
        "quick": args.quick,
        "results": results,
        "every_load_complete": all(r["complete_loads"] == r["kills"] for r in results.values()),
        "no_debris_after_final_save": all(r["only_the_checkpoint_left"] for r in results.values()),
    }
    write_json(args.out / "results.json", document)
    return document


if __name__ == "__main__":
    main()
