"""Adapters that let third-party RL libraries train inside a safeshield shield.

- ``safeshield.integrations.sb3``: Stable-Baselines3 (``ShieldedVecEnv``, ``ShieldCallback``,
  ``policy_sampler``).
- ``safeshield.integrations.tianshou``: Tianshou (``ExecutedActionBuffer``, ``attach_policy``).
- ``safeshield.integrations.torchrl``: TorchRL (``ShieldedGymEnv``, ``executed_action``).
- ``safeshield.integrations.safety_gymnasium``: Safety-Gymnasium envs under ``indicator="cost"``.
- ``safeshield.integrations.dm_control``: dm-control suite tasks through Shimmy (``make``,
  ``walker_fell``, ``obs_below``).
- ``safeshield.integrations.minari``: SAFER's offline data to and from Minari datasets.

Nothing here is imported by ``import safeshield``: each module imports its library, so import
the one you use (``from safeshield.integrations import sb3``). Which shield suits which
learner, and why, is in ``docs/integrations.md``.
"""
