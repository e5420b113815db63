"""What every shield shares.

- ``Shield``: the Gymnasium wrapper front end (``core.wrapper``).
- ``ShieldModel`` / ``ShieldConfig``: the base of each method's model (``core.model``).
- ``decide`` / ``Decision`` and candidate samplers: the pure decision core (``core.decision``).
- ``make_indicator``: failure indicators (``core.indicators``).
- ``TransitionBuffer``: replay storage (``core.buffer``).
- ``save_checkpoint`` / ``load_checkpoint``: safetensors + JSON, atomic (``core.checkpoint``).
- ``mlp`` / ``StateActionNet``: network builders (``core.networks``).
"""

from safeshield.core.buffer import Batch, TransitionBuffer
from safeshield.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from safeshield.core.decision import SELECTIONS, Decision, PerturbationSampler, PolicySampler, decide
from safeshield.core.indicators import make_indicator
from safeshield.core.model import ShieldConfig, ShieldModel, get_method, method_names, register_method
from safeshield.core.networks import StateActionNet, mlp
from safeshield.core.wrapper import Shield

__all__ = [
    "Batch",
    "CheckpointError",
    "Decision",
    "PerturbationSampler",
    "PolicySampler",
    "SELECTIONS",
    "Shield",
    "ShieldConfig",
    "ShieldModel",
    "StateActionNet",
    "TransitionBuffer",
    "decide",
    "get_method",
    "load_checkpoint",
    "make_indicator",
    "method_names",
    "mlp",
    "register_method",
    "save_checkpoint",
]
