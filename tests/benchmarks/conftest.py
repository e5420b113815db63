"""Fixtures shared by the benchmark tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("overhead")``: the script ``benchmarks/overhead.py`` imported as a module
    (registered in ``sys.modules`` first: its dataclasses look their module up there)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"safeshield_benchmark_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load
