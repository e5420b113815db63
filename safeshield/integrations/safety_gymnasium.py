"""Safety-Gymnasium envs as ordinary Gymnasium envs, ready for ``indicator="cost"``.

- ``make(env_id, **kwargs)``: ``safety_gymnasium.make`` converted to Gymnasium's 5-tuple step
  with the cost in ``info["cost"]`` (its own ``SafetyGymnasium2Gymnasium`` wrapper), so
  ``safeshield.wrap(make("SafetyPointGoal1-v0"), "sqrl", indicator="cost")`` works.
- ``task_control_period(task)``: seconds per env step (the agent's MuJoCo timestep times the expected
  physics substeps). ``make`` sets it as ``env.unwrapped.dt``, which Safety-Gymnasium does not
  declare, so a shield's ``horizon_seconds`` applies as on a Gymnasium MuJoCo env (PointGoal1:
  0.02 s per step, so the default 0.5 s horizon is 25 steps).
- ``apply_compat_shim()``: what ``make`` runs first. safety-gymnasium 1.0.0 (the newest on
  PyPI) pins gymnasium 0.28.1 and does not import on gymnasium 1.x / Python 3.11; install it
  with ``pip install --no-deps safety-gymnasium xmltodict pyyaml`` and this shim fills in what
  it expects: the gymnasium 0.28 wrapper modules it imports (aliases of today's wrappers),
  hashable colour arrays (Python 3.11 rejects ndarray dataclass defaults) and two ``EnvSpec``
  fields that gymnasium 1.x dropped. It edits no installed file, only ``sys.modules`` and two
  class attributes, and only when called. Only ``make``/``reset``/``step`` of the single-agent
  tasks were checked (see ``constraints.txt``); vector envs, rendering and multi-agent
  tasks were not.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import types
from typing import Any

import gymnasium as gym
import numpy as np

from safeshield.environments._quiet import ADROIT_NOTICE, without_notice

__all__ = ["apply_compat_shim", "make", "task_control_period"]

_SHIMMED = False


def _module(name: str, **attributes: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules.setdefault(name, module)


class _EnvCompatibility(gym.Wrapper):
    """Stand-in for gymnasium 0.28's ``EnvCompatibility`` (safety-gymnasium imports it, never needs it)."""

    def __init__(self, env, render_mode=None):
        super().__init__(env)


class _HashableArray(np.ndarray):
    """An ndarray a dataclass accepts as a default (Python 3.11 rejects unhashable defaults)."""

    __hash__ = object.__hash__


def apply_compat_shim() -> None:
    """Make safety-gymnasium 1.0.0 importable on gymnasium 1.x / Python 3.11 (idempotent)."""
    global _SHIMMED
    if _SHIMMED:
        return
    spec = importlib.util.find_spec("safety_gymnasium")
    if spec is None:
        raise ImportError(
            "safety-gymnasium is not installed; install it with "
            "`pip install --no-deps safety-gymnasium xmltodict pyyaml` (its pins would downgrade gymnasium)"
        )
    from gymnasium import wrappers
    from gymnasium.envs.registration import EnvSpec
    from gymnasium.wrappers.utils import RunningMeanStd

    _module("gymnasium.wrappers.compatibility", EnvCompatibility=_EnvCompatibility)
    _module("gymnasium.wrappers.time_limit", TimeLimit=wrappers.TimeLimit)
    _module("gymnasium.wrappers.env_checker", PassiveEnvChecker=wrappers.PassiveEnvChecker)
    _module("gymnasium.wrappers.autoreset", AutoResetWrapper=wrappers.Autoreset)
    _module("gymnasium.wrappers.order_enforcing", OrderEnforcing=wrappers.OrderEnforcing)
    _module(
        "gymnasium.wrappers.normalize",
        NormalizeObservation=wrappers.NormalizeObservation,
        NormalizeReward=wrappers.NormalizeReward,
        RunningMeanStd=RunningMeanStd,
    )
    vector_utils = gym.vector.utils
    if not hasattr(vector_utils, "tile_images"):
        vector_utils.tile_images = lambda images: np.concatenate(list(images), axis=1)
        _module("gymnasium.vector.utils.tile_images", tile_images=vector_utils.tile_images)

    colour_path = os.path.join(os.path.dirname(spec.origin), "assets", "color.py")
    colour_spec = importlib.util.spec_from_file_location("safety_gymnasium.assets.color", colour_path)
    colour = importlib.util.module_from_spec(colour_spec)
    colour_spec.loader.exec_module(colour)
    colour.COLOR = {key: np.asarray(value).view(_HashableArray) for key, value in colour.COLOR.items()}
    sys.modules["safety_gymnasium.assets.color"] = colour

    for field in ("apply_api_compatibility", "autoreset"):
        if not hasattr(EnvSpec, field):
            setattr(EnvSpec, field, False)
    known = {f.name for f in dataclasses.fields(EnvSpec)}

    class _SpecMeta(type):
        def __instancecheck__(cls, obj):
            return isinstance(obj, EnvSpec)

    class _EnvSpecCompat(metaclass=_SpecMeta):
        """Build today's ``EnvSpec`` from gymnasium 0.28 keyword arguments, dropping removed ones."""

        def __new__(cls, **kwargs):
            return EnvSpec(**{key: value for key, value in kwargs.items() if key in known})

    with without_notice(ADROIT_NOTICE):  # its multi-agent tasks import gymnasium-robotics
        import safety_gymnasium.utils.registration as registration

    registration.EnvSpec = _EnvSpecCompat
    _SHIMMED = True


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """A Safety-Gymnasium task as a Gymnasium env whose ``info["cost"]`` carries the step's cost."""
    apply_compat_shim()
    import safety_gymnasium
    from safety_gymnasium.wrappers import SafetyGymnasium2Gymnasium

    env = SafetyGymnasium2Gymnasium(safety_gymnasium.make(env_id, **kwargs))
    env.unwrapped.dt = task_control_period(env.unwrapped.task)
    return env


def task_control_period(task: Any) -> float:
    """Seconds per step of a Safety-Gymnasium task: each step runs a Binomial(n, p) number of physics
    steps of the agent model's timestep (``sim_conf.frameskip_binom_n`` and ``_p``), n * p on average."""
    timestep = float(task.agent.engine.model.opt.timestep)
    substeps = task.sim_conf.frameskip_binom_n * task.sim_conf.frameskip_binom_p
    if not (timestep > 0 and substeps > 0):
        raise ValueError(
            f"a Safety-Gymnasium task's control period must be > 0, got timestep={timestep!r} s and "
            f"{substeps!r} expected substeps (sim_conf {task.sim_conf!r})"
        )
    return timestep * substeps
