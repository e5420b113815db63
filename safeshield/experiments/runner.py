"""Plumbing shared by the main job and the benchmarks: parallel jobs, one progress bar, JSON.

- ``Job``: one picklable unit of work (a top-level function, its arguments).
- ``run_jobs``: run jobs on a spawn process pool with one tqdm bar fed by the workers; the
  shield-quality warnings of every job are gathered and reported once per kind at the end.
- ``progress_bar``: that bar; in a non-terminal log it prints every 30 s instead of redrawing.
- ``episode_reporter``: the callback a job passes to a training loop to advance that bar.
- ``mean_ci``: mean and 95 % Student-t half-width over seeds.
- ``summarise_episodes``: failures, failure rate and learning curves from episode records.
- ``write_json``: atomic JSON write (a crash never leaves a half-written results file).
- ``pin_threads``: one torch thread (intra- and inter-op) and one BLAS/OpenMP thread per process.
- ``atomic_write``: the same for any file a writer function produces (plots, profiles).
- ``TimedCase``, ``calibrate``, ``round_robin``, ``block_stats``, ``machine_info``: the timing
  harness of the overhead benchmarks (blocks of about equal length, run round-robin in shuffled
  order so that load changes on a shared machine hit every case alike; medians of block means).

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
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safeshield.core.atomic import atomic_path
from safeshield.core.quality import ShieldQualityWarning

__all__ = [
    "Job",
    "run_jobs",
    "report_quality_warnings",
    "progress_bar",
    "episode_reporter",
    "mean_ci",
    "summarise_episodes",
    "write_json",
    "pin_threads",
    "atomic_write",
    "TimedCase",
    "calibrate",
    "round_robin",
    "block_stats",
    "machine_info",
    "write_profile",
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
    pinned: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # the [experiments] extra is not installed: BLAS keeps OPENBLAS_NUM_THREADS
        pinned["blas"] = "threadpoolctl not installed"
        return pinned
    threadpool_limits(n)
    pinned["threadpools"] = {
        f"{pool['internal_api']}:{os.path.basename(pool['filepath'])}": pool["num_threads"]
        for pool in threadpool_info()
    }
    return pinned


def _run_one(job: Job, progress_queue) -> tuple[Any, list[str]]:
    """The job's result and the messages of the shield-quality warnings it raised (not shown here:
    a pool of workers would print each one through the progress bar)."""
    pin_threads(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShieldQualityWarning)
        result = job.fn(*job.args, **dict(job.kwargs), progress_queue=progress_queue)
    quality = []
    for warning in caught:
        if issubclass(warning.category, ShieldQualityWarning):
            quality.append(str(warning.message))
        else:  # every other warning is shown as it would have been
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result, quality


def report_quality_warnings(messages: Sequence[Sequence[str]], desc: str) -> None:
    """One ``ShieldQualityWarning`` per kind of message the jobs raised (numbers aside), with how many
    of the jobs raised it and the first one's text."""
    kinds: dict[str, list[str]] = {}
    for job_messages in messages:
        for key, message in {re.sub(r"\d+(\.\d+)?", "#", m): m for m in job_messages}.items():
            kinds.setdefault(key, []).append(message)
    for found in kinds.values():
        warnings.warn(
            f"{desc}: {len(found)} of {len(messages)} jobs warned (first: {found[0]})",
            ShieldQualityWarning,
            stacklevel=3,
        )


def run_jobs(jobs: Sequence[Job], total_steps: int, desc: str, workers: int = 2, progress: bool = True) -> list[Any]:
    """Run ``jobs`` on ``workers`` spawn processes; return their results in job order.

    Workers report progress by putting step counts on ``progress_queue`` (see
    ``episode_reporter``), or ``(steps, {"failures": n, "return": r})`` to show live failures
    and the recent mean return on the bar; the bar's total is ``total_steps``. ``workers=0``
    runs in this process, which is what tests and debuggers want. An exception in a job is
    re-raised here. The jobs' shield-quality warnings come once per kind when all are done
    (``report_quality_warnings``), not one per job through the bar.
    """
    if workers < 0:
        raise ValueError(f"run_jobs: workers must be >= 0, got {workers!r}")
    with progress_bar(total_steps, desc, progress) as bar:
        live = _LiveBar(bar)
        if workers == 0:
            outcomes = [_run_one(job, live) for job in jobs]
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
                outcomes = [f.result() for f in futures]
        bar.update(max(0, total_steps - bar.n))
    report_quality_warnings([quality for _, quality in outcomes], desc)
    return [result for result, _ in outcomes]


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


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON via a temporary file and an atomic rename; returns the path.
    ``indent=None`` writes it on one line: per-step data, about half the size of the indented file."""
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(data, handle, indent=indent)
    return Path(path)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """``write(tmp_path)`` into a temporary file next to ``path``, then rename it into place
    (``core.atomic.atomic_path``; for plots and profiles: anything a writer function produces)."""
    with atomic_path(path) as tmp:
        write(str(tmp))
    return Path(path)


# ------------------------------------------------------------------ timing harness (benchmarks)


@dataclass
class TimedCase:
    """One thing a benchmark times: ``run(n)`` performs ``n`` steps and returns (wall, thread CPU) seconds.

    ``check`` (optional) verifies after timing that the case stayed in its regime.
    """

    name: str
    run: Callable[[int], tuple[float, float]]
    block_seconds: float
    steps: int = 0  # per block, set by ``calibrate``
    blocks: list[float] = field(default_factory=list)  # wall: mean seconds per step, one per block
    cpu_blocks: list[float] = field(default_factory=list)  # the same in this thread's CPU time
    check: Callable[[], dict[str, Any]] | None = None


def calibrate(case: TimedCase, warm_steps: int, min_steps: int, max_steps: int) -> None:
    """Warm ``case`` up and choose its steps per block so that a block lasts about ``block_seconds``."""
    import time

    case.run(warm_steps)
    probe = max(min_steps, 5)
    start = time.perf_counter()  # the whole call: untimed work inside a block (resets) counts here
    case.run(probe)
    per_step = (time.perf_counter() - start) / probe
    case.steps = int(min(max_steps, max(min_steps, round(case.block_seconds / max(per_step, 1e-9)))))


def round_robin(cases: Sequence[TimedCase], blocks: int, rng, on_block: Callable[[str], None] | None = None) -> None:
    """Run every case's blocks round-robin, in a freshly shuffled order each round (``rng``: a
    ``random.Random``), so a change of load on a shared machine hits every case alike."""
    for _ in range(blocks):
        order = list(cases)
        rng.shuffle(order)
        for case in order:
            wall, cpu = case.run(case.steps)
            case.blocks.append(wall / case.steps)
            case.cpu_blocks.append(cpu / case.steps)
            if on_block is not None:
                on_block(case.name)


def block_stats(blocks: Sequence[float]) -> dict[str, float]:
    """Median and quartiles (µs) of a case's block means; ``rel_iqr`` says how noisy it was."""
    import statistics

    us = sorted(b * 1e6 for b in blocks)
    median = statistics.median(us)
    q1, _, q3 = statistics.quantiles(us, n=4) if len(us) >= 4 else (us[0], None, us[-1])
    return {
        "median_us": median,
        "q1_us": q1,
        "q3_us": q3,
        "rel_iqr": (q3 - q1) / median if median > 0 else float("nan"),
    }


def machine_info() -> dict[str, Any]:
    """CPU, core counts, thread settings and library versions, for a benchmark's JSON."""
    import platform

    import torch

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = {}
    for name in ("gymnasium", "mujoco", "stable_baselines3", "safeshield"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - optional dependency
            versions[name] = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "numpy": np.__version__,
        **versions,
    }


def write_profile(profiler, path: str | os.PathLike, title: str) -> Path:
    """Write a ``cProfile.Profile``'s top functions (by own and by cumulative time) to ``path``,
    atomically, with file names relative to the repository and site-packages."""
    import io
    import pstats
    import site
    import sys

    buffer = io.StringIO()
    buffer.write(f"# cProfile: {title}\n")
    buffer.write("# (cProfile inflates Python-call-heavy code; read it for where time goes, not for totals)\n")
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    text = buffer.getvalue()
    for prefix in sorted({*site.getsitepackages(), os.getcwd(), sys.base_prefix}, key=len, reverse=True):
        text = text.replace(prefix.rstrip("/") + "/", "")

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write(text)

    return atomic_write(path, write)
