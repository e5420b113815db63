"""Plumbing shared by the main job and the benchmarks: parallel jobs, one progress bar, JSON.

- ``Job``: one picklable unit of work (a top-level function, its arguments).
- ``run_jobs``: run jobs on a spawn process pool with one tqdm bar fed by the workers.
- ``progress_bar``: that bar; in a non-terminal log it prints every 30 s instead of redrawing.
- ``episode_reporter``: the callback a job passes to a training loop to advance that bar.
- ``mean_ci``: mean and 95 % Student-t half-width over seeds.
- ``summarise_episodes``: failures, failure rate and learning curves from episode records.
- ``write_json``: atomic JSON write (a crash never leaves a half-written results file).
- ``pin_threads``: one torch thread (intra- and inter-op) and one BLAS/OpenMP thread per process.

Episode records are the dicts the agents' ``learn`` loops emit: ``{step, return, length, failure}``.
Each job runs with one torch thread and one BLAS thread (``pin_threads``): the machines have two
cores and a pool of two workers.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue as queue_module
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safeshield.core.atomic import atomic_path

__all__ = [
    "Job",
    "run_jobs",
    "progress_bar",
    "episode_reporter",
    "mean_ci",
    "summarise_episodes",
    "write_json",
    "pin_threads",
]

# two-sided 95 % Student-t quantiles by sample size (n − 1 degrees of freedom)
_T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


@dataclass(frozen=True)
class Job:
    """``fn(*args, **kwargs, progress_queue=queue)``; ``fn`` must be a module-level function (picklable)."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def pin_threads(n: int = 1) -> dict[str, Any]:
    """Limit this process to ``n`` threads: torch's intra- and inter-op pools and every BLAS/OpenMP
    pool ``threadpoolctl`` finds (numpy's OpenBLAS, torch's OpenMP); returns what it set.

    Why the CLI, the workers, the tests and the benchmarks call it: the jobs are small networks
    and single env steps, and the machines they run on have few cores shared by several
    processes. Measured on a loaded 2-core machine (``benchmarks/overhead.py``, ``threads``):
    the default two threads made a batch-1 numpy critic forward 41x slower, a batch-50 torch
    forward 28x and a critic gradient step 37x than one thread did.
    """
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # set once per process, before any inter-op work: keep what is there
        pass
    pinned: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # the [experiments] extra is not installed: BLAS keeps OPENBLAS_NUM_THREADS
        pinned["blas"] = "threadpoolctl not installed"
        return pinned
    threadpool_limits(n)
    pinned["threadpools"] = {f"{pool['internal_api']}:{os.path.basename(pool['filepath'])}": pool["num_threads"]
                             for pool in threadpool_info()}
    return pinned


def _run_one(job: Job, progress_queue) -> Any:
    pin_threads(1)
    return job.fn(*job.args, **dict(job.kwargs), progress_queue=progress_queue)


def run_jobs(jobs: Sequence[Job], total_steps: int, desc: str, workers: int = 2, progress: bool = True) -> list[Any]:
    """Run ``jobs`` on ``workers`` spawn processes; return their results in job order.

    Workers report progress by putting step counts on ``progress_queue`` (see
    ``episode_reporter``), or ``(steps, {"failures": n, "return": r})`` to show live failures
    and the recent mean return on the bar; the bar's total is ``total_steps``. ``workers=0``
    runs in this process, which is what tests and debuggers want. An exception in a job is
    re-raised here.
    """
    if workers < 0:
        raise ValueError(f"run_jobs: workers must be >= 0, got {workers!r}")
    with progress_bar(total_steps, desc, progress) as bar:
        live = _LiveBar(bar)
        if workers == 0:
            results = [_run_one(job, live) for job in jobs]
        else:
            context = multiprocessing.get_context("spawn")
            with (
                _one_blas_thread_in_children(),
                context.Manager() as manager,
                ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
            ):
                progress_queue = manager.Queue()
                futures = [pool.submit(_run_one, job, progress_queue) for job in jobs]
                while not all(f.done() for f in futures):
                    try:
                        live.put(progress_queue.get(timeout=0.5))
                    except queue_module.Empty:
                        pass
                results = [f.result() for f in futures]
        bar.update(max(0, total_steps - bar.n))
    return results


def progress_bar(total: int, desc: str, enabled: bool = True, **kwargs: Any):
    """One tqdm bar over ``total`` steps (``core.progress.tqdm``: quiet in non-terminal logs)."""
    from safeshield.core.progress import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, **kwargs)


@contextlib.contextmanager
def _one_blas_thread_in_children():
    """Spawned workers read ``OPENBLAS_NUM_THREADS`` when they import numpy: one thread each, like torch.

    With two workers on two cores, BLAS's own threads only contend (the vector benchmark measured
    the batch-1 critic path 4-5x slower with OpenBLAS's default on a loaded machine). A value the
    user set is kept; this process's environment is restored afterwards.
    """
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)


class _LiveBar:
    """Advances the bar by each reported step count; ``(steps, live)`` items also update the
    postfix with the failures so far and the mean return of the last 20 episodes. It is also
    the in-process stand-in for the manager queue (``workers=0``)."""

    def __init__(self, bar):
        self.bar, self.failures, self.returns = bar, 0, []

    def put(self, item) -> None:
        if isinstance(item, tuple):
            steps, live = item
            self.failures += int(live.get("failures", 0))
            if "return" in live:
                self.returns = (self.returns + [float(live["return"])])[-20:]
            self.bar.set_postfix(
                failures=self.failures, ret=f"{np.mean(self.returns):.3g}" if self.returns else "-", refresh=False
            )
            item = steps
        self.bar.update(item)


def episode_reporter(progress_queue) -> Callable[[dict], None] | None:
    """A ``callback(record)`` that advances the shared bar by the episode's length (None without a queue)."""
    if progress_queue is None:
        return None
    return lambda record: progress_queue.put(int(record["length"]))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95 % Student-t interval (0 for a single value)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("mean_ci: values must not be empty")
    if data.size < 2:
        return float(data.mean()), 0.0
    t = _T95.get(data.size, 1.96)
    return float(data.mean()), float(t * data.std(ddof=1) / np.sqrt(data.size))


def summarise_episodes(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Episode count, failures, failure rate and the per-episode curves of one training run."""
    failures = [bool(r["failure"]) for r in records]
    return {
        "episodes": len(records),
        "failures": int(sum(failures)),
        "failure_rate": float(np.mean(failures)) if records else 0.0,
        "curve_steps": [int(r["step"]) for r in records],
        "curve_cumulative_failures": np.cumsum(failures).astype(int).tolist(),
        "curve_returns": [float(r["return"]) for r in records],
    }


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON via a temporary file and an atomic rename; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
    return path
