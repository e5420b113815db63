"""Figures of the experiment harness (matplotlib, the ``[experiments]`` extra; imported lazily).

- ``plot_learning_curves``: cumulative failures and return against env steps, mean ± band over seeds.
- ``plot_demo``: the demo's figures (fine-tuning failures and return per seed, the eps_safe sweep).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_demo", "plot_learning_curves"]


def _on_grid(records: Sequence[Mapping[str, Any]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative failures and a moving-mean return, as step functions of env steps, sampled on ``grid``."""
    if not records:
        return np.zeros_like(grid, dtype=float), np.full_like(grid, np.nan, dtype=float)
    steps = np.asarray([r["step"] for r in records], dtype=float)
    cumulative = np.cumsum([float(r["failure"]) for r in records])  # a flag, or a count of costly steps
    returns = np.asarray([r["return"] for r in records], dtype=float)
    window = max(1, returns.size // 20)
    smooth = np.convolve(returns, np.ones(window) / window, mode="full")[: returns.size]
    smooth[: window - 1] = np.cumsum(returns[: window - 1]) / np.arange(1, window)
    index = np.searchsorted(steps, grid, side="right") - 1
    seen = index >= 0
    failures_at = np.where(seen, cumulative[np.clip(index, 0, None)], 0.0)
    return_at = np.where(seen, smooth[np.clip(index, 0, None)], np.nan)
    return failures_at, return_at


def plot_learning_curves(
    curves: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: str | os.PathLike, title: str
) -> Path:
    """Two panels, cumulative failures and episode return against env steps; one line per label.

    ``curves`` maps a label (method) to one record list per seed. Lines are the mean over seeds,
    bands the min–max over seeds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    last = max((r["step"] for runs in curves.values() for run in runs for r in run), default=1)
    grid = np.linspace(0, last, 200)
    fig, (ax_fail, ax_ret) = plt.subplots(1, 2, figsize=(11, 4))
    for label, runs in curves.items():
        sampled = [_on_grid(run, grid) for run in runs]
        for ax, values in ((ax_fail, np.stack([f for f, _ in sampled])), (ax_ret, np.stack([r for _, r in sampled]))):
            with warnings.catch_warnings():  # all-NaN columns before a seed's first episode
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, low, high = np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)
            (line,) = ax.plot(grid, mean, label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    ax_fail.set(xlabel="env steps", ylabel="cumulative failures", title=title)
    ax_ret.set(xlabel="env steps", ylabel="episode return (moving mean)", title="Return")
    ax_fail.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_demo(transfer: list[dict], sweep: list[dict], out: Path) -> list[Path]:
    """The demo's figures: cumulative fine-tuning failures and return per seed, and the eps_safe sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, (ax_fail, ax_ret) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"sqrl": "tab:blue", "sac": "tab:red"}
    labelled: set[str] = set()
    for run in transfer:
        phase = run["finetune"]
        colour = colours.get(run["method"], "k")
        label = None if run["method"] in labelled else run["method"].upper()
        labelled.add(run["method"])
        ax_fail.step(
            phase["curve_steps"], phase["curve_cumulative_failures"], where="post", color=colour, alpha=0.8, label=label
        )
        returns = np.asarray(phase["curve_returns"])
        if returns.size:
            window = max(1, returns.size // 20)
            smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
            ax_ret.plot(phase["curve_steps"][window - 1 :], smooth, color=colour, alpha=0.8, label=label)
    ax_fail.set(
        xlabel="agent step (pre-training + fine-tuning)",
        ylabel="cumulative fine-tuning failures",
        title="DrunkSpiderTarget fine-tuning (noise 0.2), one line per seed",
    )
    ax_ret.set(xlabel="agent step", ylabel="episode return (moving mean)", title="Fine-tuning return")
    ax_fail.legend()
    fig.tight_layout()
    written.append(out / "cumulative_failures.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    if sweep:
        fig, axes = plt.subplots(1, len({r["eps_safe"] for r in sweep}), figsize=(11, 4), squeeze=False)
        for ax, eps in zip(axes[0], sorted({r["eps_safe"] for r in sweep})):
            ax.add_patch(plt.Rectangle((2, 0.4), 6, 5.6, color="tab:red", alpha=0.3))
            ax.add_patch(plt.Rectangle((2, -6), 6, 5.6, color="tab:red", alpha=0.3))
            ax.add_patch(plt.Circle((10, 0), 0.7, color="tab:green", alpha=0.4))
            for run in (r for r in sweep if r["eps_safe"] == eps):
                for path in run["final"]["paths"]:
                    p = np.asarray(path)
                    ax.plot(p[:, 0], p[:, 1], lw=0.8, alpha=0.6)
            ax.set(xlim=(-2, 12), ylim=(-8, 8), aspect="equal", title=f"eps_safe = {eps} (noise 0.2)")
        fig.tight_layout()
        written.append(out / "fig5_paths.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
