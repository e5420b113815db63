"""Judge a shield on episodes it never learned from: its quality report on held-out rollouts.

The running report (``env.quality_report()``) scores the steps a shield learned from, while it
learned. ``held_out_quality`` runs the agent's policy in another env with the shield in shadow
mode and not learning (``train=False, enforce=False``): every proposal runs unchanged and the
shield only scores it, so the ROC AUC, calibration and false-safe rate describe its risk on data
it has not seen, under the agent's own behaviour. What enforcing would change is a separate
question (run the agent inside the shield for that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from safeshield.core.model import SafetyModel
from safeshield.core.validation import check_count
from safeshield.wrappers.shield import ShieldWrapper

__all__ = ["held_out_quality"]


def held_out_quality(
    model: SafetyModel,
    env: gym.Env,
    policy: Callable[[Any], Any],
    *,
    episodes: int = 20,
    indicator: str | Callable | None = None,
    seed: int = 0,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """The shield-quality report of ``model`` on ``episodes`` episodes of ``policy`` in ``env``.

    ``policy(obs) -> action`` is the agent (an SB3 agent: ``lambda o: agent.predict(o)[0]``);
    ``env`` should be a fresh env of the task, not the one the shield trained in; ``indicator``
    as for ``safeshield.wrap`` (the env's declared one when omitted). The model does not learn and
    acts on nothing here; a model that was learning learns on afterwards (check it mid-training).
    ``max_steps`` caps the rollouts (for tasks whose episodes may never end). The report
    (``safeshield.core.quality.quality_report``) gains ``episodes``, the episodes run.
    """
    if not isinstance(model, SafetyModel) or model.kind != "reject":
        raise TypeError(
            "model must be a reject/resample shield's model (SQRL, CSC, ...: env.safety_model, or one from "
            f"safeshield.load), got {model!r}; a remap prior (SAFER) steers every action and has no risk to judge"
        )
    check_count("episodes", episodes)
    if max_steps is not None:
        check_count("max_steps", max_steps)
    learning = not model.frozen  # a wrapper with train=False freezes the model; a learning one learns on after
    try:
        shield = ShieldWrapper(env, model, indicator, train=False, seed=seed, enforce=False)
        obs, _ = shield.reset(seed=seed)
        finished = steps = 0
        while finished < episodes and (max_steps is None or steps < max_steps):
            obs, _, terminated, truncated, _ = shield.step(policy(obs))
            steps += 1
            if terminated or truncated:
                finished += 1
                obs, _ = shield.reset()
    finally:
        if learning:
            model.unfreeze()
    return shield.quality_report() | {"episodes": finished}
