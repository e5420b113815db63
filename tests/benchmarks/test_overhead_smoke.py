"""Smoke test of ``benchmarks/overhead.py``: it runs end to end and writes a well-formed report.

No timing thresholds (CI machines are noisy): only keys, finite positive timings and the regime
checks (the safe shield never intervenes; the rejected one falls back on every step).
"""

from __future__ import annotations

import json
import math

import pytest

KS = (1, 10)


def positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory, load_benchmark):
    out = tmp_path_factory.mktemp("overhead")
    benchmark = load_benchmark("overhead")
    returned = benchmark.main(
        [
            "--quick",
            "--out",
            str(out),
            "--ks",
            *map(str, KS),
            "--blocks",
            "2",
            "--block-seconds",
            "0.001",
            "--train-block-seconds",
            "0.001",
            "--min-steps",
            "2",
            "--max-steps",
            "20",
            "--warm-steps",
            "2",
            "--no-progress",
            "--sb3",
            "--no-threads",  # SB3 runs and the thread check are minutes even at --quick; the vector cases stay
        ]
    )
    written = json.loads((out / "overhead.json").read_text())
    return out, returned, written


def test_writes_json_and_png_atomically(report):
    out, returned, written = report
    assert written == json.loads(json.dumps(returned))
    assert (out / "overhead.png").stat().st_size > 0
    assert not list(out.glob("*.tmp")), "temporary files left behind"


def test_report_has_expected_keys(report):
    _, _, data = report
    for key in (
        "schema",
        "machine",
        "settings",
        "targets",
        "definitions",
        "envs",
        "ratios",
        "ratios_cpu",
        "summary",
        "all_targets_met",
    ):
        assert key in data
    machine = data["machine"]
    assert machine["torch_threads"] == 1
    assert positive_finite(machine["cpu_count"]) and machine["torch"]
    assert data["settings"]["ks"] == list(KS)
    assert set(data["targets"]) == {
        "safe_overhead",
        "rejected_overhead",
        "rejected_overhead_k1",
        "hopper_shielded_over_raw",
        "vector_scaling",
        "sb3_sac",
        "sb3_ppo",
    }
    assert "safeshield/DrunkSpider-v0" in data["envs"] and "Hopper-v5" in data["envs"]


def test_timings_are_finite_and_positive(report):
    _, _, data = report
    measured = [env for env in data["envs"].values() if "skipped" not in env]
    assert measured, "no env was measured"
    for env in measured:
        for timings in (env["timings_us"], env["cpu_timings_us"]):
            for name in ("raw", "frozen_safe_pooled", "train_collect", "train_learning"):
                assert positive_finite(timings[name]), name
            for group in ("frozen_safe", "frozen_rejected", "floor"):
                assert set(timings[group]) >= {str(k) for k in KS}, group
                assert all(positive_finite(v) for v in timings[group].values()), group
            assert positive_finite(timings["floor"]["1"])
        assert all(positive_finite(v) for blocks in env["blocks_us"].values() for v in blocks)


def test_regimes_hold_and_ratios_are_reported(report):
    _, _, data = report
    for env_id, env in data["envs"].items():
        if "skipped" in env:
            continue
        assert env["regimes_ok"], env["regime_checks"]
        ratios = data["ratios"][env_id]
        assert math.isfinite(ratios["safe_overhead"]["value"])
        assert ratios["safe_overhead"]["target"] == 1.2
        assert set(ratios["rejected_overhead"]) == {str(k) for k in KS}
        assert ratios["rejected_overhead"]["1"]["target"] == 2.0 and ratios["rejected_overhead"]["10"]["target"] == 1.2
        assert all(isinstance(e["met"], bool) for e in ratios["rejected_overhead"].values())
        assert positive_finite(ratios["train_learning_over_raw"]["value"])
    for entry in data["summary"].values():
        assert set(entry) - {"direction"} == {"value", "target", "met"}
    if "skipped" not in data["envs"]["Hopper-v5"]:
        assert data["ratios"]["hopper_shielded_over_raw"]["target"] == 1.3


def test_vector_rows_grade_the_per_env_step_cost(report):
    _, _, data = report
    vector = data["vector"]
    assert set(vector["scaling"]) == {"accept", "collect", "reject", "sb3_accept"}
    for regime, entry in vector["scaling"].items():
        assert entry["target"] == 4.0 and entry["direction"] == ">="
        costs = vector["shield_cost_per_env_step_us"][regime]
        assert set(costs) == {"1", "2", "4", "8", "16"}
        if entry["value"] is not None:
            assert entry["value"] == pytest.approx(costs["1"] / costs["16"])
            assert entry["met"] == (entry["value"] >= 4.0)
    assert set(vector["n2_not_slower_than_n1"]) == set(vector["scaling"])


def test_ratio_entry_directions(load_benchmark):
    benchmark = load_benchmark("overhead")
    assert benchmark.ratio_entry(1.1, 1.2)["met"] is True
    assert benchmark.ratio_entry(1.3, 1.2)["met"] is False
    assert benchmark.ratio_entry(5.0, 4.0, at_least=True)["met"] is True
    assert benchmark.ratio_entry(3.0, 4.0, at_least=True)["met"] is False
    assert benchmark.ratio_entry(None, 4.0, at_least=True)["met"] is None
