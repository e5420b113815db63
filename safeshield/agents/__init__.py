"""Reference RL agents.

- ``SAC`` / ``SACConfig``: Soft Actor-Critic with SQRL's safety-constrained actor objective (Eq. 4).
- ``SACLagrangian`` / ``SACLagrangianConfig``: SAC with a cost critic and multiplier β (Knight & Achiam Alg. 1).
"""

from safeshield.agents.sac import SAC, SACConfig
from safeshield.agents.sac_lagrangian import SACLagrangian, SACLagrangianConfig

__all__ = ["SAC", "SACConfig", "SACLagrangian", "SACLagrangianConfig"]
