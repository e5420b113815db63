"""Observation wrappers for constrained agents.

- ``PreviousRewardCost``: appends the previous step's reward and cost, ``[obs, r_{t−1}, c_{t−1}]``.

Paper: Knight & Achiam (2021), "Safely Transferring to Unsafe Environments with Constrained Reinforcement Learning",
§2.1 and App. C.2: the last reward and the last cost are fed to the agent alongside the
observation; without them learning is "dramatically less stable" and the agent can lean on a
wall and keep incurring cost. Here they are appended to a flat Box observation (zeros after
``reset``), so any agent, recurrent or not, sees them.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

__all__ = ["PreviousRewardCost"]


class PreviousRewardCost(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Append the previous reward and the previous ``info[cost_key]`` to a 1-D Box observation.

    Example:
        >>> import gymnasium as gym
        >>> from safeshield.wrappers import PreviousRewardCost
        >>> env = PreviousRewardCost(gym.make("Pendulum-v1"))
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, obs[-2:].tolist()   # zeros after reset
        ((5,), [0.0, 0.0])
        >>> obs, reward, *_ = env.step(env.action_space.sample())
        >>> bool(obs[-2] == np.float32(reward))
        True

    The cost is ``float(info.get(cost_key, 0.0))``; a missing key counts as 0. The appended
    entries are unbounded (``-inf, inf``) and take the observation's float dtype.

    Change log:
        * v0.1: first version (r_{t−1}, c_{t−1}).
    """

    def __init__(self, env: gym.Env, cost_key: str = "cost"):
        gym.utils.RecordConstructorArgs.__init__(self, cost_key=cost_key)
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"PreviousRewardCost requires a 1-D Box observation space, got {space!r}")
        if not np.issubdtype(space.dtype, np.floating):
            raise TypeError(f"PreviousRewardCost requires a floating-point Box, got dtype {space.dtype}")
        if not isinstance(cost_key, str):
            raise TypeError(f"cost_key must be a str (the info key of the cost), got {cost_key!r}")
        self.cost_key = cost_key
        extra = np.full(2, np.inf, dtype=space.dtype)
        self.observation_space = gym.spaces.Box(
            np.concatenate([space.low, -extra]), np.concatenate([space.high, extra]), dtype=space.dtype
        )

    def _augment(self, obs, reward: float, cost: float) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(obs, dtype=self.observation_space.dtype),
                np.array([reward, cost], self.observation_space.dtype),
            ]
        )

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._augment(obs, 0.0, 0.0), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return (
            self._augment(obs, float(reward), float(info.get(self.cost_key, 0.0))),
            reward,
            terminated,
            truncated,
            info,
        )
