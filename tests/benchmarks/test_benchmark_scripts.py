"""Every benchmark script imports and parses its command line (the runs themselves are too long for CI;
``test_overhead_smoke.py`` runs the overhead benchmark end to end at a tiny size)."""

import importlib.util
import sys
from pathlib import Path

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
