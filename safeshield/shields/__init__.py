"""One module per shield method; importing this package registers them all.

- ``sqrl``: SQRL safety critic (Srinivasan et al. 2020).
"""

from safeshield.shields.sqrl import SQRL, SQRLConfig

__all__ = ["SQRL", "SQRLConfig"]
