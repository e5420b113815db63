"""dm-control suite tasks as shielded Gymnasium envs, through Shimmy.

- ``make(task, shield="sqrl", indicator=walker_fell, ...)``: ``gym.make("dm_control/<task>-v0")``
  inside a shield, in one line (``task`` like ``"walker-walk"``).
- ``register``: make the ``dm_control/...`` ids known to Gymnasium (idempotent).
- ``walker_fell``: the walker's failure indicator, its torso below ``WALKER_FALL_HEIGHT``.
- ``obs_below(key, value)``: an indicator that fires when ``obs[key] < value`` (any suite task
  whose observation carries a height, e.g. ``"height"`` for the walker).

dm-control tasks never terminate and report no cost: their failure has to be read from the
observation, which is what a callable indicator is for. Shimmy's observation is a ``Dict`` of the
task's named arrays; the shield flattens it itself and the indicator sees the dict.
``safeshield train`` takes the walker's as ``--indicator safeshield.integrations.dm_control:walker_fell``.
Needs ``pip install "shimmy[dm-control]"`` (tested with dm-control 1.0.39, MuJoCo 3.9, Shimmy 2.0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

__all__ = ["WALKER_FALL_HEIGHT", "make", "obs_below", "register", "walker_fell"]

# dm_control suite walker.py: standing reward = tolerance(torso height, bounds=(1.2, inf),
# margin=1.2 / 2), so at 0.6 m it has fallen to 0.1 of its maximum: we call that a fall.
WALKER_FALL_HEIGHT = 0.6


def register() -> None:
    """Register Shimmy's ``dm_control/<domain>-<task>-v0`` ids (``ImportError`` says what to install)."""
    try:
        import shimmy
    except ImportError as error:
        raise ImportError('dm-control tasks need Shimmy: pip install "shimmy[dm-control]"') from error
    gym.register_envs(shimmy)


def obs_below(key: str, value: float) -> Callable[..., float]:
    """Failure when ``obs[key] < value`` (a height below a floor)."""

    def below(obs, reward, terminated, truncated, info) -> float:
        return float(float(obs[key]) < value)

    below.__name__ = f"{key}_below_{value:g}"
    return below


def walker_fell(obs, reward, terminated, truncated, info) -> float:
    """The walker's torso is below ``WALKER_FALL_HEIGHT`` (``obs["height"]``)."""
    return float(float(obs["height"]) < WALKER_FALL_HEIGHT)


def make(
    task: str,
    shield: str = "sqrl",
    indicator: str | Callable = walker_fell,
    *,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> gym.Env:
    """``safeshield.wrap(gym.make(f"dm_control/{task}-v0"), shield, indicator, ...)``.

    Example:
        >>> from safeshield.integrations import dm_control
        >>> env = dm_control.make("walker-walk", "sqrl", seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> info["shield"]["failure"]  # standing at the start
        0.0
    """
    import safeshield

    register()
    env_id = task if task.startswith("dm_control/") else f"dm_control/{task}-v0"
    return safeshield.wrap(gym.make(env_id, **(env_kwargs or {})), shield, indicator, seed=seed, **options)
