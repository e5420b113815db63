"""``safeshield train / eval / report / plot`` end to end at smoke scale, and their argument errors.

The user promise (issue 18): from the CLI alone, a shielded and an unshielded run of the same
agent on the same seeds, a TensorBoard view with the shield's metrics, and one report page that
compares them; every argument error before a worker starts.
"""

from __future__ import annotations

import json

import pytest

from safeshield.core.metrics import METRICS
from safeshield.experiments.cli import main

SPIDER = "safeshield/DrunkSpider-v0"
TINY = [
    "--set",
    "shield.hidden=[16]",
    "--set",
    "shield.learning_starts=40",
    "--set",
    "shield.batch_size=16",
    # a 150-step run never finishes the default warm-up, and a threshold of +inf is not logged
    "--set",
    "shield.warmup_failures=0",
    "--set",
    "shield.warmup_updates=0",
]
TINY_SAC = ["--set", "agent.hidden=[16]", "--set", "agent.learning_starts=40", "--set", "agent.batch_size=16"]


def _train(out, method, agent="sac", steps=150, extra=(), env=SPIDER, eval_episodes=2):
    argv = [
        "train",
        "--env",
        env,
        "--method",
        method,
        "--agent",
        agent,
        "--steps",
        str(steps),
        "--seeds",
        "1",
        "--workers",
        "0",
        "--eval-episodes",
        str(eval_episodes),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    if method != "none":
        argv += TINY
    return main(argv)


def _tensorboard_tags(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A shielded and an unshielded reference-SAC run on the same seed (shared by the tests below)."""
    root = tmp_path_factory.mktemp("runs")
    assert _train(root / "sqrl", "sqrl", extra=TINY_SAC) == 0
    assert _train(root / "none", "none", extra=TINY_SAC) == 0
    return root


def test_train_writes_the_run_folder(two_runs):
    run = two_runs / "sqrl"
    document = json.loads((run / "run.json").read_text())
    assert document["config"]["method"] == "sqrl" and document["command"].startswith("safeshield train --env")
    assert document["summary"]["smoke"] is True
    assert (run / "config.toml").read_text().startswith("#")
    seed = run / "seed0"
    for name in ("episodes.jsonl", "episodes.csv", "summary.json", "shield/config.json", "agent/config.json"):
        assert (seed / name).is_file(), name
    lines = (seed / "episodes.csv").read_text().splitlines()
    assert lines[0].startswith("phase,env,episode,step,return") and len(lines) > 3
    assert json.loads((seed / "summary.json").read_text())["eval"]["episodes"] == 2
    assert not (two_runs / "none" / "seed0" / "shield").exists()  # the baseline has no shield to save


def test_tensorboard_has_the_shield_and_episode_tags(two_runs):
    pytest.importorskip("tensorboard")
    tags = _tensorboard_tags(two_runs / "sqrl" / "seed0" / "tb")
    assert set(METRICS) <= tags, sorted(set(METRICS) - tags)
    assert {"episode/return", "episode/cumulative_failures"} <= tags
    assert not any(tag.startswith("shield/") for tag in _tensorboard_tags(two_runs / "none" / "seed0" / "tb"))


def test_report_compares_the_runs_with_a_section_each(two_runs, capsys):
    out = two_runs / "report"
    assert main(["report", str(two_runs / "sqrl"), str(two_runs / "none"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Run sqrl" in md and "## Run none" in md
    assert "as often as none while training (smoke run: not evidence)" in md
    assert "safeshield train --env" in md  # the exact commands
    page = (out / "report.html").read_text()
    assert page.count("<h2>Run ") == 2 and "data:image/png;base64," in page
    for figure in ("cumulative_failures.png", "return.png", "intervention_rate.png"):
        assert (out / figure).stat().st_size > 1000


def test_plot_writes_one_figure(two_runs, tmp_path):
    path = tmp_path / "returns.png"
    assert main(["plot", str(two_runs / "sqrl"), str(two_runs / "none"), "--metric", "return", "--out", str(path)]) == 0
    assert path.stat().st_size > 1000


def test_eval_runs_the_saved_agent_through_the_frozen_shield(two_runs, capsys):
    run = two_runs / "sqrl"
    shield_files = {p.name: p.stat().st_mtime_ns for p in (run / "seed0" / "shield").iterdir()}
    assert main(["eval", str(run), "--env", "safeshield/DrunkSpiderTarget-v0", "--episodes", "3"]) == 0
    result = json.loads((run / "eval-safeshield_DrunkSpiderTarget-v0.json").read_text())
    assert result["seeds"]["0"]["episodes"] == 3
    assert "frozen shield" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (run / "seed0" / "shield").iterdir()} == shield_files


def test_train_refuses_to_append_to_an_existing_run(two_runs):
    with pytest.raises(SystemExit, match="already holds a run; pass --overwrite"):
        _train(two_runs / "none", "none")


def test_train_with_sb3_sac_logs_sb3s_tags_and_the_shields(tmp_path):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tensorboard")
    extra = [
        "--set",
        "agent.learning_starts=40",
        "--set",
        "agent.batch_size=16",
        "--set",
        "agent.policy_kwargs={net_arch = [16]}",
    ]
    assert _train(tmp_path / "sb3", "sqrl", agent="sb3:SAC", steps=120, extra=extra) == 0
    tags = _tensorboard_tags(tmp_path / "sb3" / "seed0" / "tb")
    assert "shield/intervention_rate" in tags and any(tag.startswith("train/") for tag in tags)
    assert (tmp_path / "sb3" / "seed0" / "agent.zip").is_file()


def test_pretrain_then_fine_tune_saves_both_shields(tmp_path):
    extra = ["--pretrain-env", SPIDER, "--pretrain-steps", "90", *TINY_SAC]
    target = "safeshield/DrunkSpiderTarget-v0"
    assert _train(tmp_path / "t", "sqrl", steps=90, extra=extra, env=target, eval_episodes=0) == 0
    seed = tmp_path / "t" / "seed0"
    assert (seed / "pretrain_shield" / "config.json").is_file() and (seed / "shield" / "config.json").is_file()
    phases = [json.loads(line)["phase"] for line in (seed / "episodes.jsonl").read_text().splitlines()]
    assert phases[0] == "pretrain" and phases[-1] == "train"
    steps = [json.loads(line)["step"] for line in (seed / "episodes.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # one step axis across the phases


def test_no_filter_pretraining_shadows_pre_training_and_filters_the_target(tmp_path):
    """--no-filter-pretraining: the shield learns in pre-training without acting, then filters."""
    refuses = ["--set", "shield.eps_safe=1e-6", "--set", "shield.guard=false", "--set", "shield.regret=0.0"]
    extra = ["--pretrain-env", SPIDER, "--pretrain-steps", "90", "--no-filter-pretraining", *TINY_SAC, *refuses]
    target = "safeshield/DrunkSpiderTarget-v0"
    assert _train(tmp_path / "t", "sqrl", steps=90, extra=extra, env=target, eval_episodes=0) == 0
    records = [json.loads(line) for line in (tmp_path / "t" / "seed0" / "episodes.jsonl").read_text().splitlines()]
    assert sum(r["interventions"] for r in records if r["phase"] == "pretrain") == 0
    assert sum(r["interventions"] for r in records if r["phase"] == "train") > 0
    run = json.loads((tmp_path / "t" / "run.json").read_text())
    assert run["config"]["filter_pretraining"] is False


def test_a_shadow_run_trains_the_agent_unshielded_and_its_shield_protects_the_next_run(tmp_path):
    """--shadow: the agent's steps run unchanged, the shield learns and reports; a later run starts from it."""
    refuses = ["--set", "shield.eps_safe=1e-6", "--set", "shield.guard=false", "--set", "shield.regret=0.0"]
    assert _train(tmp_path / "shadow", "sqrl", extra=["--shadow", *TINY_SAC, *refuses], eval_episodes=0) == 0
    seed = tmp_path / "shadow" / "seed0"
    records = [json.loads(line) for line in (seed / "episodes.jsonl").read_text().splitlines()]
    assert sum(r["interventions"] for r in records) == 0
    quality = json.loads((seed / "quality.json").read_text())
    assert quality["total_interventions"] == 0 and quality["rejection_rate"] > 0.5
    assert main(["report", str(tmp_path / "shadow"), "--out", str(tmp_path / "report")]) == 0
    assert "- method: sqrl (shadow)" in (tmp_path / "report" / "report.md").read_text()
    extra = ["--shield-checkpoint", str(seed / "shield"), *TINY_SAC]
    assert _train(tmp_path / "next", "sqrl", extra=extra, eval_episodes=0) == 0
    records = [json.loads(line) for line in (tmp_path / "next" / "seed0" / "episodes.jsonl").read_text().splitlines()]
    assert sum(r["interventions"] for r in records) > 0


# -- errors before any worker ------------------------------------------------------------------------------
@pytest.fixture
def no_workers(monkeypatch):
    """Fail the test if a job pool would start."""
    import safeshield.experiments.runner

    def refuse(*args, **kwargs):
        raise AssertionError("a worker started before the arguments were checked")

    monkeypatch.setattr(safeshield.experiments.runner, "run_jobs", refuse)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "Pendulm-v1"], "not a registered gymnasium id; similar ids: Pendulum-v1"),
        (["--env", "Pendulum-v1"], "declares no failure indicator: pass --indicator terminated"),
        (["--env", "Pendulum-v1", "--indicator", "info:fell"], "needs info\\['fell'\\] on every step"),
        (["--env", "Pendulum-v1", "--indicator", "nomodule:fn"], "cannot import 'fn' from module 'nomodule'"),
        (["--env", SPIDER, "--set", "shield.eps_saf=0.1"], "unknown option\\(s\\) \\['eps_saf'\\] for shield 'sqrl'"),
        (
            ["--env", SPIDER, "--agent", "sac", "--set", "agent.lr_actor=1"],
            "unknown \\[agent\\] option\\(s\\) \\['lr_actor'\\]",
        ),
        (["--env", SPIDER, "--method", "safer"], "pass --shield-checkpoint DIR"),
        (["--env", SPIDER, "--method", "none", "--set", "shield.eps_safe=0.1"], "method 'none' has no shield"),
        (["--env", SPIDER, "--steps", "0"], "steps must be an int >= 1"),
        (["--env", SPIDER, "--config", "no-such-preset"], "must be a TOML file or one of the presets"),
        (["--env", SPIDER, "--set", "eps_safe=0.1"], "--set must look like shield.eps_safe=0.05"),
        (["--method", "sqrl"], "--env is required"),
        (["--env", SPIDER, "--no-filter-pretraining"], "filter_pretraining=false .* needs pretrain_env"),
        (["--env", SPIDER, "--method", "none", "--shadow"], "shadow .* needs a reject/resample method"),
    ],
)
def test_argument_errors_name_the_fix_before_any_worker_starts(argv, message, no_workers, tmp_path):
    with pytest.raises(SystemExit, match=message):
        main(["train", *argv, "--out", str(tmp_path / "run"), "--no-progress"])
    assert not (tmp_path / "run").exists()


def test_a_budget_below_learning_starts_is_announced_once(tmp_path, capsys):
    assert _train(tmp_path / "r", "sqrl", steps=60, eval_episodes=0, extra=["--set", "agent.hidden=[16]"]) == 0
    err = capsys.readouterr().err
    assert err.count("the agent's first update comes after 1001 steps, so it never updates") == 1
    assert "--set agent.learning_starts=" in err
    assert err.count("smoke run (60 steps x 1 seed(s))") == 1
    warnings = json.loads((tmp_path / "r" / "run.json").read_text())["warnings"]
    assert any("never updates" in w for w in warnings)


def test_the_shields_quality_report_lands_in_the_run_and_the_report(tmp_path, monkeypatch):
    """Where the wrapper keeps a quality report, train saves it and report shows it (issue 18)."""
    import safeshield

    quality = {
        "horizon": 20,
        "steps": 150,
        "auc": 0.75,
        "ece": 0.05,
        "false_safe_rate": 0.1,
        "calibration": {"bins": [0.1]},
        "first_useful_rejection": None,
        "warnings": [
            {"kind": "uninformative", "step": 2000, "auc": 0.52},
            {"kind": "informative", "step": 5000, "auc": 0.81},
        ],
    }
    monkeypatch.setattr(safeshield.ShieldWrapper, "quality_report", lambda self: quality, raising=False)
    assert _train(tmp_path / "q", "sqrl", extra=TINY_SAC) == 0
    assert json.loads((tmp_path / "q" / "seed0" / "quality.json").read_text())["auc"] == 0.75
    assert main(["report", str(tmp_path / "q"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "### Shield quality" in md and "auc 0.75" in md and "first_useful_rejection" not in md
    assert "step 2000: uninformative (auc 0.52)" in md and "step 5000: informative (auc 0.81)" in md
