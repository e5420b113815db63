"""Every benchmark script imports and parses its command line (the runs themselves are too long for CI;
``test_overhead_smoke.py`` runs the overhead benchmark end to end at a tiny size)."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


def test_every_benchmark_is_covered():
    assert {p.stem for p in SCRIPTS} >= {
        "overhead",
        "vector_and_agents",
        "envs_speed",
        "minitaur_sqrl",
        "csc_nav",
        "transfer_hallway",
        "safer_operation",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_imports_and_offers_a_quick_mode(script, capsys, monkeypatch):
    name = f"benchmark_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-1e4, 1e4, allow_nan=False),
    st.floats(-1e4, 1e4, allow_nan=False).filter(lambda value: abs(value) > 1e-3),
)
def test_the_return_target_reads_the_same_way_for_negative_returns(load_benchmark, shielded, unshielded):
    kept = load_benchmark("effectiveness").return_kept
    if unshielded > 0 and abs(shielded / unshielded - 0.9) > 1e-9:  # the ratio rule, away from its edge
        assert kept(shielded, unshielded) == (shielded / unshielded >= 0.9)
    assert kept(unshielded, unshielded)  # no change keeps the return
    assert not kept(unshielded - 0.2 * abs(unshielded), unshielded)  # 20 % less never does, whatever the sign


@pytest.mark.parametrize("indicator", ["terminated", "cost"])
def test_the_episode_recorder_follows_every_sub_env_and_counts_costs(load_benchmark, indicator):
    """Two sub-envs end episodes at different steps; a failure is a termination, or the costly steps."""
    recorder = load_benchmark("effectiveness")._sb3_callback(None, indicator)
    recorder.num_timesteps = 0
    steps = [  # (rewards, dones, infos) of a 2-env VecEnv
        ([1.0, 2.0], [False, False], [{"cost": 1.0}, {"cost": 0.0}]),
        ([1.0, 2.0], [False, True], [{"cost": 1.0}, {"cost": 1.0, "TimeLimit.truncated": True}]),
        ([1.0, 2.0], [True, False], [{"cost": 0.0}, {"cost": 0.0}]),
    ]
    for rewards, dones, infos in steps:
        recorder.num_timesteps += 2
        recorder.locals = {"rewards": np.array(rewards), "dones": np.array(dones), "infos": infos}
        recorder._on_step()
    second, first = recorder.records  # the second sub-env's episode ended first
    assert (first["return"], first["length"], second["return"], second["length"]) == (3.0, 3, 4.0, 2)
    if indicator == "terminated":
        assert (first["failure"], second["failure"]) == (True, False)  # a time limit is no failure
    else:
        assert (first["failure"], second["failure"]) == (2, 1)  # the costly steps of each episode


def test_safety_gymnasium_rows_are_skipped_without_it_and_refused_by_name(load_benchmark, monkeypatch, capsys):
    """The PointGoal1 rows need an optional package: a full run skips them with the install command, a
    run that names them stops with it; the gymnasium rows never need it."""
    effectiveness = load_benchmark("effectiveness")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        effectiveness.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "safety_gymnasium" else real_find_spec(name, *args),
    )
    optional = [case for case in effectiveness.CASES if case.source == "safety-gymnasium"]
    assert optional and not any(effectiveness.available(case) for case in optional)
    assert all(effectiveness.available(case) for case in effectiveness.CASES if case.source == "gymnasium")
    with pytest.raises(SystemExit) as exit_info:
        effectiveness.main(["--cases", optional[0].name, "--out", "unused"])
    assert exit_info.value.code != 0
    assert "make safety-gymnasium" in capsys.readouterr().err


def test_a_variant_changes_method_and_options_and_keeps_its_own_results(load_benchmark, tmp_path, capsys, monkeypatch):
    """``--method`` / ``--options`` run a case with another shield or options over its own, refused into the
    suite's results folder; a cached pair is reused only for the same method and options."""
    effectiveness = load_benchmark("effectiveness")
    case = next(c for c in effectiveness.CASES if c.name == "point_traps")
    variant = effectiveness.with_variant(case, "q_ensemble", {"failures": "auto", "regret": 0.1})
    assert variant.method == "q_ensemble" and variant.options == {**case.options, "failures": "auto", "regret": 0.1}
    assert effectiveness.with_variant(case, None, None) == case
    with pytest.raises(SystemExit):
        effectiveness.main(["--cases", case.name, "--method", "q_ensemble"])
    assert "its own --out" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--options must be a JSON object"):
        effectiveness.with_variant(case, None, [1])
    seed_file = tmp_path / "cases" / case.name / "seed0.json"
    seed_file.parent.mkdir(parents=True)
    run = {"shielded": False, "failures": 3, "final_return": 1.0, "wall_s": 1.0, "episodes": 1, "records": []}
    cached = {"case": case.name, "seed": 0, "steps": 10, "method": "csc", "options": variant.options, "runs": [run]}
    seed_file.write_text(json.dumps(cached))
    assert effectiveness.run_case_seed(dataclasses.replace(variant, method="csc"), 0, 10, str(tmp_path)) == [run]
    legacy = {k: v for k, v in cached.items() if k != "method"}  # written before variants: the suite's method
    seed_file.write_text(json.dumps(legacy | {"options": case.options}))
    assert effectiveness.run_case_seed(case, 0, 10, str(tmp_path)) == [run]
    monkeypatch.setattr(effectiveness, "_traps_job", lambda case, shielded, *rest: {"ran": case.method})
    seed_file.write_text(json.dumps(cached))  # a csc pair: the q_ensemble variant runs its own
    assert effectiveness.run_case_seed(variant, 0, 10, str(tmp_path)) == [{"ran": "q_ensemble"}] * 2
    assert json.loads(seed_file.read_text())["method"] == "q_ensemble"


def test_verify_says_whether_a_committed_row_reproduces(load_benchmark, tmp_path, monkeypatch, capsys):
    """``--verify`` reruns a committed seed with its own steps and options and compares both arms with it."""
    effectiveness = load_benchmark("effectiveness")
    case = next(c for c in effectiveness.CASES if c.name == "point_traps")
    ran = []

    def rerun(case, shielded, seed, steps, progress_queue=None):
        ran.append((case.options, steps))
        return {"shielded": shielded, "failures": 5 if shielded else 9, "final_return": 0.5, "records": []}

    monkeypatch.setattr(effectiveness, "_traps_job", rerun)
    cpu = effectiveness.machine_info()["cpu_model"]
    seed_file = tmp_path / "cases" / case.name / "seed0.json"
    seed_file.parent.mkdir(parents=True)
    runs = [rerun(case, False, 0, 0), rerun(case, True, 0, 0)]
    committed = {"case": case.name, "seed": 0, "steps": 40, "options": {"chi": 0.1}, "machine": cpu, "runs": runs}
    seed_file.write_text(json.dumps(committed))
    ran.clear()
    [row] = effectiveness.verify([case], tmp_path, 1, workers=0)
    assert not row["differs"] and row["same_cpu"] and ran == [({"chi": 0.1}, 40)] * 2
    assert "reproduced" in capsys.readouterr().out
    runs[1]["failures"] = 4  # the committed shielded arm no longer matches what the code does
    seed_file.write_text(json.dumps(committed))
    [row] = effectiveness.verify([case], tmp_path, 1, workers=0)
    assert row["differs"] and row["arms"]["shielded"] == (4, 5) and row["arms"]["unshielded"] == (9, 9)
    assert "DIFFERS" in capsys.readouterr().out
    with pytest.raises(ValueError, match="N >= 1"):
        effectiveness.verify([case], tmp_path, 0)


def test_verify_refuses_the_flags_it_would_ignore(load_benchmark, capsys):
    """A variant, other steps or a quick run cannot be verified against committed seeds: said, not ignored."""
    effectiveness = load_benchmark("effectiveness")
    with pytest.raises(SystemExit):
        effectiveness.main(["--verify", "--cases", "point_traps", "--options", '{"regret": 0.1}', "--out", "unused"])
    assert "drop --options" in capsys.readouterr().err
