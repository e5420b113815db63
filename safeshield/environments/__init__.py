"""Benchmark environments, registered with Gymnasium on import.

- ``drunk_spider``: ``DrunkSpiderEnv`` (SQRL's 2-D lava-bridge task) and ``classify_path``.
- ``register_envs``: register every id in ``ENV_IDS`` (idempotent; called at import).
- ``ENV_IDS``: the registered ids.

Registered ids (all 30-step episodes, the paper's Table 2 episode length):

- ``safeshield/DrunkSpider-v0``: pre-training variant, action noise 0.1 (Table 2), goal (10, 0)
  across the bridge.
- ``safeshield/DrunkSpiderTarget-v0``: target (fine-tuning) variant, same pits and noise, goal
  moved to (5, 7), just above the upper pit. The paper does not say how its DrunkSpider tasks
  differ; SQRL transfers a critic between tasks that share dynamics and failure states
  (Assumption 3), so only the task changes. The straight line to the new goal runs through the
  pit, so a policy that follows the new reward greedily walks into the lava: exactly where a
  pre-trained safety critic should help.
- ``safeshield/DrunkSpiderNoisy-v0``: the pre-training task with action noise 0.2, the setting of
  the paper's Fig. 5 (§7.3: eps_safe 0.05 goes round the pits, 0.2 crosses the bridge).

This package imports nothing else from ``safeshield``, so the shields and agents can depend on it
and not the other way round.
"""

from __future__ import annotations

import gymnasium as gym

from safeshield.environments.drunk_spider import DrunkSpiderEnv, classify_path

__all__ = ["DrunkSpiderEnv", "classify_path", "register_envs", "ENV_IDS"]

_DRUNK_SPIDER = "safeshield.environments.drunk_spider:DrunkSpiderEnv"

# id -> (entry point, max_episode_steps, kwargs)
_SPECS: dict[str, tuple[str, int, dict]] = {
    "safeshield/DrunkSpider-v0": (_DRUNK_SPIDER, 30, {"noise_std": 0.1}),
    "safeshield/DrunkSpiderTarget-v0": (_DRUNK_SPIDER, 30, {"noise_std": 0.1, "goal": (5.0, 7.0)}),
    "safeshield/DrunkSpiderNoisy-v0": (_DRUNK_SPIDER, 30, {"noise_std": 0.2}),
}

ENV_IDS: tuple[str, ...] = tuple(_SPECS)


def register_envs() -> None:
    """Register every id in ``ENV_IDS`` with Gymnasium; ids already in ``gym.registry`` are left alone."""
    for env_id, (entry_point, max_episode_steps, kwargs) in _SPECS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry_point,
            max_episode_steps=max_episode_steps,
            kwargs=dict(kwargs),
        )


register_envs()
