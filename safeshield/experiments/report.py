"""``safeshield report`` and ``safeshield plot``: compare ``safeshield train`` runs on one page.

- ``load_run``: a run folder (``run.json`` + each seed's episode log) as a ``Run``.
- ``plot_metric``: one figure of one metric against env steps, a line per run, mean and 95 %
  CI band over seeds (``cumulative_failures``, ``return``, ``intervention_rate``, ``fallback_rate``).
- ``write_report``: ``report.md`` and a self-contained ``report.html`` (figures embedded):
  a comparison table, the figures, then a section per run (settings, per-seed table, the
  shield-quality report where the run has one, warnings, the exact command).

A run with ``method = none`` on the same env is the baseline the others' failures are divided
by; ratios from smoke runs (few steps or seeds) are printed with that caveat.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safeshield.experiments.runlog import read_episodes
from safeshield.experiments.train import SMOKE_SEEDS, SMOKE_STEPS, is_smoke, read_run

__all__ = ["METRICS", "Run", "load_run", "plot_metric", "write_report"]

METRICS = {
    "cumulative_failures": "cumulative failed episodes",
    "return": "episode return (moving mean)",
    "intervention_rate": "interventions per step (moving mean)",
    "fallback_rate": "fallbacks per step (moving mean)",
}

_T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


@dataclass
class Run:
    """One run folder: its ``run.json`` and each seed's episode records."""

    folder: Path
    document: dict[str, Any]
    seeds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)

    @property
    def config(self) -> dict[str, Any]:
        return self.document["config"]

    @property
    def smoke(self) -> bool:
        return is_smoke(self.config["steps"], self.config["seeds"])

    @property
    def method(self) -> str:
        """The method, marked when its shield only learned and reported (``--shadow``)."""
        return self.config["method"] + (" (shadow)" if self.config.get("shadow") else "")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.method}, {self.config['agent']})"

    def seed_summary(self, seed: int) -> dict[str, Any]:
        path = self.folder / f"seed{seed}" / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}


def load_run(folder: str | os.PathLike) -> Run:
    """Read a run folder; ``ValueError`` if it is not one (or no seed has finished an episode)."""
    folder = Path(folder)
    run = Run(folder, read_run(folder))
    for seed in range(run.config["seeds"]):
        records = read_episodes(folder / f"seed{seed}")
        if records:
            run.seeds[seed] = records
    if not run.seeds:
        raise ValueError(f"{str(folder)!r}: no seed has finished an episode yet")
    return run


# -- curves -------------------------------------------------------------------------------------------------
def _seed_curve(records: list[dict[str, Any]], metric: str, grid: np.ndarray) -> np.ndarray:
    steps = np.asarray([r["step"] for r in records], dtype=float)
    if metric == "cumulative_failures":
        values = np.cumsum([bool(r["failure"]) for r in records]).astype(float)
        before = 0.0
    else:
        if metric == "return":
            raw = np.asarray([r["return"] for r in records], dtype=float)
        else:
            key = "interventions" if metric == "intervention_rate" else "fallbacks"
            raw = np.asarray([r.get(key, 0) / max(1, r["length"]) for r in records], dtype=float)
        window = max(1, raw.size // 20)
        values = np.convolve(raw, np.ones(window) / window, mode="full")[: raw.size]
        values[: window - 1] = np.cumsum(raw[: window - 1]) / np.arange(1, window)
        before = math.nan
    index = np.searchsorted(steps, grid, side="right") - 1
    return np.where(index >= 0, values[np.clip(index, 0, None)], before)


def _mean_band(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(rows, axis=0)
        n = np.sum(~np.isnan(rows), axis=0)
        std = np.nanstd(rows, axis=0, ddof=1) if rows.shape[0] > 1 else np.zeros(rows.shape[1])
    t = np.array([_T95.get(int(k), 1.96) for k in n])
    half = np.where(n > 1, t * np.nan_to_num(std) / np.sqrt(np.maximum(n, 1)), 0.0)
    return mean, half


def plot_metric(runs: list[Run], metric: str, path: str | os.PathLike, title: str | None = None) -> Path:
    """One panel: ``metric`` against env steps, one line per run (mean over seeds, 95 % CI band)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    last = max(r["step"] for run in runs for records in run.seeds.values() for r in records)
    grid = np.linspace(0, last, 200)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in runs:
        rows = np.stack([_seed_curve(records, metric, grid) for records in run.seeds.values()])
        mean, half = _mean_band(rows)
        (line,) = ax.plot(grid, mean, label=f"{run.label}, {len(run.seeds)} seed(s)")
        ax.fill_between(grid, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
        pretrain = [r["step"] for records in run.seeds.values() for r in records if r["phase"] == "pretrain"]
        if pretrain:
            ax.axvline(max(pretrain), color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(xlabel="env steps", ylabel=METRICS[metric], title=title or METRICS[metric])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- numbers ------------------------------------------------------------------------------------------------
def _ci(values: list[float]) -> tuple[float, float]:
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), 0.0
    return float(data.mean()), float(_T95.get(data.size, 1.96) * data.std(ddof=1) / math.sqrt(data.size))


def _fmt(pair: tuple[float, float], digits: int = 3) -> str:
    mean, half = pair
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}g} ± {half:.2g}" if half else f"{mean:.{digits}g}"


def _per_seed(run: Run, phase: str = "train") -> list[dict[str, Any]]:
    rows = []
    for seed, records in sorted(run.seeds.items()):
        mine = [r for r in records if r["phase"] == phase]
        steps = sum(r["length"] for r in mine)
        tail = mine[-max(1, len(mine) // 4) :]
        summary = run.seed_summary(seed)
        rows.append(
            {
                "seed": seed,
                "episodes": len(mine),
                "steps": steps,
                "failures": sum(bool(r["failure"]) for r in mine),
                "final_return": float(np.mean([r["return"] for r in tail])) if tail else math.nan,
                "intervention_rate": sum(r.get("interventions", 0) for r in mine) / max(1, steps),
                "fallback_rate": sum(r.get("fallbacks", 0) for r in mine) / max(1, steps),
                "eval": summary.get("eval"),
            }
        )
    return rows


def _table_row(run: Run) -> dict[str, str]:
    rows = _per_seed(run)
    evals = [row["eval"] for row in rows if row["eval"]]
    shielded = run.config["method"] != "none"
    return {
        "run": run.name,
        "method": run.method,
        "agent": run.config["agent"],
        "seeds": str(len(rows)),
        "training failures": _fmt(_ci([row["failures"] for row in rows])),
        "failures / 1k steps": _fmt(_ci([1000 * row["failures"] / max(1, row["steps"]) for row in rows])),
        "final return": _fmt(_ci([row["final_return"] for row in rows])),
        "intervention rate": _fmt(_ci([row["intervention_rate"] for row in rows]), 2) if shielded else "–",
        "fallback rate": _fmt(_ci([row["fallback_rate"] for row in rows]), 2) if shielded else "–",
        "eval return": _fmt(_ci([e["mean_return"] for e in evals])) if evals else "–",
        "eval failure rate": _fmt(_ci([e["failure_rate"] for e in evals]), 2) if evals else "–",
    }


def _ratios(runs: list[Run]) -> list[str]:
    """One line per shielded run that has an unshielded baseline on the same env."""
    lines = []
    for base in (run for run in runs if run.config["method"] == "none"):
        base_failures = np.mean([row["failures"] for row in _per_seed(base)])
        for run in runs:
            if run.config["method"] == "none" or run.config["env"] != base.config["env"]:
                continue
            failures = np.mean([row["failures"] for row in _per_seed(run)])
            ratio = f"{failures / base_failures:.2f}x" if base_failures else "n/a (the baseline never failed)"
            caveat = " (smoke run: not evidence)" if run.smoke or base.smoke else ""
            caveat += " (shadow: its shield never acted)" if run.config.get("shadow") else ""
            lines.append(f"{run.name} fails {ratio} as often as {base.name} while training{caveat}")
    return lines


def _quality(run: Run) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for seed in run.seeds:
        path = run.folder / f"seed{seed}" / "quality.json"
        if path.exists():
            found.append((seed, json.loads(path.read_text())))
    return found


# -- the page -----------------------------------------------------------------------------------------------
def write_report(folders: list[str | os.PathLike], out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``out/report.md``, ``out/report.html`` and the figures; return the two pages' paths."""
    runs = [load_run(folder) for folder in folders]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        metric: plot_metric(runs, metric, out / f"{metric}.png")
        for metric in METRICS
        if metric in ("cumulative_failures", "return") or any(r.config["method"] != "none" for r in runs)
    }
    table = [_table_row(run) for run in runs]
    md = ["# safeshield report", ""]
    if any(run.smoke for run in runs):
        md += [
            f"> **Smoke run(s)** marked below (fewer than {SMOKE_SEEDS} seeds or {SMOKE_STEPS} training steps): "
            "their ratios are not evidence.",
            "",
        ]
    md += _md_table(table) + [""]
    ratios = _ratios(runs)
    if ratios:
        md += ["## Failures against the unshielded baseline", ""] + [f"- {line}" for line in ratios] + [""]
    md += ["## Curves", "", "Mean over seeds, band: 95 % CI (Student t). Dotted line: end of pre-training.", ""]
    md += [f"![{METRICS[m]}]({p.name})" for m, p in figures.items()] + [""]
    for run in runs:
        md += _run_section(run)
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(md, figures), encoding="utf-8")
    return md_path, html_path


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    return ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] + [
        "| " + " | ".join(row[k] for k in keys) + " |" for row in rows
    ]


def _run_section(run: Run) -> list[str]:
    config = run.config
    phases = " -> ".join(
        f"{env} ({steps} steps)"
        for env, steps in (
            [(config["pretrain_env"], config["pretrain_steps"] or config["steps"])] if config["pretrain_env"] else []
        )
        + [(config["env"], config["steps"])]
    )
    lines = [
        f"## Run {run.name}" + (" (smoke run)" if run.smoke else ""),
        "",
        f"- env: {phases}",
        f"- method: {run.method}, agent: {config['agent']}, indicator: {config['indicator'] or 'declared by the env'}",
        f"- folder: `{run.folder}`",
    ]
    if config.get("shield"):
        lines.append("- shield options: " + ", ".join(f"{k}={v}" for k, v in sorted(config["shield"].items())))
    if config.get("agent_options"):
        lines.append("- agent options: " + ", ".join(f"{k}={v}" for k, v in sorted(config["agent_options"].items())))
    lines += [
        "",
        "| seed | episodes | failures | final return | intervention rate | fallback rate | eval return "
        "| eval failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in _per_seed(run):
        ev = row["eval"] or {}
        lines.append(
            f"| {row['seed']} | {row['episodes']} | {row['failures']} | {row['final_return']:.3g} | "
            f"{row['intervention_rate']:.2f} | {row['fallback_rate']:.2f} | "
            f"{ev.get('mean_return', math.nan):.3g} | {ev.get('failures', '–')}/{ev.get('episodes', '–')} |"
        )
    quality = _quality(run)
    if quality:
        lines += ["", "### Shield quality", ""]
        for seed, report in quality:
            scalars = {k: v for k, v in report.items() if isinstance(v, (int, float, str, bool)) and v is not None}
            lines.append(
                f"- seed {seed}: "
                + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items())
            )
            for event in report.get("warnings") or []:  # the quality monitor's warnings and withdrawals
                value = ", ".join(f"{k} {v:.3g}" for k, v in event.items() if k not in ("kind", "step"))
                lines.append(f"  - step {event['step']}: {event['kind'].replace('_', ' ')} ({value})")
    notes = run.document.get("warnings") or []
    if notes:
        lines += ["", "### Warnings", ""] + [f"- {note}" for note in notes]
    if run.document.get("command"):
        lines += ["", "Command:", "", "```", run.document["command"], "```"]
    return lines + [""]


def _html(markdown_lines: list[str], figures: dict[str, Path]) -> str:
    """A small Markdown-to-HTML pass for exactly what ``write_report`` writes; figures inlined."""
    body, in_table, in_code, in_list = [], False, False, False
    images = {p.name: base64.b64encode(p.read_bytes()).decode() for p in figures.values()}

    def close_blocks():
        nonlocal in_table, in_list
        if in_table:
            body.append("</table>")
            in_table = False
        if in_list:
            body.append("</ul>")
            in_list = False

    def inline(text: str) -> str:
        text = html.escape(text)
        parts = text.split("`")
        text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        parts = text.split("**")
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))

    for line in markdown_lines:
        if line.startswith("```"):
            close_blocks()
            body.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
        elif in_code:
            body.append(html.escape(line))
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                close_blocks()
                body.append("<table>")
                in_table = True
                body.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells) + "</tr>")
        elif line.startswith("- "):
            if not in_list:
                close_blocks()
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line.startswith("!["):
            close_blocks()
            name = line[line.rindex("(") + 1 : -1]
            body.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{images[name]}">')
        elif line.startswith("#"):
            close_blocks()
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("> "):
            close_blocks()
            body.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.strip():
            close_blocks()
            body.append(f"<p>{inline(line)}</p>")
        else:
            close_blocks()
    close_blocks()
    style = (
        "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:right}th{background:#f3f3f3}img{max-width:48%;margin:.5%}pre{background:#f6f6f6;"
        "padding:.6em;overflow-x:auto}blockquote{border-left:4px solid #e0a000;margin:1em 0;padding:.3em 1em}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>safeshield report</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
