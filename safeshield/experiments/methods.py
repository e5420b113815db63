"""What ``safeshield methods`` prints: each shield's options with default, meaning and source.

- ``describe_methods``: a text table per method (``name=None``: all installed methods).
- ``method_toml``: a complete ``safeshield train`` config for one method, every option set to its
  default with its meaning and source as a comment; edit it and pass it to ``--config``.
- ``MEANINGS``: one line per option name, what it does (the source comes from the config
  class's own comment, so it never drifts from the code).
"""

from __future__ import annotations

from typing import Any

from safeshield.experiments.config import RunConfig, _toml_value, option_docs, to_toml

__all__ = ["MEANINGS", "describe_methods", "method_config_class", "method_toml"]

MEANINGS = {
    # every reject/resample shield
    "n_candidates": "candidate actions scored per resampling round",
    "resample_rounds": "rounds of candidates before falling back to the least risky one",
    "widen": "candidate spread multiplier per extra round",
    "perturbation_scale": "std of candidates around the proposal, as a fraction of the action half-range",
    "uniform_fraction": "share of candidates drawn uniformly over the action box",
    "selection": "which safe candidate runs: safest, closest to the proposal, uniform, riskiest safe",
    "widen_policy": "later rounds also widen draws from the agent's policy",
    "buffer_capacity": "transitions the shield keeps for learning",
    "batch_size": "minibatch size of each shield update",
    "learning_starts": "stored transitions before the shield's first update (sooner once warmup_failures are stored)",
    "train_every": "env steps between bursts of the updates owed so far (it batches them; the number of "
    "updates is updates_per_step: for one update every 10 steps set train_every=10, updates_per_step=0.1)",
    "updates_per_step": "gradient steps per stored transition (update-to-data ratio; may be fractional)",
    "preset": 'a named set of defaults ("paper": the paper\'s exact settings)',
    "horizon": "failure horizon in env steps: how far ahead the risk looks for a failure "
    "(given alone, it replaces the default in seconds)",
    "target": "the critic's training target (nstep: failures discounted over the horizon; "
    "safest: the same if the least risky action were taken from some step on, opt-in; "
    "window: chance of a failure within it; td: one-step backup)",
    "regret": "above the threshold, allow risk up to the least risky action found plus this; None = threshold only",
    "balance": "share of each minibatch drawn from transitions a failure followed (re-weighted to stay calibrated)",
    "guard": "back off towards the nominal threshold when nothing passes for long",
    "budget": "allowed failures (per 1000 env steps, or per episode: budget_unit), which the threshold adapts to "
    "(and, while overspent, the regret by the same factor); None = fixed threshold",
    "budget_unit": 'what budget counts: "steps" (failures per 1000 env steps) or "episode" (failures per episode)',
    "warmup_failures": "failures seen before the shield may reject",
    "warmup_updates": "critic updates before the shield may reject (run at once when warmup_failures are stored)",
    "n_critics": "independent critics in the ensemble, each bootstrapping from its own target network",
    "ensemble_risk": "how the critics' risks combine into one: max (the most pessimistic) or mean",
    "bootstrap": "next action of the target: policy (a draw of the agent's pi) or executed (what the shielded "
    "agent ran)",
    "failures": "what the risk measures: first (the chance of the next failure), count (the failure steps ahead, "
    "for a per-step cost that lasts), or auto (count once a failure does not end its episode)",
    "normalize_obs": "standardise the critic's observation inputs by the stored ones (clipped at 10 std)",
    # SQRL
    "eps_safe": "risk threshold: a proposal with Q_safe >= eps_safe is checked against safer candidates",
    "horizon_seconds": "failure horizon in seconds, converted with the env's dt (sets horizon)",
    "gamma_safe": "safety discount: how far ahead Q_safe looks for failures",
    "lr": "learning rate (Adam unless the method says otherwise)",
    "hidden": "hidden layer widths of the critic",
    "tau": "Polyak rate of the target network",
    "fail_weight": "weight of failure labels in the loss (0.5 = unweighted, calibrated)",
    "pretraining": "pre-training: pick the riskiest safe candidate to explore the boundary",
    # CSC / Q-ensemble
    "chi": "tolerated average failures per episode; the threshold adapts to it",
    "gamma": "discount of the cost critic",
    "alpha": "weight of the conservative (CQL) term; 0 = plain critic",
    "cql_samples": "policy draws per state for the conservative term",
    "episodes_per_epoch": "episodes averaged into V_C before the threshold updates",
    "threshold_units": "paper: eps = (1-gamma)(chi - V_C); normalised: chi - V_C",
    # SAFER
    "context_dim": "size of the safety variable c",
    "window": "past states the safety variable is inferred from",
    "n_couplings": "Real NVP coupling layers of the flow",
    "flow_hidden": "hidden widths inside each coupling layer",
    "embed_dim": "per-frame encoding size",
    "frame_hidden": "hidden widths of the frame encoder",
    "transformer_layers": "transformer layers over the state window",
    "transformer_heads": "attention heads",
    "use_context": "use the safety variable (False = PARROT)",
    "contrastive_weight": "weight of the safe-up / unsafe-down contrastive term",
    "divergence_margin": "freeze rule margin of the contrastive term",
    "unsafe_floor": "contrastive term: a per-action floor on the unsafe log-likelihood (False = freeze the batch)",
    "optimizer": "sgd or adam",
    "momentum": "SGD momentum",
    "grad_clip": "gradient norm clip",
    "max_unsafe_fraction": "largest share of unsafe latents allowed inside the eta box",
    "eta_method": "how the latent bound eta is calibrated",
    "eta_init": "eta before calibration",
    "eta_iterations": "iteration cap of the eta search",
    "successful_only": "learn only from safe steps of successful episodes",
    "online_capacity": "steps kept for online fine-tuning",
    "recalibrate_every": "online steps between eta recalibrations",
}


def method_config_class(name: str) -> type:
    """The config dataclass of an installed method (reject/resample or remap)."""
    from safeshield.core.model import get_method

    if name not in _installed():
        raise ValueError(f"unknown method {name!r}; installed: {', '.join(_installed())}")
    return get_method(name).config_class


def _installed() -> list[str]:
    from safeshield.core.model import method_names

    return list(method_names())


def describe_methods(name: str | None = None) -> str:
    """Per method: a header and one line per option ``name = default  meaning  [source]``."""
    names = [name] if name else _installed()
    blocks = []
    for method in names:
        docs = option_docs(method_config_class(method))
        width = max(len(f"{d['name']} = {_shown(d['default'])}") for d in docs)
        lines = [
            f"{method}  (safeshield.wrap(env, {method!r}, **options); "
            f"train --method {method} --set shield.<option>=...)"
        ]
        for doc in docs:
            left = f"{doc['name']} = {_shown(doc['default'])}"
            meaning = MEANINGS.get(doc["name"], "")
            lines.append(f"  {left:{width}}  {meaning}" + (f"  [{doc['source']}]" if doc["source"] else ""))
        blocks.append("\n".join(lines))
    blocks.append("none  (the unshielded baseline: train --method none)")
    return "\n\n".join(blocks)


def _shown(value: Any) -> str:
    """An option's default as TOML, or ``None`` for an unset optional one (TOML has no null)."""
    return "None" if value is None else _toml_value(value)


def method_toml(name: str, **run: Any) -> str:
    """A full ``safeshield train`` config for method ``name``: every option at its default, commented."""
    docs = option_docs(method_config_class(name))
    config = RunConfig(method=name, shield_checkpoint="PATH" if name == "safer" else "", **run)
    head = to_toml(
        config, header=f"safeshield train config for {name}: edit, then safeshield train --config FILE --env ID"
    )
    head = head[: head.index("[shield]")]
    lines = [head.rstrip("\n"), "", "[shield]"]
    for doc in docs:
        comment = "; ".join(part for part in (MEANINGS.get(doc["name"], ""), doc["source"]) if part)
        setting = (
            f"{doc['name']} = {_toml_value(doc['default'])}"
            if doc["default"] is not None
            else f"# {doc['name']} = (unset)"
        )
        lines.append(setting + (f"  # {comment}" if comment else ""))
    lines += ["", "[agent]  # SB3 keywords (learning_starts = 1000, ...) or the reference agent's config fields"]
    return "\n".join(lines) + "\n"
