"""One module per shield method; importing this package registers them all.

- ``sqrl``: SQRL safety critic (Srinivasan et al. 2020).
- ``csc``: CSC conservative safety critic and its Q-ensembles baseline (Bharadhwaj et al.).
- ``safer``: SAFER flow prior, a remap shield (Slack et al.).
"""

from safeshield.shields.csc import CSC, CSCConfig, QEnsemble, QEnsembleConfig
from safeshield.shields.safer import SAFER, SAFERConfig
from safeshield.shields.sqrl import SQRL, SQRLConfig

__all__ = ["CSC", "CSCConfig", "QEnsemble", "QEnsembleConfig", "SAFER", "SAFERConfig", "SQRL", "SQRLConfig"]
