"""Benchmark environments, registered with Gymnasium on import.

- ``drunk_spider``: ``DrunkSpiderEnv`` (SQRL's 2-D lava-bridge task) and ``classify_path``.
- ``register_envs``: register every id in ``ENV_IDS`` (idempotent; called at import).
- ``ENV_IDS``: the registered ids.

Registered ids. Every env exposes failure the same way: ``info["failure"]``, ``info["cost"]`` and
``metadata["safeshield_indicator"]`` (so ``safeshield.wrap(env, method)`` needs no indicator).
Engines load on ``gym.make``, never at import: the entries are entry-point strings.

- SQRL's DrunkSpider (pure numpy, 30-step episodes, the paper's Table 2 length):
  ``DrunkSpider-v0`` (pre-training, action noise 0.1) and ``DrunkSpiderTarget-v0`` (target,
  noise 0.2: the 0.8-wide bridge is 4 sigma wide at 0.1 and 2 sigma at 0.2, about 4.6 % risk
  per step on it). The paper does not say how its DrunkSpider tasks differ; pits, goal and
  reward are unchanged, only the dynamics get riskier, like Minitaur's friction change.
- CSC trap navigation (MuJoCo, ``trap_navigation``): ``PointTraps-v0``, ``CarTraps-v0``.
- SAFER Operation grasping (PyBullet, ``operation``): ``Operation00-v0`` ... ``Operation39-v0``
  and ``Operation-v0``; ``operation.EVAL_TASKS`` names the 6 hardest.
- Safe-transfer Hallway (MuJoCo, ``hallway``): ``{Point,Doggo}Hallway{Walls,Poles,Humanoids}-v0``.
- Robots (``minitaur``, ``laikago``, ``shadow_hand``, ``panda_push``): ``Minitaur-v0``,
  ``MinitaurVelocity-v0``, ``MinitaurFriction-v0``, ``MinitaurRandomized-v0``, ``Laikago-v0``,
  ``ShadowHandCubeRotate-v0``, ``ShadowHandCubeRotateTarget-v0``, ``PandaPushNoTopple-v0``,
  ``PandaPushBoundary-v0``.

All ids carry the ``safeshield/`` prefix; ``docs/environments.md`` has the details.

This package imports nothing else from ``safeshield``, so the shields and agents can depend on it
and not the other way round.
"""

from __future__ import annotations

import gymnasium as gym

from safeshield.environments.drunk_spider import DrunkSpiderEnv, classify_path

__all__ = ["DrunkSpiderEnv", "classify_path", "register_envs", "ENV_IDS"]

_DRUNK_SPIDER = "safeshield.environments.drunk_spider:DrunkSpiderEnv"
_MINITAUR = "safeshield.environments.minitaur:MinitaurEnv"  # robot envs: entry points only, engines load on make
_SHADOW_HAND = "safeshield.environments.shadow_hand:ShadowHandCubeRotateEnv"
_PANDA_PUSH = "safeshield.environments.panda_push:PandaPushEnv"

# id -> (entry point, max_episode_steps, kwargs)
_SPECS: dict[str, tuple[str, int, dict]] = {
    "safeshield/DrunkSpider-v0": (_DRUNK_SPIDER, 30, {"noise_std": 0.1}),
    "safeshield/DrunkSpiderTarget-v0": (_DRUNK_SPIDER, 30, {"noise_std": 0.2}),
    # --- CSC trap navigation (MuJoCo): Point / Car
    "safeshield/PointTraps-v0": ("safeshield.environments.trap_navigation:TrapNavigationEnv", 500, {"robot": "point"}),
    "safeshield/CarTraps-v0": ("safeshield.environments.trap_navigation:TrapNavigationEnv", 500, {"robot": "car"}),
    # --- SAFER Operation grasping (PyBullet)
    # task k of 40 (operation.EVAL_TASKS lists the 6 hardest); 50-step episodes (our choice)
    "safeshield/Operation-v0": ("safeshield.environments.operation:OperationEnv", 50, {}),
    **{
        f"safeshield/Operation{k:02d}-v0": ("safeshield.environments.operation:OperationEnv", 50, {"task": k})
        for k in range(40)
    },
    # --- Safe-transfer Hallway (MuJoCo): Walls / Poles / Humanoids
    "safeshield/PointHallwayWalls-v0": ("safeshield.environments.hallway:HallwayEnv", 1000, {"variant": "walls"}),
    "safeshield/PointHallwayPoles-v0": ("safeshield.environments.hallway:HallwayEnv", 1000, {"variant": "poles"}),
    "safeshield/PointHallwayHumanoids-v0": (
        "safeshield.environments.hallway:HallwayEnv",
        1000,
        {"variant": "humanoids"},
    ),
    "safeshield/DoggoHallwayWalls-v0": (
        "safeshield.environments.hallway:HallwayEnv",
        1000,
        {"variant": "walls", "robot": "doggo"},
    ),
    "safeshield/DoggoHallwayPoles-v0": (
        "safeshield.environments.hallway:HallwayEnv",
        1000,
        {"variant": "poles", "robot": "doggo"},
    ),
    "safeshield/DoggoHallwayHumanoids-v0": (
        "safeshield.environments.hallway:HallwayEnv",
        1000,
        {"variant": "humanoids", "robot": "doggo"},
    ),
    # --- Robot envs: Minitaur, Laikago (PyBullet), ShadowHand (gymnasium-robotics), Panda push (robosuite)
    "safeshield/Minitaur-v0": (_MINITAUR, 500, {"goal_velocity": 0.3, "foot_friction": 1.0}),
    "safeshield/MinitaurVelocity-v0": (_MINITAUR, 500, {"goal_velocity": 0.4, "foot_friction": 1.0}),
    "safeshield/MinitaurFriction-v0": (_MINITAUR, 500, {"goal_velocity": 0.3, "foot_friction": 1.25}),
    "safeshield/MinitaurRandomized-v0": (
        _MINITAUR,
        500,
        {"goal_velocity": 0.3, "foot_friction": 1.0, "randomize_dynamics": True},
    ),
    "safeshield/Laikago-v0": ("safeshield.environments.laikago:LaikagoEnv", 500, {}),
    "safeshield/ShadowHandCubeRotate-v0": (_SHADOW_HAND, 100, {"turn": 1.0}),
    "safeshield/ShadowHandCubeRotateTarget-v0": (_SHADOW_HAND, 100, {"turn": 1.5}),
    "safeshield/PandaPushNoTopple-v0": (_PANDA_PUSH, 500, {"failure": "topple"}),
    "safeshield/PandaPushBoundary-v0": (_PANDA_PUSH, 500, {"failure": "boundary"}),
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
