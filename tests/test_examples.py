"""Every example answers ``--help`` without running (issue 18: ``shield_any_env.py --help`` ran the
whole example) and says where it writes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_an_example_does_its_work_under_main_with_an_argument_parser(example):
    """Top level: docstring, imports, definitions, constants, and the ``__main__`` guard; nothing runs on import."""
    tree = ast.parse(example.read_text())
    for node in tree.body:
        allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        guard = isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        calls = isinstance(node, (ast.Assign, ast.AnnAssign)) and any(isinstance(n, ast.Call) for n in ast.walk(node))
        assert (isinstance(node, allowed) and not calls) or docstring or guard, (
            f"{example.name}:{node.lineno} runs at import: {ast.unparse(node)[:60]}"
        )
    assert "argparse.ArgumentParser" in example.read_text(), f"{example.name}: --help needs an argument parser"


def test_help_of_the_any_env_example_prints_usage_and_writes_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "shield_any_env.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--out" in result.stdout
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("example", [e for e in EXAMPLES if ".save(" in e.read_text()], ids=lambda path: path.name)
def test_an_example_that_writes_takes_out_and_announces_it(example):
    source = example.read_text()
    assert '"--out"' in source, example.name
    assert 'print(f"saving' in source or 'print(f"writing' in source, example.name
