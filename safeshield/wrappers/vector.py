"""The vector front end of a shield: N sub-envs, one model, batched risk queries.

- ``VectorShieldWrapper``: a ``gymnasium.vector.VectorWrapper`` that shields every sub-env of a
  ``VectorEnv`` with one shared ``SafetyCritic`` (one buffer, one learner). It is the vector twin
  of ``safeshield.wrappers.ShieldWrapper`` and runs the same per-step code (``ShieldStepper``).
- ``wrap_vector``: ``safeshield.wrap`` for vector envs (a method name and its options).
- ``env_info`` / ``EnvInfo``: one sub-env's info out of a vector info dict (a dict / a lazy view,
  which is what the indicator receives).

Per vector step the shield makes one batched risk query for all N proposals and, per
resampling round, one batched query for the candidates of every rejected proposal.

Autoreset. Gymnasium vector envs reset a finished sub-env themselves, in one of three modes
(``env.metadata["autoreset_mode"]``):

- ``NEXT_STEP`` (the default): the step after an episode ends resets that sub-env and ignores
  its action. The shield passes that action through unscored, stores nothing for it and
  reports ``info["_shield"][i] = False``.
- ``SAME_STEP``: the finishing step returns the reset observation; the true last observation
  is ``info["final_obs"][i]`` and the step's info ``info["final_info"]``. The shield stores the
  transition to the final observation, computes the indicator on the final info, and carries
  on from the reset observation.
- ``DISABLED``: the user resets sub-envs with ``reset(options={"reset_mask": mask})``; the
  shield starts a new episode for exactly those rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from safeshield.core.critic import CriticConfig, SafetyCritic
from safeshield.core.decision import Decision
from safeshield.core.model import chosen_config
from safeshield.core.step import StepperFrontEnd, Transitions, flatten_batch

__all__ = ["EnvInfo", "VectorShieldWrapper", "env_info", "wrap_vector"]


class VectorShieldWrapper(StepperFrontEnd, gym.vector.VectorWrapper):
    """Shield every sub-env of a vector env with one shared model, learning from all of them.

    Every ``step(actions)`` validates the ``(num_envs, *action_shape)`` proposals, decides for
    every sub-env that is not autoresetting (row ``i`` decides exactly as a single ``ShieldWrapper``
    with candidate seed ``seed + i`` would), steps the vector env with the executed actions,
    stores each sub-env's transition in the one buffer and learns on the model's schedule (one
    stored transition counts as one step, as for N single shields). ``info["shield"]`` holds
    the single-env report's keys as arrays over sub-envs, ``info["_shield"]`` the rows it covers.

    ``reset(seed=s)`` reseeds row ``i``'s candidate RNG with ``s + i`` (or ``s[i]`` for a list),
    matching how the vector env seeds its sub-envs.

    Example:
        >>> import gymnasium as gym, safeshield
        >>> envs = gym.make_vec("safeshield/DrunkSpider-v0", num_envs=4, vectorization_mode="sync")
        >>> envs = safeshield.VectorShieldWrapper(envs, "sqrl")
        >>> obs, info = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, info = envs.step(envs.action_space.sample())
        >>> info["shield"]["intervened"].shape
        (4,)
    """

    def __init__(
        self,
        env: VectorEnv,
        model: SafetyCritic | str = "sqrl",
        indicator: str | Callable | None = None,
        *,
        train: bool | None = None,
        seed: int | None = None,
        config: CriticConfig | dict[str, Any] | None = None,
        on_nonfinite: str = "raise",
        enforce: bool = True,
    ):
        """As ``ShieldWrapper``: ``train=None`` keeps a given model's frozen or learning state, and the
        indicator defaults to the one the model was trained with, then the env's declared one."""
        if not isinstance(env, VectorEnv):
            raise TypeError(f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}")
        if _is_vector_shielded(env):
            raise ValueError("env is already shielded; wrap the unshielded vector env")
        super().__init__(env)
        self._build_stepper(
            env,
            model,
            indicator,
            env.single_observation_space,
            env.single_action_space,
            env.num_envs,
            train=train,
            seed=seed,
            config=config,
            on_nonfinite=on_nonfinite,
            enforce=enforce,
        )
        self.autoreset_mode = AutoresetMode((env.metadata or {}).get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._autoresetting = np.zeros(env.num_envs, dtype=bool)
        self._all_rows = np.arange(env.num_envs)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        try:
            obs, info = self.env.reset(seed=seed, options=options)
        except Exception as error:
            if self.stepper.error is None:
                raise
            raise RuntimeError(
                f"the vector env cannot reset after an earlier step raised ({self.stepper.error}); a gymnasium "
                "AsyncVectorEnv shuts a failed worker down: close it and build a new vector env"
            ) from error
        self.stepper.error = None
        mask = (options or {}).get("reset_mask")
        rows = self._all_rows if mask is None else np.flatnonzero(mask)
        if seed is not None:
            self.stepper.seed(seed)
        self.stepper.remember(self._flatten(obs))
        self.stepper.start_episodes(rows)
        self._autoresetting[rows] = False
        return obs, info

    def step(self, actions):
        stepper = self.stepper
        stepper.ready("vector env")
        proposals = stepper.validate(actions, self.num_envs)
        rows = np.flatnonzero(~self._autoresetting)
        executed = proposals.copy()
        decision = stepper.decide(proposals[rows], rows) if rows.size else Decision.accepted(proposals[:0], np.zeros(0))
        executed[rows] = decision.action
        try:
            obs, rewards, terminations, truncations, infos = self.env.step(stepper.to_env(executed, self.num_envs))
            flat = self._flatten(obs)
            failures = self._learn(rows, decision, executed[rows], flat, obs, rewards, terminations, truncations, infos)
        except BaseException as error:
            stepper.fail(error)
            raise
        infos = dict(infos)
        infos["shield"], infos["_shield"] = self._report(actions, executed, rows, decision, failures)
        stepper.remember(flat)
        done = np.logical_or(terminations, truncations)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoresetting = done.copy()
        if self.autoreset_mode != AutoresetMode.DISABLED:
            stepper.start_episodes(np.flatnonzero(done))
        return obs, rewards, terminations, truncations, infos

    @property
    def episode_failures(self) -> np.ndarray:
        """Failing steps in each sub-env's current episode."""
        return self.stepper.episode_failures.copy()

    # -- the pieces -----------------------------------------------------------------------------
    def _flatten(self, obs) -> np.ndarray:
        return flatten_batch(self.single_observation_space, obs, self.num_envs)

    def _learn(self, rows, decision, executed, flat, obs, rewards, terminations, truncations, infos) -> np.ndarray:
        """Indicator and storage for ``rows``; a SAME_STEP reset row uses its final obs and info."""
        next_flat = flat[rows]
        final = infos.get("_final_obs") if self.autoreset_mode == AutoresetMode.SAME_STEP else None
        failures = np.empty(rows.size)
        for j, i in enumerate(rows):
            if final is not None and final[i]:
                env_obs, info = infos["final_obs"][i], EnvInfo(infos["final_info"], i)
                next_flat[j] = flatten_batch(self.single_observation_space, env_obs, 1, batched=False)[0]
            else:
                env_obs, info = _row(obs, i), EnvInfo(infos, i)
            failures[j] = self.indicator(env_obs, rewards[i], terminations[i], truncations[i], info)
        stepper = self.stepper
        skip = (
            stepper.nonfinite[rows] | stepper.check_next(next_flat) | ~stepper.check_rewards(np.asarray(rewards)[rows])
        )
        step = Transitions(
            rows, stepper.obs_flat[rows], executed, next_flat, failures, terminations[rows], truncations[rows], skip
        )
        stepper.record(step, decision)
        return failures

    def _report(self, actions, executed, rows, decision, failures) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``info["shield"]`` as arrays over sub-envs (rows not covered hold zeros) and its mask."""
        n, stepper = self.num_envs, self.stepper
        covered = np.zeros(n, dtype=bool)
        covered[rows] = True

        def column(values, dtype):
            out = np.zeros(n, dtype=dtype)
            out[rows] = values
            return out

        shape = (n, *stepper.action_shape)
        report = {
            "proposed_action": np.array(actions, dtype=stepper.action_dtype).reshape(shape),
            "executed_action": stepper.actions.report(executed, (n,)),
            "intervened": column(decision.intervened, bool),
            "risk": column(decision.risk, np.float64),
            "proposal_risk": column(decision.proposal_risk, np.float64),
            "threshold": np.full(n, float(stepper.decided_threshold)),
            "regret": np.full(n, stepper.decided_regret),
            "fell_back": column(decision.fell_back, bool),
            "n_candidates": column(decision.n_candidates, np.int64),
            "failure": column(failures, np.float64),
        }
        return report, covered


def env_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a vector info dict (keys whose ``_key`` mask covers ``i``), as a dict."""
    return {key: dict(value) if isinstance(value, EnvInfo) else value for key, value in EnvInfo(infos, i).items()}


class EnvInfo(Mapping):
    """A read-only view of sub-env ``i``'s entries of a vector info dict, built without copying.

    The indicator reads one or two keys per step; building a dict of every key for every
    sub-env would cost more than the decision itself at N = 16.
    """

    __slots__ = ("_infos", "_i")

    def __init__(self, infos: dict[str, Any], i: int):
        self._infos, self._i = infos, i

    def _covers(self, key: str) -> bool:
        mask = self._infos.get("_" + key)
        return mask is None or bool(mask[self._i])

    def __getitem__(self, key: str):
        if key.startswith("_") or key not in self._infos or not self._covers(key):
            raise KeyError(key)
        value = self._infos[key]
        return EnvInfo(value, self._i) if isinstance(value, dict) else value[self._i]

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and not key.startswith("_") and key in self._infos and self._covers(key)

    def __iter__(self):
        return (key for key in self._infos if not key.startswith("_") and self._covers(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _row(obs, i: int):
    if isinstance(obs, dict):
        return {key: _row(value, i) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_row(value, i) for value in obs)
    return obs[i]


def _is_vector_shielded(env: VectorEnv) -> bool:
    while isinstance(env, gym.vector.VectorWrapper):
        if isinstance(env, VectorShieldWrapper):
            return True
        env = env.env
    return False


def wrap_vector(
    env: VectorEnv,
    method: str = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    config: CriticConfig | None = None,
    on_nonfinite: str = "raise",
    enforce: bool = True,
    **options: Any,
) -> VectorShieldWrapper:
    """``safeshield.wrap`` for a vector env: one ``method`` shield shared by every sub-env.

    ``options`` are fields of the method's config (``eps_safe=0.05`` for SQRL).
    """
    chosen = chosen_config(config, options)
    return VectorShieldWrapper(
        env,
        method,
        indicator,
        train=train,
        seed=seed,
        config=chosen,
        on_nonfinite=on_nonfinite,
        enforce=enforce,
    )
