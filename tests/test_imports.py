"""``import safeshield`` pulls in only its core dependencies: gymnasium, numpy, torch, safetensors.

Run in a fresh interpreter: the test session itself has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
def top_level():
    return {name.split(".")[0] for name in sys.modules}
import gymnasium, numpy, torch, safetensors, safetensors.torch
before = top_level()
import safeshield
added = sorted(top_level() - before - set(sys.stdlib_module_names) - {"safeshield"})
heavy = sorted({"matplotlib", "stable_baselines3", "tianshou", "torchrl", "mujoco", "pybullet", "h5py",
                "dm_control", "robosuite", "gymnasium_robotics", "safety_gymnasium"} & top_level())
print(json.dumps({"added": added, "heavy": heavy, "file": safeshield.__file__}))
"""


def test_import_safeshield_imports_only_its_core_dependencies():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(ROOT / "safeshield"), report["file"]
    assert report["added"] == [], f"import safeshield also imported {report['added']}"
    assert report["heavy"] == [], f"import safeshield imported optional engines/plotting: {report['heavy']}"


def test_experiment_harness_is_not_imported_by_the_package():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, safeshield; print(sorted(m for m in sys.modules if m.startswith('safeshield.')))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = result.stdout
    for module in ("safeshield.experiments", "safeshield.integrations", "safeshield.agents"):
        assert f"'{module}" not in loaded, f"{module} is imported by import safeshield"
