"""Importing safeshield (and its integrations package) must not import any third-party RL library."""

import subprocess
import sys


def test_import_safeshield_does_not_import_rl_libraries():
    code = (
        "import sys, safeshield, safeshield.integrations\n"
        "libraries = ('stable_baselines3', 'tianshou', 'torchrl', 'safety_gymnasium', 'ray')\n"
        "loaded = [m for m in libraries if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
