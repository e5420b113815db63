"""One module per shield method; importing this package registers them all.

- ``sqrl``: SQRL safety critic (Srinivasan et al. 2020).
- ``safer``: SAFER flow prior, a remap shield (Slack et al.).
"""

from safeshield.shields.safer import SAFER, SAFERConfig
from safeshield.shields.sqrl import SQRL, SQRLConfig

__all__ = ["SAFER", "SAFERConfig", "SQRL", "SQRLConfig"]
