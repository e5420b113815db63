"""Tests for ``safeshield.experiments.transfer``: the SQRL-vs-SAC pre-train -> fine-tune job on any env pair.

Tiny budgets: these check the protocol's plumbing (shield saved and carried, buffers, summaries),
not learning quality, which is the benchmarks' business."""

from __future__ import annotations

import pytest

from safeshield.experiments.transfer import TransferSettings, run_transfer, summarise_transfer, transfer_job

TINY = dict(pretrain_steps=120, finetune_steps=90, learning_starts=40, batch_size=32, hidden=(8, 8), eval_episodes=2)


def test_run_transfer_on_drunk_spider(tmp_path):
    settings = TransferSettings(path_dims=2, **TINY)
    runs, table = run_transfer(settings, (0,), str(tmp_path), workers=0, progress=False)
    assert [run["method"] for run in runs] == ["sqrl", "sac"]
    assert (tmp_path / "sqrl_seed0" / "shield" / "weights.safetensors").is_file()
    assert not (tmp_path / "sac_seed0").exists()
    for run in runs:
        finetune = run["finetune"]
        assert finetune["curve_cumulative_failures"] == sorted(finetune["curve_cumulative_failures"])
        assert finetune["curve_steps"] and finetune["curve_steps"][0] > 120  # steps count on from pre-training
        assert run["final"]["episodes"] == 2 and len(run["final"]["paths"]) == 2
        assert all(len(point) == 2 for point in run["final"]["paths"][0])
    assert set(table) >= {"sqrl", "sac"}
    assert table["sqrl"]["seeds"] == [0]


def test_transfer_job_on_another_env_pair(tmp_path):
    pytest.importorskip("pybullet")
    settings = TransferSettings(
        pretrain_id="safeshield/Minitaur-v0", target_id="safeshield/MinitaurVelocity-v0", **{**TINY, "eval_episodes": 1}
    )
    run = transfer_job("sqrl", 1, settings, str(tmp_path))
    assert run["final"]["paths"] == []  # path_dims = 0 records nothing
    assert run["pretrain"]["episodes"] >= 0 and run["final"]["episodes"] == 1
    assert (tmp_path / "sqrl_seed1" / "shield" / "config.json").is_file()


def test_summary_means_ratio_and_intervals():
    runs = [
        {
            "method": m,
            "seed": s,
            "pretrain": {"failures": f},
            "finetune": {"failures": f, "failure_rate": f / 10},
            "final": {"mean_return": r, "failures": 1, "episodes": 4},
        }
        for m, fails, r in (("sqrl", (1, 3), 2.0), ("sac", (4, 8), 5.0))
        for s, f in zip((0, 1), fails)
    ]
    table = summarise_transfer(runs)
    assert table["sqrl"]["finetune_failures"][0] == 2.0 and table["sac"]["finetune_failures"][0] == 6.0
    assert table["sac_to_sqrl_failure_ratio"] == 3.0
    assert table["sac"]["final_return"] == (5.0, 0.0) and table["sac"]["final_failure_rate"] == (0.25, 0.0)
    # 95 % Student-t half-width with n = 2: 12.706 * std / sqrt(2).
    assert table["sqrl"]["finetune_failures"][1] == pytest.approx(12.706 * 2**0.5 / 2**0.5)


def test_bad_settings_and_method_raise(tmp_path):
    with pytest.raises(ValueError, match="pretrain_id"):
        TransferSettings(pretrain_id="safeshield/NoSuchEnv-v0")
    with pytest.raises(ValueError, match="finetune_steps"):
        TransferSettings(finetune_steps=0)
    with pytest.raises(ValueError, match="gamma_safe"):
        TransferSettings(gamma_safe=1.5)
    with pytest.raises(ValueError, match="method"):
        transfer_job("ppo", 0, TransferSettings(**TINY), str(tmp_path))


def test_a_shield_that_only_learns_in_pre_training_leaves_it_unchanged_and_filters_fine_tuning(tmp_path, monkeypatch):
    import safeshield
    from safeshield.experiments import transfer

    loaded, original_load = [], safeshield.load

    def recording_load(*args, **kwargs):
        env = original_load(*args, **kwargs)
        config = env.safety_model.config
        loaded.append((config.eps_safe, config.budget, config.guard))
        return env

    monkeypatch.setattr(transfer.safeshield, "load", recording_load)
    settings = TransferSettings(filter_pretraining=False, shield_preset="default", shield_budget=20.0, **TINY)
    shielded = transfer_job("sqrl", 0, settings, str(tmp_path))
    plain = transfer_job("sac", 0, settings, str(tmp_path))
    assert shielded["pretrain"] == plain["pretrain"]  # the same agent, the same steps: nothing was filtered
    # fine-tuning filters at the default threshold, with the budget and the guard pre-training went without
    assert loaded == [(safeshield.SQRLConfig.eps_safe, 20.0, True)]
    with pytest.raises(ValueError, match="filter_pretraining"):
        TransferSettings(filter_pretraining="no")
