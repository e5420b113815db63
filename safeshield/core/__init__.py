"""What every shield shares (internals; users touch ``safeshield.wrap`` and ``safeshield.wrappers``).

- ``SafetyModel`` / ``SafetyConfig`` and the one method registry (``core.model``).
- ``SafetyCritic`` / ``CriticConfig``: base of reject/resample models (``core.critic``).
- ``RemapPrior``: base of remap priors (``core.prior``).
- ``ShieldStepper``: the per-step work of the reject/resample wrappers (``core.step``).
- ``decide`` / ``Decision`` and candidate samplers: the pure decision core (``core.decision``).
- ``make_indicator``: failure indicators (``core.indicators``).
- ``TransitionBuffer``: replay storage (``core.buffer``).
- ``ranking.action_ranking``: does the action a shield prefers avert the failure (MuJoCo, ``core.ranking``).
- ``save_checkpoint`` / ``load_checkpoint`` / ``restore``: safetensors + JSON, atomic (``core.checkpoint``).
- ``mlp`` / ``StateActionNet``: network builders (``core.networks``).
"""

from safeshield.core.buffer import Batch, TransitionBuffer
from safeshield.core.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from safeshield.core.critic import CriticConfig, SafetyCritic
from safeshield.core.decision import SELECTIONS, Decision, PerturbationSampler, PolicySampler, decide
from safeshield.core.indicators import make_indicator
from safeshield.core.model import SafetyConfig, SafetyModel, build_model, get_method, method_names, register_method
from safeshield.core.networks import StateActionNet, mlp
from safeshield.core.prior import RemapPrior
from safeshield.core.step import ShieldStepper

__all__ = [
    "Batch",
    "CheckpointError",
    "CriticConfig",
    "Decision",
    "PerturbationSampler",
    "PolicySampler",
    "RemapPrior",
    "SELECTIONS",
    "SafetyConfig",
    "SafetyCritic",
    "SafetyModel",
    "ShieldStepper",
    "StateActionNet",
    "TransitionBuffer",
    "build_model",
    "decide",
    "get_method",
    "load_checkpoint",
    "make_indicator",
    "method_names",
    "mlp",
    "register_method",
    "restore",
    "save_checkpoint",
]
