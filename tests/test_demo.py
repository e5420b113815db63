"""Smoke test of the main job (``safeshield demo``) at a tiny budget: it runs end to end and
writes what the README promises. Learning quality is the demo's business, not this test's."""

import json

from safeshield.experiments.demo import DemoSettings, format_table, run_demo, summarise


def test_demo_runs_end_to_end_and_writes_json_and_plots(tmp_path):
    settings = DemoSettings(
        seeds=(0,),
        pretrain_steps=150,
        finetune_steps=120,
        learning_starts=60,
        hidden=(8, 8),
        eval_episodes=2,
        sweep_eps=(0.2,),
        sweep_steps=90,
        sweep_seeds=(0,),
        workers=2,
    )
    document = run_demo(settings, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(document["summary"]))
    assert set(saved["summary"]["transfer"]) >= {"sqrl", "sac"}
    for name in ("cumulative_failures.png", "fig5_paths.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "sqrl_seed0" / "shield" / "weights.safetensors").is_file()
    runs = {run["method"]: run for run in saved["transfer_runs"]}
    for run in runs.values():
        assert run["final"]["episodes"] == 2
        assert run["finetune"]["curve_cumulative_failures"] == sorted(run["finetune"]["curve_cumulative_failures"])
    assert "sqrl" in format_table(document["summary"])


def _two_seed_runs():
    """SQRL fails 1 and 3 times, SAC 4 and 8 (two seeds each)."""
    return [
        {
            "method": m,
            "seed": s,
            "pretrain": {"failures": f},
            "finetune": {"failures": f, "failure_rate": f / 10},
            "final": {"mean_return": 1.0, "failures": 0, "episodes": 5},
        }
        for m, fails in (("sqrl", (1, 3)), ("sac", (4, 8)))
        for s, f in zip((0, 1), fails)
    ]


def test_summary_means_and_intervals():
    runs = _two_seed_runs()
    table = summarise(runs, [])["transfer"]
    assert table["sqrl"]["finetune_failures"][0] == 2.0 and table["sac"]["finetune_failures"][0] == 6.0
    assert table["sac_to_sqrl_failure_ratio"] == 3.0
    assert table["sqrl"]["final_return"] == (1.0, 0.0)


def test_a_quick_demos_ratio_is_flagged_as_a_smoke_run():
    """`demo --quick` printed "SAC fails 43.2x as often as SQRL" with no caveat (issue 18)."""
    runs = _two_seed_runs()
    summary = summarise(runs, [])
    quick = DemoSettings().scaled(0.1)
    assert "smoke run (600 fine-tuning steps x 3 seeds): not evidence" in format_table(summary, quick)
    assert "smoke run" not in format_table(summary, DemoSettings())
