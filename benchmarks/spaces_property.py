"""Nightly-style property run: every Gymnasium space works or is refused clearly, over 1,000+ examples.

Run ``nice -n 5 python benchmarks/spaces_property.py [--quick] [--examples 1000]
[--out benchmarks/results/spaces_property]``.

It runs ``tests/core/test_spaces_property.py`` (hypothesis over random Box / Dict / Tuple
observation spaces, float32 / float64, infinite bounds, and Box / Discrete / MultiDiscrete /
MultiBinary action spaces, SQRL and CSC shields) with ``--examples`` examples instead of the
CI profile's 25, and records whether every property held, how many examples ran and how long
it took. ``results.json``: the command, the example count, pytest's exit status and its
hypothesis statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from safeshield.experiments.runner import write_json

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/core/test_spaces_property.py"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 examples (about a minute)")
    parser.add_argument("--examples", type=int, default=1000, help="hypothesis examples per property (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (the run is reproducible)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "spaces_property")
    args = parser.parse_args(argv)
    examples = 50 if args.quick else args.examples
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        TEST,
        "--hypothesis-show-statistics",
        f"--hypothesis-seed={args.seed}",
        "-k",
        "every_space",
    ]
    env = {
        **os.environ,
        "SAFESHIELD_HYPOTHESIS_EXAMPLES": str(examples),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = completed.stdout + completed.stderr
    statistics = [
        line.strip()
        for line in output.splitlines()
        if "passing" in line or "failing" in line or "Stopped because" in line or "phase" in line
    ]
    document = {
        "benchmark": "spaces_property",
        "examples": examples,
        "seed": args.seed,
        "command": " ".join(command[1:]),
        "exit_status": completed.returncode,
        "all_properties_held": completed.returncode == 0,
        "seconds": round(seconds, 1),
        "hypothesis_statistics": statistics,
        "tail": output.splitlines()[-15:],
    }
    print(json.dumps({k: v for k, v in document.items() if k != "tail"}, indent=1))
    write_json(args.out / "results.json", document)
    return document


if __name__ == "__main__":
    main()
