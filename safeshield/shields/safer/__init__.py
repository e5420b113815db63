"""SAFER (Slack et al.): a safety skill prior that remaps a latent action box, with its pieces.

- ``prior``: the ``SAFER`` model and ``SAFERConfig`` (Alg. 1 inference, Alg. 2 training).
- ``flow``: the conditional RealNVP flow bounded onto the action box.
- ``dataset``: ``OfflineDataset``, the labelled offline data the prior trains on.
- ``calibration``: the latent bound eta (Alg. 3 and its exact variant).
"""

from safeshield.shields.safer.calibration import eta_algorithm3, eta_deterministic, in_box_unsafe_fraction
from safeshield.shields.safer.dataset import OfflineDataset
from safeshield.shields.safer.prior import SAFER, SAFERConfig

__all__ = [
    "OfflineDataset",
    "SAFER",
    "SAFERConfig",
    "eta_algorithm3",
    "eta_deterministic",
    "in_box_unsafe_fraction",
]
