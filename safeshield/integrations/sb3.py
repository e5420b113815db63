"""Stable-Baselines3 adapter: train any SB3 agent inside a shield, storing what was executed.

- ``ShieldedVecEnv``: an SB3 ``VecEnvWrapper`` that shields every sub-env with one shared
  model (one batched risk query per step), the SB3 twin of ``safeshield.VectorShieldWrapper``;
  ``wrap_vec_env(venv, "sqrl", eps_safe=...)`` builds one from a method name and options.
- ``ShieldCallback``: the one adapter call (``model.learn(..., callback=ShieldCallback())``).
  It writes the shield's metrics (``safeshield.core.metrics.METRICS``: failures, interventions,
  fallbacks, their rates, proposal-risk mean and quantiles, threshold) to the model's logger, so
  they appear under ``shield/`` in TensorBoard and SB3's CSV next to SB3's own tags. It attaches
  the agent's own action distribution as the shield's candidate sampler and makes the learner
  store the *executed* action:

  * off-policy (SAC, TD3, DDPG): SB3 stores ``buffer_action``, the proposal rescaled to
    [-1, 1] (``OffPolicyAlgorithm._store_transition``). The callback overwrites the rows the
    shield changed with the executed action, rescaled the same way, before they are stored.
  * on-policy (PPO, A2C), by default (``on_policy="proposed"``): the rollout keeps the agent's
    own sampled action and its log-probability. The shield is then part of the environment's
    dynamics and the rollout is exactly on-policy for the shielded env, so PPO's likelihood ratio
    is unbiased. ``on_policy="executed"`` instead stores the executed action with its recomputed
    log-probability; that data is off-policy (the executed action was not drawn from pi_old).
    Measured on CartPole-v1 + PPO (``docs/integrations.md``): "proposed" failed less and
    returned more.
- ``policy_sampler``: ``sample(obs[m, d], n, generator) -> actions[m, n, a]`` in env units
  from an SB3 model's policy: SAC's squashed Gaussian, PPO/A2C's Gaussian (gSDE: its
  marginal Gaussian), TD3/DDPG's deterministic actor plus its Gaussian exploration noise.

Works with a per-env ``safeshield.ShieldWrapper`` too (``SAC("MlpPolicy", safeshield.wrap(env, ...))``,
``DummyVecEnv`` or ``SubprocVecEnv``): the executed action travels in ``info["shield"]``. Only
the policy sampler needs the shield in this process (``ShieldedVecEnv`` or ``DummyVecEnv``); in
``SubprocVecEnv`` each process's shield samples perturbations of the proposal.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution, SquashedDiagGaussianDistribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from safeshield.core.critic import CriticConfig, SafetyCritic
from safeshield.core.metrics import ShieldStats
from safeshield.core.spaces import observation_parts, unflatten_batch
from safeshield.core.step import StepperFrontEnd, Transitions, flatten_batch
from safeshield.core.validation import check_choice, check_positive
from safeshield.wrappers.shield import find_shield

__all__ = [
    "ShieldedVecEnv",
    "ShieldCallback",
    "discrete_policy",
    "find_shields",
    "learn_from_replay_buffer",
    "policy_sampler",
    "wrap_vec_env",
]

ON_POLICY_ACTIONS = ("proposed", "executed")
"""What ``ShieldCallback`` makes a PPO/A2C rollout store where the shield intervened."""

TD3_EXPLORATION_STD = 0.1  # TD3 paper (Fujimoto et al. 2018) exploration noise, in [-1, 1] units


class ShieldedVecEnv(StepperFrontEnd, VecEnvWrapper):
    """Shield every sub-env of an SB3 ``VecEnv`` with one shared model, learning from all of them.

    Decisions, storage and the learning schedule are ``ShieldStepper``'s, as in ``ShieldWrapper`` and
    ``VectorShieldWrapper``. SB3 resets a finished sub-env inside ``step`` and keeps its last
    observation in ``info["terminal_observation"]``: the shield stores the transition to that
    observation and tells termination from time-limit truncation by ``info["TimeLimit.truncated"]``.
    Each sub-env's ``info["shield"]`` is the single-env report.

    Example:
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> import safeshield
        >>> from safeshield.integrations.sb3 import ShieldedVecEnv
        >>> env = ShieldedVecEnv(make_vec_env("safeshield/DrunkSpider-v0", n_envs=4), "sqrl")
        >>> obs = env.reset()
        >>> obs, rewards, dones, infos = env.step(np.zeros((4, 2), np.float32))
        >>> sorted(infos[0]["shield"])[:2]
        ['executed_action', 'failure']
    """

    def __init__(
        self,
        venv: VecEnv,
        model: SafetyCritic | str = "sqrl",
        indicator: str | Callable | None = None,
        *,
        train: bool | None = None,
        seed: int | None = None,
        config: CriticConfig | dict[str, Any] | None = None,
        on_nonfinite: str = "raise",
        enforce: bool = True,
    ):
        if not isinstance(venv, VecEnv):
            raise TypeError(f"venv must be a stable_baselines3 VecEnv, got {type(venv).__name__}")
        super().__init__(venv)
        self._build_stepper(
            venv,
            model,
            indicator,
            venv.observation_space,
            venv.action_space,
            venv.num_envs,
            train=train,
            seed=seed,
            config=config,
            on_nonfinite=on_nonfinite,
            enforce=enforce,
        )
        self._pending_step: tuple[np.ndarray, Any] | None = None

    def seed(self, seed: int | None = None):
        seeds = self.venv.seed(seed)
        if seed is not None:
            self.stepper.seed(seed)
        return seeds

    def reset(self):
        obs = self.venv.reset()
        self.stepper.remember(flatten_batch(self.observation_space, obs, self.num_envs))
        self.stepper.start_episodes(np.arange(self.num_envs))
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        stepper = self.stepper
        stepper.ready("VecEnv")
        proposals = stepper.validate(actions, self.num_envs)
        decision = stepper.decide(proposals)
        self._pending_step = (np.array(actions, copy=True), decision)
        self.venv.step_async(stepper.to_env(decision.action, self.num_envs))

    def step_wait(self):
        proposed, decision = self._pending_step
        stepper, n = self.stepper, self.num_envs
        obs, rewards, dones, infos = self.venv.step_wait()
        flat = flatten_batch(self.observation_space, obs, n)
        next_flat = flat.copy()
        truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        terminated = np.asarray(dones, dtype=bool) & ~truncated
        failures = np.empty(n)
        for i, info in enumerate(infos):
            env_obs = info["terminal_observation"] if dones[i] and "terminal_observation" in info else _row(obs, i)
            if dones[i]:
                next_flat[i] = flatten_batch(self.observation_space, env_obs, 1, batched=False)[0]
            failures[i] = self.indicator(env_obs, rewards[i], terminated[i], truncated[i], info)
        skip = stepper.nonfinite | stepper.check_next(next_flat) | ~stepper.check_rewards(rewards)
        step = Transitions(
            np.arange(n), stepper.obs_flat, decision.action, next_flat, failures, terminated, truncated, skip
        )
        stepper.record(step, decision)
        stepper.remember(flat)
        stepper.start_episodes(np.flatnonzero(dones))
        infos = [
            dict(info, shield=stepper.report(proposed[i], decision.action[i], decision, i, failures[i]))
            for i, info in enumerate(infos)
        ]
        return obs, rewards, dones, infos


def wrap_vec_env(
    venv: VecEnv,
    method: str = "sqrl",
    indicator: str | Callable | None = None,
    *,
    train: bool = True,
    seed: int | None = None,
    **options: Any,
) -> ShieldedVecEnv:
    """``safeshield.wrap`` for an SB3 ``VecEnv``; ``options`` are fields of the method's config."""
    return ShieldedVecEnv(venv, method, indicator, train=train, seed=seed, config=options)


def find_shields(venv: VecEnv) -> list[Any]:
    """The shields living in this process: a ``ShieldedVecEnv`` in the wrapper chain, or per-env
    ``ShieldWrapper`` wrappers inside a ``DummyVecEnv`` (a ``SubprocVecEnv`` keeps its own elsewhere)."""
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, ShieldedVecEnv):
            return [venv]
        venv = venv.venv
    if not isinstance(venv, DummyVecEnv):
        return []
    return [shield for shield in map(find_shield, venv.envs) if shield is not None]


def _same_observations(model: BaseAlgorithm, shield: Any) -> bool:
    """Whether the agent's policy takes the shield's observations (up to ``VecNormalize``); warn if not."""
    theirs, ours = model.observation_space, shield.stepper.observation_space
    if gym.spaces.flatdim(theirs) == gym.spaces.flatdim(ours):
        return True
    warnings.warn(
        f"the agent's observations ({theirs}) are not the shield's ({ours}): an SB3 wrapper between them "
        "(VecFrameStack, VecTransposeImage, ...) changes them, so the shield cannot ask the policy for "
        "candidates and perturbs the proposal instead. Wrap the shield outside that wrapper "
        "(ShieldedVecEnv(VecFrameStack(...))) for candidates from the policy",
        stacklevel=3,
    )
    return False


def policy_sampler(model: BaseAlgorithm, normalize: Callable | None = None) -> Callable:
    """The SB3 model's action distribution as a candidate sampler (env units, seeded by ``generator``).

    For a ``Discrete`` / ``MultiDiscrete`` / ``MultiBinary`` action space the sampler also has
    ``probs(obs) -> (m, joint actions)``, so the shield masks the agent's distribution exactly
    (``discrete_policy``). ``normalize`` maps the shield's observations to the policy's (the
    ``VecNormalize`` between them: ``observation_normalizer``).
    """
    if isinstance(model.action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return discrete_policy(model, normalize)
    policy = model.policy
    space = model.action_space
    low = torch.as_tensor(space.low, dtype=torch.float32)
    high = torch.as_tensor(space.high, dtype=torch.float32)
    policy_obs = policy_inputs(model.observation_space, policy.device, normalize)

    def unscale(scaled: torch.Tensor) -> torch.Tensor:
        return low + (scaled + 1.0) * 0.5 * (high - low)

    def sample(obs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        m = obs.shape[0]
        with torch.no_grad():
            mean, std, kind = _gaussian(model, policy_obs(obs))
            mean, std = mean.float().cpu(), std.float().cpu()
            noise = torch.randn((m, n, mean.shape[-1]), generator=generator)
            drawn = mean.unsqueeze(1) + std.unsqueeze(1) * noise
            if kind == "squashed":
                return unscale(torch.tanh(drawn))
            if kind == "scaled":
                return unscale(drawn.clamp(-1.0, 1.0))
            return drawn

    return sample


def policy_inputs(space: gym.Space, device: Any = "cpu", normalize: Callable | None = None) -> Callable[[Any], Any]:
    """``flat[m, d] -> `` the batch an SB3 policy takes for ``space``.

    The shield flattens observations (``gymnasium.spaces.flatten``); SB3 policies take them in the
    space's own shape, a ``Dict`` or ``Tuple`` of ``Box`` / ``Discrete`` spaces (``MultiInputPolicy``:
    goal-conditioned robotics envs) as a dict or tuple of batches, each ``Discrete`` as its index.
    ``normalize`` (numpy in, numpy out, in that shape) runs before the batch becomes tensors.
    """
    unflatten = unflatten_batch(space)

    def to_policy(flat):
        obs = unflatten(flat)
        if normalize is not None:
            obs = normalize(obs)
        if isinstance(obs, dict):
            return {key: torch.as_tensor(value, device=device) for key, value in obs.items()}
        if isinstance(obs, tuple):
            return tuple(torch.as_tensor(value, device=device) for value in obs)
        return torch.as_tensor(obs, dtype=torch.float32, device=device)

    return to_policy


def observation_normalizer(venv: VecEnv) -> Callable | None:
    """The ``VecNormalize`` wrappers between an SB3 agent and its shields, as one numpy function.

    A shield inside them (``VecNormalize(DummyVecEnv([shielded env]))``) sees raw observations
    while the policy sees normalised ones, so the policy's candidates must be drawn at the
    normalised observation. None when no such wrapper normalises observations.
    """
    chain = []
    while isinstance(venv, VecEnvWrapper) and not isinstance(venv, ShieldedVecEnv):
        if isinstance(venv, VecNormalize) and venv.norm_obs:
            chain.append(venv)
        venv = venv.venv
    if not chain:
        return None

    def normalize(obs):
        for wrapper in reversed(chain):  # the innermost first, as the observation travels up
            obs = wrapper.normalize_obs(obs)
        return obs

    return normalize


def discrete_policy(model: BaseAlgorithm, normalize: Callable | None = None) -> Callable:
    """An SB3 model's distribution over a Discrete / MultiDiscrete / MultiBinary action space.

    ``probs(obs[m, d]) -> (m, N)`` over the joint actions (in ``numpy.ravel_multi_index`` order
    of the sub-actions): PPO / A2C's categorical (a product of them for MultiDiscrete, of
    Bernoullis for MultiBinary); DQN's epsilon-greedy policy, ``1 - epsilon`` on the greedy
    action plus ``epsilon / N`` everywhere, with the model's current ``exploration_rate``.
    ``sample(obs, n, generator)`` draws ``n`` joint indices per row from it (env units for a
    Discrete space: ``start + index``).
    """
    from safeshield.core.spaces import action_codec

    policy, codec = model.policy, action_codec(model.action_space)
    policy_obs = policy_inputs(model.observation_space, policy.device, normalize)

    def probs(obs) -> torch.Tensor:
        m = obs.shape[0]
        with torch.no_grad():
            obs_t = policy_obs(obs)
            if hasattr(policy, "q_net"):  # DQN: epsilon-greedy over the Q-network's argmax
                q = policy.q_net(obs_t).float().cpu()
                epsilon = float(getattr(model, "exploration_rate", 0.0))
                p = torch.full_like(q, epsilon / q.shape[-1])
                p[torch.arange(m), q.argmax(dim=-1)] += 1.0 - epsilon
                return p
            if not hasattr(policy, "get_distribution"):
                raise TypeError(f"policy_sampler does not know {type(policy).__name__} for {model.action_space}")
            distribution = policy.get_distribution(obs_t).distribution
            parts = distribution if isinstance(distribution, (list, tuple)) else [distribution]
            joint = torch.ones(m, 1)
            for part in parts:
                if isinstance(part, torch.distributions.Bernoulli):
                    for column in part.probs.float().cpu().reshape(m, -1).T:
                        joint = (joint[:, :, None] * torch.stack([1 - column, column], dim=1)[:, None, :]).reshape(
                            m, -1
                        )
                else:
                    joint = (joint[:, :, None] * part.probs.float().cpu().reshape(m, 1, -1)).reshape(m, -1)
            return joint

    def sample(obs, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        index = torch.multinomial(probs(obs), int(n), replacement=True, generator=generator)
        if codec.nvec.size == 1:
            return index + int(codec.start[0])
        return torch.as_tensor(codec.to_env(index.numpy().reshape(-1), (index.shape[0], int(n))))

    sample.probs = probs
    return sample


def _gaussian(model: BaseAlgorithm, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(mean, std, kind)`` of the policy's Gaussian at ``obs``; ``kind`` says how to map a draw to env
    units: ``"squashed"`` (tanh then rescale), ``"scaled"`` (clip to [-1, 1] then rescale) or ``"env"``."""
    policy = model.policy
    actor = getattr(policy, "actor", None)
    if actor is not None and hasattr(actor, "get_action_dist_params"):  # SAC (tanh-squashed Gaussian)
        mean, log_std, kwargs = actor.get_action_dist_params(obs)
        if type(actor.action_dist) is SquashedDiagGaussianDistribution:  # SB3's std, no distribution objects
            return mean, log_std.exp(), "squashed"
        normal = actor.action_dist.proba_distribution(mean, log_std, **kwargs).distribution
        return normal.mean, normal.stddev, "squashed"
    if type(getattr(policy, "action_dist", None)) is DiagGaussianDistribution:  # PPO, A2C without gSDE
        # get_distribution's mean and std as SB3 computes them, without building the distribution
        # objects (their argument checks cost more than the network on every rejected step)
        features = BasePolicy.extract_features(policy, obs, policy.pi_features_extractor)
        mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
        return mean, policy.log_std.exp().expand_as(mean), "squashed" if policy.squash_output else "env"
    if hasattr(policy, "get_distribution"):  # PPO, A2C (ActorCriticPolicy) with gSDE
        normal = policy.get_distribution(obs).distribution
        if not isinstance(normal, torch.distributions.Normal):
            raise TypeError(f"policy_sampler needs a Gaussian policy, got {type(normal).__name__}")
        return normal.mean, normal.stddev, "squashed" if policy.squash_output else "env"
    if actor is not None:  # TD3, DDPG: deterministic tanh actor plus Gaussian exploration noise
        mu = actor(obs)
        sigma = getattr(getattr(model, "action_noise", None), "_sigma", None)
        std = torch.as_tensor(sigma if sigma is not None else TD3_EXPLORATION_STD, dtype=mu.dtype).expand_as(mu)
        return mu, std, "scaled"
    raise TypeError(f"policy_sampler does not know {type(policy).__name__}")


class ShieldCallback(BaseCallback):
    """Make an SB3 algorithm learn from what the shield executed; draw candidates from its policy;
    log what the shield did.

    ``model.learn(total_timesteps, callback=ShieldCallback())``. With ``attach=False`` the
    shield keeps its own candidate sampler (perturbations of the proposal). ``on_policy`` says what
    a PPO/A2C rollout stores where the shield intervened: ``"proposed"`` (default) the agent's own
    action, the shield being part of the env; ``"executed"`` the executed action with its
    recomputed log-probability (module docstring). Off-policy learners always store the
    executed action. ``intervention_penalty`` (on-policy, "proposed" only; reward units, default
    0) is subtracted from the stored reward of every step whose proposal the shield replaced,
    so the agent learns not to need the shield (the punishment of Alshiekh et al. 2018, "Safe
    Reinforcement Learning via Shielding", arXiv:1708.08611); the episode returns SB3 reports are
    the env's own. With ``log=True``
    every step's ``info["shield"]`` reports feed ``self.stats`` (a ``ShieldStats``) and its
    scalars go to ``self.logger`` under ``shield/`` (TensorBoard, CSV, stdout: whatever the model's
    logger writes; ``stable_baselines3.common.logger.configure`` or ``tensorboard_log=`` choose).
    Rates and risk quantiles are over the last ``window`` shielded steps. The scalars are recorded
    where SB3 may dump its logger (a step on which an episode ended, the end of a rollout), not on
    every step, and the logger is dumped once more when training ends, so a short run still
    leaves its last values in the files.

    Example:
        >>> from stable_baselines3 import SAC
        >>> import gymnasium as gym, safeshield
        >>> env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *step: 0.0)
        >>> model = SAC("MlpPolicy", env, learning_starts=50, policy_kwargs={"net_arch": [8]})
        >>> callback = ShieldCallback()
        >>> _ = model.learn(60, callback=callback)
        >>> callback.stats.steps, callback.stats.failures
        (60, 0)
    """

    def __init__(
        self,
        attach: bool = True,
        verbose: int = 0,
        *,
        log: bool = True,
        window: int = 1000,
        on_policy: str = "proposed",
        intervention_penalty: float = 0.0,
    ):
        super().__init__(verbose)
        check_choice("on_policy", on_policy, ON_POLICY_ACTIONS)
        check_positive("intervention_penalty", intervention_penalty, allow_zero=True)
        self.attach, self.log, self.on_policy = attach, log, on_policy
        self.intervention_penalty = float(intervention_penalty)
        self.shields: list[Any] = []
        self.stats = ShieldStats(window)
        self.rewritten = 0  # stored actions replaced by executed ones

    def _init_callback(self) -> None:
        if self.intervention_penalty and (
            not isinstance(self.model, OnPolicyAlgorithm) or self.on_policy != "proposed"
        ):
            raise ValueError(
                f"intervention_penalty={self.intervention_penalty!r} applies to on-policy learners (PPO, A2C) "
                f"storing their own proposals (on_policy='proposed'); {type(self.model).__name__} with "
                f"on_policy={self.on_policy!r} stores the executed action, which the penalty must not be charged "
                "to. Drop intervention_penalty, or use on_policy='proposed' with an on-policy algorithm"
            )
        self.shields = find_shields(self.training_env)
        if self.attach and self.shields:
            sample = policy_sampler(self.model, observation_normalizer(self.training_env))
            for shield in self.shields:
                if _same_observations(self.model, shield):
                    shield.attach_policy(sample)

    def _record(self) -> None:
        if self.log and self.stats.steps:
            for key, value in self.stats.scalars().items():
                self.logger.record(key, value)

    def _on_rollout_end(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):  # it dumps right after each rollout
            self._record()

    def _on_training_end(self) -> None:
        if self.log and self.stats.steps:
            self._record()
            self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        if self.log:
            self.stats.update(info["shield"] for info in infos if "shield" in info)
            if any(self.locals.get("dones", ())):  # off-policy algorithms dump after an episode ends
                self._record()
        rows = [i for i, info in enumerate(infos) if "shield" in info and info["shield"]["intervened"]]
        if "log_probs" in self.locals and self.on_policy == "proposed":  # the shield is part of the env
            if rows and self.intervention_penalty:  # the agent pays for a proposal the shield replaced
                self.locals["rewards"][rows] -= self.intervention_penalty
            return True
        if not rows:
            return True
        executed = np.stack([infos[i]["shield"]["executed_action"] for i in rows]).astype(np.float32)
        policy = self.model.policy
        if "buffer_actions" in self.locals:  # OffPolicyAlgorithm.collect_rollouts
            buffer_actions = self.locals["buffer_actions"]
            stored = policy.scale_action(executed) if policy.squash_output else executed
            buffer_actions[rows] = stored.reshape(buffer_actions[rows].shape)
        elif "log_probs" in self.locals:  # OnPolicyAlgorithm.collect_rollouts, on_policy="executed"
            actions, log_probs = self.locals["actions"], self.locals["log_probs"]
            stored = policy.scale_action(executed) if policy.squash_output else executed
            actions[rows] = stored.reshape(actions[rows].shape)
            obs = _select(self.locals["obs_tensor"], rows)
            with torch.no_grad():
                _, log_prob, _ = policy.evaluate_actions(obs, torch.as_tensor(actions[rows], device=policy.device))
            log_probs[rows] = log_prob.to(log_probs.dtype)
        else:
            raise RuntimeError(
                "ShieldCallback found neither buffer_actions (off-policy) nor log_probs (on-policy) in "
                f"{type(self.model).__name__}.collect_rollouts; this SB3 version is not supported"
            )
        self.rewritten += len(rows)
        return True


def _select(obs, rows):
    if isinstance(obs, dict):
        return {key: value[rows] for key, value in obs.items()}
    return obs[rows]


def _row(obs, i: int):
    if isinstance(obs, dict):
        return {key: value[i] for key, value in obs.items()}
    return obs[i]


FailureLabels = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``failure(next_obs[T, ...], reward[T], terminated[T]) -> labels[T]`` in [0, 1], on a replay buffer's steps."""


def learn_from_replay_buffer(
    model: SafetyCritic,
    source: BaseAlgorithm | ReplayBuffer,
    updates: int,
    failure: FailureLabels | None = None,
) -> dict[str, float]:
    """Pre-train ``model`` on an off-policy SB3 agent's replay buffer (SAC, TD3, DDPG, DQN), then learn.

    Box observations, or Dict ones of Box and Discrete parts (a ``DictReplayBuffer``: flattened as the
    shield flattens them; ``failure`` then receives the dict); Box or Discrete actions.

    A shield learned online races the agent (docs/effectiveness.md); one trained on a previous run's
    steps protects from the first step. This reads each env's steps in the order they happened
    (oldest first, across the ring's wrap), turns SB3's [-1, 1] Box actions back into env units,
    splits ``dones`` into terminations and time-limit truncations (``timeouts``), and hands them to
    ``model.learn_offline``. ``failure`` labels each step; by default a failure is a termination
    that was not a time limit (the ``"terminated"`` indicator). Give ``failure`` when the env also
    terminates on success (``safeshield``'s envs: their ``info["failure"]`` is not in the buffer, so
    derive it from the next observation or the reward). The buffer must hold the same observations
    the shield sees: the unwrapped env's, not ``VecNormalize``'s.

        >>> agent = SAC("MlpPolicy", env); agent.learn(20_000)            # doctest: +SKIP
        >>> model = safeshield.model_for(env, "sqrl")                     # doctest: +SKIP
        >>> learn_from_replay_buffer(model, agent, updates=4_000)         # doctest: +SKIP
        >>> env = safeshield.wrap(env, model.freeze(), indicator="terminated")  # doctest: +SKIP
    """
    buffer = getattr(source, "replay_buffer", source)
    if not isinstance(buffer, (ReplayBuffer, DictReplayBuffer)):
        raise TypeError(f"source must be an off-policy SB3 agent or its replay buffer, got {type(buffer).__name__}")
    if buffer.optimize_memory_usage:
        raise ValueError(
            "the replay buffer was built with optimize_memory_usage=True, which overwrites each episode's last "
            "next observation; build the agent with the default optimize_memory_usage=False"
        )
    if failure is None and not buffer.handle_timeout_termination:
        raise ValueError(
            "the replay buffer does not record time limits (handle_timeout_termination=False), so failures cannot "
            "be told from truncations; pass failure=lambda next_obs, reward, terminated: ..."
        )
    size = buffer.buffer_size if buffer.full else buffer.pos
    if size == 0:
        raise ValueError("the replay buffer is empty: train the agent (agent.learn) before pre-training a shield on it")
    order = (np.arange(size) + (buffer.pos if buffer.full else 0)) % buffer.buffer_size  # oldest first
    columns = [_replay_steps(buffer, order, env, failure) for env in range(buffer.n_envs)]
    steps = {key: np.concatenate([column[key] for column in columns]) for key in columns[0]}
    return model.learn_offline(**steps, updates=updates)


def _env_rows(stored, order: np.ndarray, env: int):
    """One env's rows of a replay buffer's observations (a dict of arrays for a ``DictReplayBuffer``)."""
    if isinstance(stored, dict):
        return {key: value[order, env] for key, value in stored.items()}
    return stored[order, env]


def _flat_rows(space: gym.Space, rows) -> np.ndarray:
    """``(T, flat_dim)`` float32 observations as the shield sees them (``gymnasium.spaces.flatten``'s
    layout): a Box reshaped; a Dict's parts in the space's order, a Discrete part one-hot."""
    if not isinstance(space, gym.spaces.Dict):
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    parts = []
    for key, part in observation_parts(space):
        values = np.asarray(rows[key])
        if isinstance(part, gym.spaces.Discrete):  # SB3 stores the index
            index = values.reshape(-1).astype(np.int64) - int(part.start)
            values = np.eye(int(part.n), dtype=np.float32)[index]
        parts.append(values.astype(np.float32).reshape(len(values), -1))
    return np.concatenate(parts, axis=1)


def _replay_steps(buffer: ReplayBuffer, order: np.ndarray, env: int, failure: FailureLabels | None) -> dict:
    """One env's steps of ``buffer`` in time order, as ``learn_offline``'s arguments (its last step cuts the chain)."""
    done = buffer.dones[order, env] > 0.5
    timeout = buffer.timeouts[order, env] > 0.5 if buffer.handle_timeout_termination else np.zeros_like(done)
    terminated = done & ~timeout
    truncated = done & timeout
    truncated[-1] |= not done[-1]  # the last stored step's episode goes on: no link past it
    next_obs = _env_rows(buffer.next_observations, order, env)
    actions = buffer.actions[order, env]
    space = buffer.action_space
    if isinstance(space, gym.spaces.Box):  # SB3 stores Box actions rescaled to [-1, 1]
        actions = space.low + (actions.reshape(-1, *space.shape) + 1.0) * 0.5 * (space.high - space.low)
    elif isinstance(space, gym.spaces.Discrete):  # stored as (T, 1) floats
        actions = actions[:, 0].astype(np.int64)
    labels = (
        terminated.astype(np.float32) if failure is None else failure(next_obs, buffer.rewards[order, env], terminated)
    )
    space = buffer.observation_space
    return {
        "obs": _flat_rows(space, _env_rows(buffer.observations, order, env)),
        "actions": actions,
        "next_obs": _flat_rows(space, next_obs),
        "failure": labels,
        "terminated": terminated,
        "truncated": truncated,
    }
