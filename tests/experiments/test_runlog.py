"""Run logs, progress bars and the after-run sanity warnings of ``safeshield train`` (issue 18)."""

from __future__ import annotations

import io
import json

import gymnasium as gym
import pytest

import safeshield
from safeshield.core.metrics import ShieldStats
from safeshield.experiments.runlog import AgentSignals, EpisodeRecorder, RunLog, read_episodes
from safeshield.experiments.train import _after_run_notes

SPIDER = "safeshield/DrunkSpider-v0"


def _episodes(env, n, seed=0):
    env.action_space.seed(seed)
    env.reset(seed=seed)
    done = 0
    while done < n:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            done += 1
            env.reset()


@pytest.mark.parametrize("shielded", [False, True])
def test_recorder_counts_failures_with_the_runs_indicator_shielded_or_not(shielded):
    """A shielded run and its baseline must count failures the same way, or the ratio means nothing."""
    records = []
    env = gym.make(SPIDER)
    if shielded:
        env = safeshield.wrap(env, "sqrl", seed=0, train=False)
    env = EpisodeRecorder(
        env,
        "info:failure",
        "train",
        lambda record, stats: records.append(record),
        stats=ShieldStats() if shielded else None,
    )
    failed_steps = []
    env.action_space.seed(0)
    env.reset(seed=0)
    while len(records) < 5:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        failed_steps.append(bool(info["failure"]))
        if terminated or truncated:
            env.reset()
    assert sum(r["failures"] for r in records) == sum(failed_steps)
    assert sum(r["length"] for r in records) == len(failed_steps)
    assert ("interventions" in records[0]) == shielded
    if shielded:
        assert env.stats.steps == len(failed_steps)


def test_run_log_writes_jsonl_and_csv_that_read_back(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    record = {
        "phase": "train",
        "env": SPIDER,
        "episode": 1,
        "step": 30,
        "return": 1.5,
        "length": 30,
        "failure": True,
        "failures": 1,
        "cost": 1.0,
    }
    log.episode(record)
    log.close()
    assert read_episodes(tmp_path) == [record]
    lines = (tmp_path / "episodes.csv").read_text().splitlines()
    assert lines[1].startswith("train,safeshield/DrunkSpider-v0,1,30,1.5,30,1,1,1.0,")


def test_agent_signals_fill_failure_and_cost_only_where_the_env_has_none():
    env = AgentSignals(gym.make("Pendulum-v1"), lambda obs, r, te, tr, info: 1.0)
    env.reset(seed=0)
    info = env.step(env.action_space.sample())[4]
    assert info["failure"] is True and info["cost"] == 1.0
    spider = AgentSignals(gym.make(SPIDER), lambda *step: 1.0)  # reports its own: left alone
    spider.reset(seed=0)
    assert spider.step(spider.action_space.sample())[4]["cost"] == 0.0


def test_progress_bar_prints_rarely_when_its_stream_is_not_a_terminal():
    """A log file gets a line every 30 s, not a redraw per update (the demo's log had ~1,800 lines)."""
    import safeshield.experiments.runner as runner
    from safeshield.core.progress import NON_TTY_INTERVAL

    stream = io.StringIO()
    with runner.progress_bar(10_000, "x", file=stream) as bar:
        for _ in range(1000):
            bar.update(10)
    assert bar.mininterval == NON_TTY_INTERVAL
    assert stream.getvalue().count("\r") <= 3


def test_progress_bar_redraws_often_on_a_terminal():
    from safeshield.core.progress import tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    with tqdm(total=10, file=Terminal()) as bar:
        assert bar.mininterval < 1


def test_live_postfix_shows_failures_and_return():
    import safeshield.experiments.runner as runner

    stream = io.StringIO()
    with runner.progress_bar(100, "x", file=stream, mininterval=0) as bar:
        live = runner._LiveBar(bar)
        live.put((30, {"failures": 1, "return": 2.0}))
        live.put((30, {"failures": 0, "return": 4.0}))
        live.put(5)
    assert bar.n == 65 and "failures=1" in str(bar) and "ret=3" in str(bar)


def _phase(**values):
    base = {
        "phase": "train",
        "shield_steps": 1000,
        "fallbacks": 0,
        "shield_failures": 0,
        "shield_updates": 10,
        "max_proposal_risk": 0.5,
        "threshold": 0.1,
    }
    return {**base, **values}


def test_after_run_warnings_fire_once_each_and_only_when_earned():
    quiet = [{"phases": [_phase()]}, {"phases": [_phase()]}]
    assert _after_run_notes(quiet) == []
    falling_back = [{"phases": [_phase(fallbacks=700)]}, {"phases": [_phase(fallbacks=900)]}]
    (note,) = _after_run_notes(falling_back)
    assert "fell back on 80% of steps" in note
    silent = [
        {"phases": [_phase(shield_failures=40, max_proposal_risk=0.02)]},
        {"phases": [_phase(shield_failures=12, max_proposal_risk=0.05)]},
    ]
    (note,) = _after_run_notes(silent)
    assert "after 40 failures no proposal's risk ever reached the threshold" in note
    never_learned = [{"phases": [_phase(shield_failures=40, max_proposal_risk=0.02, shield_updates=0)]}]
    assert _after_run_notes(never_learned) == []  # the budget warning already said so, before training


def test_resolved_config_in_run_json_is_plain_json(tmp_path):
    from safeshield.experiments.config import resolve
    from safeshield.experiments.train import run_train

    config = resolve(
        cli={
            "env": SPIDER,
            "method": "none",
            "agent": "sac",
            "steps": 60,
            "seeds": 1,
            "workers": 0,
            "eval_episodes": 0,
            "out": str(tmp_path / "r"),
        },
        overrides=["agent.hidden=[8]"],
    )
    document = run_train(config, progress=False, command=["train", "--env", SPIDER])
    assert json.loads((tmp_path / "r" / "run.json").read_text())["config"] == document["config"]
    assert document["command"] == f"safeshield train --env {SPIDER}"
