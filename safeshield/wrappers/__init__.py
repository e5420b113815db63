"""What a user touches: the Gymnasium wrappers.

- ``ShieldWrapper``: a reject/resample shield around one env (``safeshield.wrap``).
- ``VectorShieldWrapper``: one shared reject/resample shield for every sub-env of a vector env.
- ``RemapWrapper``: a remap shield (SAFER): the agent acts in a latent box the prior maps.
- ``PreviousRewardCost``: append r_{t-1}, c_{t-1} to observations (safe transfer's agent input).
- ``wrapper_for(kind)``: the wrapper that drives a model of ``kind`` (``SafetyModel.kind``).
- ``held_out_quality``: a shield's quality report on episodes it never learned from (shadow mode).
"""

from __future__ import annotations

from safeshield.wrappers.held_out import held_out_quality
from safeshield.wrappers.observation import PreviousRewardCost
from safeshield.wrappers.remap import RemapWrapper
from safeshield.wrappers.shield import ShieldWrapper
from safeshield.wrappers.vector import VectorShieldWrapper, wrap_vector

__all__ = [
    "PreviousRewardCost",
    "RemapWrapper",
    "ShieldWrapper",
    "VectorShieldWrapper",
    "held_out_quality",
    "wrap_vector",
    "wrapper_for",
]

_WRAPPERS: dict[str, type[ShieldWrapper] | type[RemapWrapper]] = {"reject": ShieldWrapper, "remap": RemapWrapper}


def wrapper_for(kind: str) -> type[ShieldWrapper] | type[RemapWrapper]:
    """The single-env wrapper class for models of ``kind`` (``"reject"`` or ``"remap"``)."""
    if kind not in _WRAPPERS:
        raise ValueError(f"kind must be one of {sorted(_WRAPPERS)}, got {kind!r}")
    return _WRAPPERS[kind]
