"""A ``safeshield train`` run's configuration: one TOML file, presets, overrides, the resolved copy.

- ``RunConfig``: every setting of a run (env, method, agent, indicator, budgets, seeds) plus the
  shield's options (``[shield]``, fields of the method's config) and the agent's (``[agent]``).
- ``load_config`` / ``resolve``: defaults, then a preset or a file (``--config``), then the
  command line, then ``--set section.key=value`` overrides, in that order.
- ``to_toml`` / ``from_toml``: the resolved config is saved as ``config.toml`` in the run folder
  and reads back to the same ``RunConfig`` (``safeshield train --config RUN/config.toml`` repeats
  a run).
- ``PRESETS`` / ``preset_path``: the TOML presets shipped in ``safeshield/experiments/presets``;
  each value in them cites its source in a comment.
- ``option_docs``: each option of a config dataclass with its default and the source comment its
  definition carries (what ``safeshield methods`` prints).

File layout (every key optional)::

    [run]            # the fields of RunConfig below
    env = "InvertedPendulum-v5"
    method = "sqrl"
    [shield]         # fields of the method's config: safeshield methods <name>
    eps_safe = 0.1
    [agent]          # SB3 constructor keywords, or the reference agent's config fields
    learning_starts = 1000
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import tokenize
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AGENTS",
    "METHODS",
    "PRESETS",
    "RunConfig",
    "from_toml",
    "load_config",
    "option_docs",
    "parse_override",
    "preset_path",
    "resolve",
    "to_toml",
]

METHODS = ("sqrl", "csc", "q_ensemble", "safer", "none")
AGENTS = ("sb3:SAC", "sb3:PPO", "sb3:TD3", "sac", "sac-lagrangian", "trpo-lagrangian")
PRESET_DIR = Path(__file__).with_name("presets")
PRESETS = tuple(sorted(path.stem for path in PRESET_DIR.glob("*.toml")))


@dataclass(frozen=True)
class RunConfig:
    """One ``safeshield train`` run. Every default is our choice unless it says otherwise."""

    env: str = ""  # gymnasium or safeshield id of the env to train in (required)
    method: str = "sqrl"  # shield method, or "none" for the unshielded baseline on the same seeds
    agent: str = "sb3:SAC"  # learner: sb3:SAC, sb3:PPO, sb3:TD3 or a reference agent (sac, ...)
    indicator: str = ""  # "" = the env's declared one; "terminated", "cost", "info:<key>", "module:function"
    steps: int = 20_000  # env steps of the training phase, per seed
    seeds: int = 3  # seeds 0 .. seeds-1 (3 is the fewest with a meaningful 95 % CI)
    pretrain_env: str = ""  # optional low-stakes env trained in first (pre-train -> fine-tune)
    pretrain_steps: int = 0  # env steps of the pre-training phase (0 with pretrain_env = steps)
    filter_pretraining: bool = True  # false: the shield runs in shadow during pre-training (learns, never acts)
    shadow: bool = False  # true: the shield learns and reports beside the agent in every phase but never acts
    shield_checkpoint: str = ""  # start from a saved shield (required for safer: its offline prior)
    eval_episodes: int = 10  # deterministic episodes of the final agent after training (0 = none)
    workers: int = 2  # parallel processes, one per seed at a time (0 = in this process)
    out: str = "runs/train"  # run folder
    shield: dict[str, Any] = field(default_factory=dict)  # the method's config fields ([shield])
    agent_options: dict[str, Any] = field(default_factory=dict)  # the agent's ([agent])

    def __post_init__(self) -> None:
        for name in ("steps", "seeds"):
            _check_int(name, getattr(self, name), 1)
        for name in ("pretrain_steps", "eval_episodes", "workers"):
            _check_int(name, getattr(self, name), 0)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.agent not in AGENTS:
            raise ValueError(f"agent must be one of {', '.join(AGENTS)}, got {self.agent!r}")
        if self.method == "none" and self.shield:
            raise ValueError(f"method 'none' has no shield, but [shield] options were given: {sorted(self.shield)}")
        if self.method == "none" and self.shield_checkpoint:
            raise ValueError("method 'none' has no shield; drop --shield-checkpoint or choose a method")
        if self.method == "safer" and not self.shield_checkpoint:
            raise ValueError(
                "method 'safer' remaps actions through a prior learned from offline data; pass "
                "--shield-checkpoint DIR (a prior saved with SAFER.save, see docs/safer.md)"
            )
        if self.pretrain_steps and not self.pretrain_env:
            raise ValueError("pretrain_steps needs pretrain_env (the env to pre-train in)")
        for name in ("filter_pretraining", "shadow"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.shadow and self.method in ("none", "safer"):
            raise ValueError(
                f"shadow (the shield learns and reports but never acts) needs a reject/resample method (sqrl, csc, "
                f"q_ensemble), got method={self.method!r}"
            )
        if not self.filter_pretraining and (not self.pretrain_env or self.method in ("none", "safer")):
            raise ValueError(
                "filter_pretraining=false (the shield only learns while pre-training) needs pretrain_env and a "
                f"reject/resample method (sqrl, csc, q_ensemble), got pretrain_env={self.pretrain_env!r}, "
                f"method={self.method!r}"
            )

    @property
    def phases(self) -> list[tuple[str, str, int]]:
        """``(phase, env id, steps)`` in order: an optional pre-training phase, then training."""
        phases = []
        if self.pretrain_env:
            phases.append(("pretrain", self.pretrain_env, self.pretrain_steps or self.steps))
        phases.append(("train", self.env, self.steps))
        return phases

    @property
    def total_steps(self) -> int:
        return sum(steps for _, _, steps in self.phases)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("shield", "agent_options"))


def preset_path(name_or_path: str) -> Path:
    """A preset's name (``safeshield methods --presets``) or a TOML file's path, as a path."""
    if name_or_path in PRESETS:
        return PRESET_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"--config must be a TOML file or one of the presets {', '.join(PRESETS)}, got {name_or_path!r}"
        )
    return path


def load_config(name_or_path: str) -> dict[str, Any]:
    """Read a preset or TOML file into ``{"run": {...}, "shield": {...}, "agent": {...}}``."""
    path = preset_path(name_or_path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from error
    unknown = sorted(set(document) - {"run", "shield", "agent"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; the sections are [run], [shield] and [agent]")
    run = document.get("run", {})
    bad = sorted(set(run) - set(_RUN_FIELDS))
    if bad:
        raise ValueError(f"{path}: unknown [run] key(s) {bad}; the keys are {list(_RUN_FIELDS)}")
    return {"run": dict(run), "shield": dict(document.get("shield", {})), "agent": dict(document.get("agent", {}))}


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"shield.eps_safe=0.05"`` -> ``("shield", "eps_safe", 0.05)``; the value is read as TOML
    (``true``, ``[64, 64]``, ``"x"``), and as a plain string when it is not valid TOML."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or section not in ("run", "shield", "agent") or not name:
        raise ValueError(f"--set must look like shield.eps_safe=0.05 (sections run, shield, agent), got {text!r}")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name, value


def resolve(
    file: dict[str, Any] | None = None, cli: dict[str, Any] | None = None, overrides: list[str] = ()
) -> RunConfig:
    """Defaults <- ``file`` (``load_config``'s dict) <- ``cli`` (run fields given on the command line)
    <- ``overrides`` (``--set`` strings)."""
    file = file or {"run": {}, "shield": {}, "agent": {}}
    run = {**file["run"], **{k: v for k, v in (cli or {}).items() if v is not None}}
    # a preset's [shield] table does not apply to the unshielded baseline run with the same file
    shield = {} if run.get("method") == "none" else dict(file["shield"])
    agent = dict(file["agent"])
    for text in overrides:
        section, name, value = parse_override(text)
        {"run": run, "shield": shield, "agent": agent}[section][name] = value
    bad = sorted(set(run) - set(_RUN_FIELDS))
    if bad:
        raise ValueError(f"unknown run setting(s) {bad}; the settings are {list(_RUN_FIELDS)}")
    return RunConfig(**run, shield=shield, agent_options=agent)


# -- TOML out ----------------------------------------------------------------------------------------
def to_toml(config: RunConfig, header: str = "") -> str:
    """The config as TOML that ``from_toml`` reads back to an equal ``RunConfig``."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append("[run]")
    lines += [f"{name} = {_toml_value(getattr(config, name))}" for name in _RUN_FIELDS]
    for section, values in (("shield", config.shield), ("agent", config.agent_options)):
        lines += ["", f"[{section}]"]
        lines += [f"{name} = {_toml_value(value)}" for name, value in sorted(values.items()) if value is not None]
    return "\n".join(lines) + "\n"


def from_toml(text: str) -> RunConfig:
    document = tomllib.loads(text)
    return RunConfig(
        **document.get("run", {}), shield=document.get("shield", {}), agent_options=document.get("agent", {})
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


# -- option documentation ------------------------------------------------------------------------------
def option_docs(config_class: type) -> list[dict[str, Any]]:
    """``[{name, default, source}]`` for each field of a config dataclass, in definition order.

    ``source`` is the comment on the field's line in its class body (the project's convention:
    every default names its source), searched up the class's bases for inherited fields.
    """
    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(cls) and cls is not object:
            comments.update(_field_comments(cls))
    defaults = config_class()
    return [
        {"name": f.name, "default": _plain(getattr(defaults, f.name)), "source": comments.get(f.name, "")}
        for f in dataclasses.fields(config_class)
    ]


def _field_comments(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments, line_names = {}, {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.start[1] == 4 and token.start[0] not in line_names:
            line_names[token.start[0]] = token.string
        elif token.type == tokenize.COMMENT and token.start[0] in line_names:
            comments[line_names[token.start[0]]] = token.string.lstrip("# ").strip()
    return comments


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
