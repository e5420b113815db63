"""``safeshield --version``, ``envs``, ``methods`` and the help text a new user reads first (issue 18)."""

from __future__ import annotations

import dataclasses

import pytest

import safeshield
from safeshield.experiments.cli import main
from safeshield.experiments.methods import MEANINGS, method_config_class


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"safeshield {safeshield.__version__}"


def test_top_level_help_is_plain_text_and_lists_the_front_door(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out  # no RST markup
    for command in ("train", "eval", "report", "plot", "envs", "methods", "demo"):
        assert command in out


@pytest.mark.parametrize("command", ["train", "demo", "transfer"])
def test_help_shows_every_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "default" in out
    if command == "train":
        for text in ("default sqrl", "default sb3:SAC", "default 20000", "default 3", "default runs/train"):
            assert text in out


def test_envs_groups_variants_and_shows_engine_and_indicator(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "safeshield/Operation<k>-v0" in out and "40 tasks" in out and "Operation17-v0" not in out
    spider = next(line for line in out.splitlines() if line.startswith("safeshield/DrunkSpider-v0"))
    assert "numpy" in spider and "info:failure" in spider
    hallway = next(line for line in out.splitlines() if line.startswith("safeshield/PointHallwayWalls-v0"))
    assert "MuJoCo" in hallway and "cost" in hallway and "safeshield[mujoco]" in hallway


def test_envs_table_matches_what_each_family_declares():
    """The engine table is static (importing every engine takes seconds); hold it to the classes."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    from safeshield.environments import ENV_IDS
    from safeshield.experiments.cli import _ENGINES

    seen = {}
    for env_id in ENV_IDS:
        entry = str(gym.spec(env_id).entry_point)
        seen.setdefault(entry.split(":")[0].rsplit(".", 1)[-1], entry)
    assert set(seen) == set(_ENGINES)
    spider = load_env_creator(seen["drunk_spider"])  # the fast one; the rest are checked by their own tests
    assert spider.metadata["safeshield_indicator"] == _ENGINES["drunk_spider"][2]


def test_envs_with_an_id_shows_its_spaces(capsys):
    assert main(["envs", "safeshield/DrunkSpider-v0"]) == 0
    out = capsys.readouterr().out
    assert "observations: Box" in out and "actions:      Box" in out and "indicator:    info:failure" in out
    assert main(["envs", "Pendulum-v1"]) == 0
    assert "none declared: pass --indicator" in capsys.readouterr().out


def test_methods_prints_meanings_not_raw_json(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out.splitlines()[1]
    for method in ("sqrl", "csc", "q_ensemble", "safer", "none"):
        assert f"\n{method}  (" in "\n" + out
    assert main(["methods", "--toml", "sqrl"]) == 0
    assert "eps_safe = 0.1  # risk threshold" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["sqrl", "csc", "q_ensemble", "safer"])
def test_every_option_of_a_method_says_what_it_means(method):
    """``safeshield methods`` explains every option; a field added without a meaning fails here."""
    fields = {field.name for field in dataclasses.fields(method_config_class(method))}
    assert sorted(fields - set(MEANINGS)) == []


def test_transfer_checks_the_indicator_before_any_worker(tmp_path, monkeypatch):
    """`transfer --pretrain InvertedPendulum-v5` crashed 20 s in, inside a worker (issue 18)."""
    import safeshield.experiments.transfer  # bound to run_jobs at import: patch where it is looked up

    monkeypatch.setattr(safeshield.experiments.transfer, "run_jobs", lambda *a, **k: pytest.fail("a worker started"))
    with pytest.raises(SystemExit, match="declares no failure indicator: pass --indicator terminated"):
        main(["transfer", "--pretrain", "Pendulum-v1", "--target", "Pendulum-v1", "--out", str(tmp_path)])
