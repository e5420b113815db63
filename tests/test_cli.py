"""The ``safeshield`` command: subcommands run and bad input names itself."""

import json

import pytest

from safeshield.experiments.cli import main


def test_transfer_command_writes_results_for_both_methods(tmp_path, capsys):
    code = main(
        [
            "transfer",
            "--pretrain",
            "safeshield/DrunkSpider-v0",
            "--target",
            "safeshield/DrunkSpiderTarget-v0",
            "--pretrain-steps",
            "120",
            "--finetune-steps",
            "90",
            "--seeds",
            "1",
            "--workers",
            "0",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert set(document["summary"]) >= {"sqrl", "sac"}
    assert document["settings"]["finetune_steps"] == 90
    captured = capsys.readouterr()
    assert "sqrl  fine-tune failures" in captured.out
    # the budget below the warm-up is announced before the run (it "succeeded" silently, issue 18)
    assert "the agent's first update comes after 1001 steps" in captured.err and "smoke run" in captured.err


def test_transfer_command_can_let_the_shield_only_learn_in_pre_training(tmp_path):
    args = ["--pretrain", "safeshield/DrunkSpider-v0", "--target", "safeshield/DrunkSpiderTarget-v0"]
    budgets = ["--pretrain-steps", "120", "--finetune-steps", "60", "--seeds", "1", "--workers", "0"]
    code = main(["transfer", *args, *budgets, "--out", str(tmp_path), "--no-progress", "--no-filter-pretraining"])
    assert code == 0
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["settings"]["filter_pretraining"] is False
    sqrl, sac = (next(run for run in document["runs"] if run["method"] == m) for m in ("sqrl", "sac"))
    assert sqrl["pretrain"] == sac["pretrain"]  # nothing was filtered in pre-training


def test_transfer_command_rejects_an_unknown_env_id(tmp_path):
    with pytest.raises(SystemExit, match="'nope-v0' is not a registered gymnasium id"):
        main(["transfer", "--pretrain", "nope-v0", "--target", "safeshield/DrunkSpider-v0", "--out", str(tmp_path)])


def test_envs_lists_every_family(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in (
        "safeshield/DrunkSpider-v0",
        "safeshield/PointTraps-v0",
        "safeshield/Minitaur-v0",
        "safeshield/PointHallwayPoles-v0",
        "safeshield/Operation00-v0",
    ):
        assert env_id in out
