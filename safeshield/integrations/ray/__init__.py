"""Ray adapter: many shielded env runners, one shared shield learner; a distributed SAC-Lagrangian.

- ``SharedShield``: starts one ``ShieldLearner`` (a Ray actor) and hands out shielded envs for
  runners (``make_env``), an RLlib env creator (``env_creator``, ``register_rllib_env``) and
  plain Ray runner actors (``start_runners``).
- ``ShieldLearner``: the learner's code (buffer, schedule, checkpoints, versioned weights),
  usable without Ray in one process.
- ``SharedShieldEnv``: the runner side, a Gymnasium wrapper around a frozen ``safeshield.ShieldWrapper``
  that ships every transition (runner id + sequence number, failure label) to the learner and
  loads each newer weight version the learner publishes.
- ``TransitionRecorder``: numbers a shielded env's steps into the transitions the learner stores.
- ``ShieldRunner``: a plain Ray runner actor that steps a ``SharedShieldEnv`` (benchmarks, tests).
- ``DistributedSACLagrangian``: the safe-transfer layout (N rollout actors, one learner,
  parameter broadcast) around ``safeshield.agents.SACLagrangian``, same config and checkpoints.
- ``init``: ``ray.init`` on the local cores by default, or a cluster by ``address``.

Importing this module imports Ray; ``import safeshield`` never does. ``docs/ray.md`` has the
layout, the fault-tolerance rules and the measured costs.
"""

from __future__ import annotations

from safeshield.integrations.ray.runtime import init
from safeshield.integrations.ray.sac_lagrangian import DistributedSACLagrangian, SACLagrangianLearner, SACRolloutWorker
from safeshield.integrations.ray.shield import (
    SharedShield,
    SharedShieldEnv,
    ShieldLearner,
    ShieldRunner,
    ShieldSpec,
    TransitionRecorder,
)

__all__ = [
    "DistributedSACLagrangian",
    "SACLagrangianLearner",
    "SACRolloutWorker",
    "SharedShield",
    "SharedShieldEnv",
    "ShieldLearner",
    "ShieldRunner",
    "ShieldSpec",
    "TransitionRecorder",
    "init",
]
