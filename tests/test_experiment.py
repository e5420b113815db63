"""The shared experiment plumbing: job order, progress, statistics, atomic JSON, plots."""

import json
import warnings

import numpy as np
import pytest

from safeshield.core.quality import ShieldQualityWarning
from safeshield.experiments.plots import plot_learning_curves
from safeshield.experiments.runner import Job, mean_ci, run_jobs, summarise_episodes, write_json


def _square(x, *, offset=0, progress_queue=None):
    if progress_queue is not None:
        progress_queue.put(3)
    return x * x + offset


def _records(failures):
    return [{"step": 10 * (i + 1), "return": float(i), "length": 10, "failure": f} for i, f in enumerate(failures)]


def test_run_jobs_keeps_job_order_in_process():
    jobs = [Job(_square, (x,), {"offset": 1}) for x in (3, 1, 2)]
    assert run_jobs(jobs, total_steps=9, desc="t", workers=0, progress=False) == [10, 2, 5]


def test_run_jobs_on_a_process_pool():
    assert run_jobs([Job(_square, (4,)), Job(_square, (5,))], 6, "t", workers=2, progress=False) == [16, 25]


def test_mean_ci_matches_student_t():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert mean_ci([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError, match="values"):
        mean_ci([])


def test_summarise_episodes_counts_and_curves():
    summary = summarise_episodes(_records([False, True, True, False]))
    assert summary["failures"] == 2 and summary["failure_rate"] == 0.5
    assert summary["curve_cumulative_failures"] == [0, 1, 2, 2]
    assert summary["curve_steps"] == [10, 20, 30, 40]


def test_write_json_is_atomic_and_leaves_no_temporaries(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file survives a failed write
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_write_json_without_indent_writes_one_line_that_reads_back(tmp_path):
    data = {"risk": [0.1, 0.25, 0.5], "label": [0, 1, 1]}
    compact = write_json(tmp_path / "compact.json", data, indent=None)
    indented = write_json(tmp_path / "indented.json", data)
    assert json.loads(compact.read_text()) == data == json.loads(indented.read_text())
    assert compact.read_text().count("\n") == 0 < indented.read_text().count("\n")


def test_plot_learning_curves_writes_a_png(tmp_path):
    curves = {"sqrl": [_records([False, True]), _records([True])], "sac": [[]]}
    path = plot_learning_curves(curves, tmp_path / "c.png", "title")
    assert path.stat().st_size > 1000


def _blas_threads(progress_queue=None):
    import os

    return os.environ.get("OPENBLAS_NUM_THREADS")


def test_workers_get_one_blas_thread_and_the_parent_env_is_restored(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert run_jobs([Job(_blas_threads)], 0, "t", workers=1, progress=False) == ["1"]
    import os

    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_pin_threads_limits_torch_and_blas_and_says_so():
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from safeshield.experiments.runner import pin_threads

    with threadpool_limits(2):  # restored on exit, whatever pin_threads did inside
        before = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            pinned = pin_threads(1)
            assert torch.get_num_threads() == 1 and pinned["torch_threads"] == 1
            blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and all(pool["num_threads"] == 1 for pool in blas)
            assert all(value == 1 for value in pinned["threadpools"].values())
        finally:
            torch.set_num_threads(before)


def _warning_job(x, progress_queue=None):
    warnings.warn(f"the shield's risk is uninformative: ROC AUC 0.{x} < 0.6", ShieldQualityWarning, stacklevel=1)
    if x == 1:
        warnings.warn("the shield fell back on 90% of its last 500 steps", ShieldQualityWarning, stacklevel=1)
    warnings.warn("not a shield warning", UserWarning, stacklevel=1)
    return x


def test_run_jobs_reports_each_kind_of_quality_warning_once_with_its_count():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_jobs([Job(_warning_job, (x,)) for x in (1, 2, 3)], 3, "demo", workers=0, progress=False) == [1, 2, 3]
    quality = [str(w.message) for w in caught if issubclass(w.category, ShieldQualityWarning)]
    assert quality == [
        "demo: 3 of 3 jobs warned (first: the shield's risk is uninformative: ROC AUC 0.1 < 0.6)",
        "demo: 1 of 3 jobs warned (first: the shield fell back on 90% of its last 500 steps)",
    ]
    assert sum(str(w.message) == "not a shield warning" for w in caught) == 3  # other warnings pass through
