"""Reference RL agents.

- ``SAC`` / ``SACConfig``: Soft Actor-Critic with SQRL's safety-constrained actor objective (Eq. 4).
"""

from safeshield.agents.sac import SAC, SACConfig

__all__ = ["SAC", "SACConfig"]
