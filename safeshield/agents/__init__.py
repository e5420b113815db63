"""Reference RL agents.

- ``SAC`` / ``SACConfig``: Soft Actor-Critic with SQRL's safety-constrained actor objective (Eq. 4).
- ``SACLagrangian`` / ``SACLagrangianConfig``: SAC with a cost critic and multiplier β (Knight & Achiam Alg. 1).
- ``RecurrentSACLagrangian`` / ``RecurrentSACLagrangianConfig``: its GRU variant with stored-state sequence replay.
- ``TRPOLagrangian`` / ``TRPOLagrangianConfig``: TRPO with CSC's Lagrangian cost advantage (plain TRPO without a
critic).
"""

from safeshield.agents.recurrent import RecurrentSACLagrangian, RecurrentSACLagrangianConfig
from safeshield.agents.sac import SAC, SACConfig
from safeshield.agents.sac_lagrangian import SACLagrangian, SACLagrangianConfig
from safeshield.agents.trpo_lagrangian import TRPOLagrangian, TRPOLagrangianConfig

__all__ = [
    "SAC",
    "SACConfig",
    "SACLagrangian",
    "SACLagrangianConfig",
    "RecurrentSACLagrangian",
    "RecurrentSACLagrangianConfig",
    "TRPOLagrangian",
    "TRPOLagrangianConfig",
]
