"""Stable-Baselines3 integration: the learner stores what the shield executed, and training runs.

- off-policy (SAC, TD3): every replay-buffer action is the executed action rescaled to [-1, 1]
  (SB3 would store the proposal), with a per-env ``ShieldWrapper`` (DummyVecEnv, SubprocVecEnv) and
  with the shared-model ``ShieldedVecEnv``;
- on-policy (PPO): replaced rows store the executed action and its recomputed log-probability;
- the policy sampler draws from the agent's own distribution, reproducibly given a generator;
- ``ShieldedVecEnv`` handles SB3's same-step reset (``terminal_observation``) and truncation;
- SB3's and Gymnasium's env checkers pass on a shielded env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from gymnasium.utils.env_checker import check_env as gym_check_env  # noqa: E402
from stable_baselines3 import A2C, PPO, SAC, TD3  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CallbackList  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import SubprocVecEnv  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations.sb3 import ShieldCallback, ShieldedVecEnv, policy_sampler, wrap_vec_env  # noqa: E402

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


def small():
    return {"net_arch": [16, 16]}  # a fresh dict: SB3 adds keys to the one it is given


class Recorder(BaseCallback):
    """Keep every step's shield reports; optionally check the on-policy rewrite as it happens."""

    def __init__(self, check_log_probs=False):
        super().__init__()
        self.reports, self.check_log_probs, self.checked = [], check_log_probs, 0

    def _on_step(self) -> bool:
        self.reports.append([info["shield"] for info in self.locals["infos"]])
        if self.check_log_probs:
            rows = [i for i, r in enumerate(self.reports[-1]) if r["intervened"]]
            if rows:
                executed = torch.as_tensor(np.stack([self.reports[-1][i]["executed_action"] for i in rows]))
                with torch.no_grad():
                    _, log_prob, _ = self.model.policy.evaluate_actions(self.locals["obs_tensor"][rows], executed)
                torch.testing.assert_close(self.locals["log_probs"][rows], log_prob)
                np.testing.assert_array_equal(self.locals["actions"][rows], executed.numpy())
                self.checked += len(rows)
        return True


def assert_replay_holds_executed(model, reports):
    buffer = model.replay_buffer
    steps = len(reports)
    executed = np.array([[r["executed_action"] for r in step] for step in reports])
    proposed = np.array([[r["proposed_action"] for r in step] for step in reports])
    intervened = np.array([[r["intervened"] for r in step] for step in reports])
    np.testing.assert_allclose(buffer.actions[:steps], model.policy.scale_action(executed), atol=1e-5)
    assert intervened.sum() > 5, "the test needs replaced actions"
    moved = np.abs(model.policy.scale_action(proposed) - buffer.actions[:steps]).max(axis=-1)
    assert (moved[intervened] > 1e-3).all(), "replaced rows must not hold the proposal"


def test_sac_with_a_per_env_shield_stores_executed_actions_and_trains(far_from_point):
    env = gym.make(DRUNK_SPIDER)
    shielded = safeshield.ShieldWrapper(env, far_from_point(env, n_candidates=8), train=False, seed=0)
    recorder = Recorder()
    model = SAC("MlpPolicy", shielded, learning_starts=40, batch_size=16, policy_kwargs=small(), seed=0)
    adapter = ShieldCallback()
    model.learn(120, callback=CallbackList([adapter, recorder]))
    assert_replay_holds_executed(model, recorder.reports)
    assert model._n_updates > 0 and adapter.rewritten > 5
    assert shielded.safety_model.policy_sampler is not None, "candidates come from SAC's own policy"


def test_td3_with_a_shared_vec_shield_stores_executed_actions(far_from_point):
    venv = make_vec_env(DRUNK_SPIDER, n_envs=3, seed=0)
    shielded = ShieldedVecEnv(venv, far_from_point(venv, n_candidates=8), train=False, seed=0)
    recorder = Recorder()
    model = TD3("MlpPolicy", shielded, learning_starts=30, batch_size=16, policy_kwargs=small(), seed=0)
    model.learn(90, callback=CallbackList([ShieldCallback(), recorder]))
    assert_replay_holds_executed(model, recorder.reports)
    assert model._n_updates > 0


def test_td3_with_shields_inside_subproc_vec_env_stores_executed_actions():
    def make():
        return safeshield.make(DRUNK_SPIDER, seed=0, eps_safe=0.0072)  # untrained critic: rejects some

    venv = SubprocVecEnv([make, make], start_method="fork")
    try:
        recorder = Recorder()
        model = TD3("MlpPolicy", venv, learning_starts=20, batch_size=16, policy_kwargs=small(), seed=0)
        adapter = ShieldCallback()
        model.learn(60, callback=CallbackList([adapter, recorder]))
        executed = np.array([[r["executed_action"] for r in step] for step in recorder.reports])
        np.testing.assert_allclose(model.replay_buffer.actions[: len(executed)], executed, atol=1e-5)
        assert adapter.shields == []  # the shields live in the worker processes
    finally:
        venv.close()


def test_ppo_keeps_its_own_actions_and_log_probs_by_default(far_from_point):
    """The default treats the shield as part of the env: PPO's rollout is its own draws."""
    venv = make_vec_env(DRUNK_SPIDER, n_envs=2, seed=0)
    shielded = ShieldedVecEnv(venv, far_from_point(venv, n_candidates=8), train=False, seed=0)
    recorder = Recorder()

    class Rollout(BaseCallback):  # the rollout as collected, before PPO's training pass flattens it
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            obs, actions = (torch.as_tensor(x.reshape(64, -1)) for x in (buffer.observations, buffer.actions))
            with torch.no_grad():  # log pi_old of the stored actions, before PPO's update
                _, log_prob, _ = self.model.policy.evaluate_actions(obs, actions)
            self.columns = [buffer.actions.copy(), buffer.log_probs.reshape(-1).copy(), log_prob.numpy()]

    model = PPO("MlpPolicy", shielded, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=small(), seed=0)
    adapter, rollout = ShieldCallback(), Rollout()
    model.learn(32, callback=CallbackList([adapter, recorder, rollout]))
    proposed = np.array([[r["proposed_action"] for r in step] for step in recorder.reports])
    intervened = np.array([[r["intervened"] for r in step] for step in recorder.reports])
    assert intervened.sum() > 5 and adapter.rewritten == 0
    stored, log_probs, expected = rollout.columns
    np.testing.assert_allclose(np.clip(stored, -1, 1), proposed, atol=1e-6)  # (steps, envs, act_dim)
    np.testing.assert_allclose(log_probs, expected, atol=1e-5)


def test_shield_callback_names_a_bad_on_policy_choice():
    with pytest.raises(ValueError, match="on_policy"):
        ShieldCallback(on_policy="both")


def test_ppo_stores_executed_action_with_its_recomputed_log_prob(far_from_point):
    venv = make_vec_env(DRUNK_SPIDER, n_envs=2, seed=0)
    shielded = ShieldedVecEnv(venv, far_from_point(venv, n_candidates=8), train=False, seed=0)
    recorder = Recorder(check_log_probs=True)
    model = PPO("MlpPolicy", shielded, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=small(), seed=0)
    model.learn(64, callback=CallbackList([ShieldCallback(on_policy="executed"), recorder]))
    assert recorder.checked > 5 and model._n_updates > 0
    last = recorder.reports[-32:]
    executed = np.array([[r["executed_action"] for r in step] for step in last])
    intervened = np.array([[r["intervened"] for r in step] for step in last])
    stored = model.rollout_buffer.actions  # flattened env-major by PPO's training pass (swap_and_flatten)
    flat = executed.swapaxes(0, 1).reshape(stored.shape), intervened.swapaxes(0, 1).reshape(-1)
    np.testing.assert_array_equal(stored[flat[1]], flat[0][flat[1]])


def test_sac_trains_with_a_learning_sqrl_shield_on_a_shared_vec_env():
    venv = wrap_vec_env(
        make_vec_env(DRUNK_SPIDER, n_envs=2, seed=0), "sqrl", seed=0, learning_starts=32, batch_size=16, hidden=(16,)
    )
    model = SAC("MlpPolicy", venv, learning_starts=32, batch_size=16, policy_kwargs=small(), seed=0)
    model.learn(100, callback=ShieldCallback())
    assert venv.safety_model.buffer.total_added == 100 and venv.safety_model.updates > 0 and model._n_updates > 0


def test_policy_sampler_draws_from_the_policy_reproducibly():
    env = gym.make(DRUNK_SPIDER)
    for algo in (SAC, TD3, PPO):
        model = algo("MlpPolicy", env, policy_kwargs=small(), seed=0)
        sample = policy_sampler(model)
        obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(3)]))
        first = sample(obs, 500, torch.Generator().manual_seed(1))
        again = sample(obs, 500, torch.Generator().manual_seed(1))
        assert first.shape == (3, 500, 2)
        torch.testing.assert_close(first, again)
        if algo is PPO:  # the Gaussian's mean is the policy's deterministic action
            mean = model.policy.get_distribution(obs).distribution.mean
            torch.testing.assert_close(first.mean(dim=1), mean, atol=0.15, rtol=0)
        else:
            assert first.abs().max() <= 1.0


def test_policy_sampler_takes_dict_observations_as_the_shield_flattens_them():
    """MultiInputPolicy agents (goal-conditioned robotics envs): the shield's flat observation is split
    back into the policy's dict, in gymnasium.spaces.flatten's order, a Discrete part as its index."""
    from safeshield.integrations.sb3 import _gaussian, policy_inputs

    env = make_dict_env()
    model = SAC("MultiInputPolicy", env, policy_kwargs=small(), seed=0)
    raw = [env.observation_space.sample() for _ in range(4)]
    flat = torch.as_tensor(np.stack([gym.spaces.flatten(env.observation_space, o) for o in raw]))
    as_dict = {key: torch.as_tensor(np.stack([o[key] for o in raw])) for key in env.observation_space.spaces}
    with torch.no_grad():
        expected, _, _ = _gaussian(model, as_dict)
        mean, _, _ = _gaussian(model, policy_inputs(env.observation_space)(flat))
    torch.testing.assert_close(mean, expected)
    draws = policy_sampler(model)(flat, 50, torch.Generator().manual_seed(0))
    assert draws.shape == (4, 50, 1) and draws.abs().max() <= 2.0

    mixed = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2, 2))))
    sample = mixed.sample()
    part_index, part_box = policy_inputs(mixed)(torch.as_tensor(gym.spaces.flatten(mixed, sample))[None])
    assert part_index.tolist() == [sample[0]]
    torch.testing.assert_close(part_box, torch.as_tensor(sample[1], dtype=torch.float32)[None])
    nested = gym.spaces.Dict({"inner": gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (1,))})})
    with pytest.raises(TypeError, match="its part 'inner'"):
        policy_inputs(nested)


def test_candidates_are_drawn_at_the_observation_vec_normalize_gives_the_policy():
    """VecNormalize(DummyVecEnv([shielded env])): the shield sees raw observations, the policy normalised
    ones; the attached sampler must evaluate the policy at the normalised observation."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from safeshield.integrations.sb3 import observation_normalizer

    shielded = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *a: 0.0, seed=0)
    venv = VecNormalize(DummyVecEnv([lambda: shielded]))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, policy_kwargs=small(), seed=0)
    model.learn(128, callback=ShieldCallback())
    raw = torch.as_tensor(np.stack([shielded.observation_space.sample() for _ in range(3)]) * 5)
    attached = shielded.safety_model.policy_sampler(raw, 8, torch.Generator().manual_seed(0))
    normalised = policy_sampler(model, venv.normalize_obs)(raw, 8, torch.Generator().manual_seed(0))
    unnormalised = policy_sampler(model)(raw, 8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(attached, normalised)
    assert not torch.allclose(attached, unnormalised)
    assert observation_normalizer(venv) is not None
    assert observation_normalizer(VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=False)) is None
    outside = ShieldedVecEnv(VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")])), "sqrl", lambda *a: 0.0)
    assert observation_normalizer(outside) is None  # this shield sees the normalised observations itself


def test_vec_normalize_with_dict_observations_gives_the_policy_float32_batches():
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    shielded = safeshield.wrap(make_dict_env(), "sqrl", indicator=lambda *a: 0.0, seed=0)
    venv = VecNormalize(DummyVecEnv([lambda: shielded]))
    model = SAC("MultiInputPolicy", venv, learning_starts=20, batch_size=16, policy_kwargs=small(), seed=0)
    model.learn(40, callback=ShieldCallback())
    draws = shielded.safety_model.policy_sampler(torch.zeros(2, 3), 4, torch.Generator().manual_seed(0))
    assert draws.shape == (2, 4, 1) and draws.dtype == torch.float32


def test_a_wrapper_that_changes_observations_between_agent_and_shield_is_announced_not_crashed_on():
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    shielded = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator=lambda *a: 0.0, seed=0)
    model = SAC("MlpPolicy", VecFrameStack(DummyVecEnv([lambda: shielded]), 4), learning_starts=20, seed=0)
    with pytest.warns(UserWarning, match="VecFrameStack.*perturbs the proposal instead"):
        model.learn(30, callback=ShieldCallback())
    assert shielded.safety_model.policy_sampler is None


def test_sac_with_a_dict_observation_stores_executed_actions_and_draws_from_its_policy():
    env = make_dict_env()
    shielded = safeshield.wrap(
        env, "sqrl", indicator=lambda *a: 0.0, seed=0, eps_safe=1e-6, regret=None, warmup_failures=0, warmup_updates=0
    )
    recorder = Recorder()
    model = SAC("MultiInputPolicy", shielded, learning_starts=40, batch_size=16, policy_kwargs=small(), seed=0)
    adapter = ShieldCallback()
    model.learn(80, callback=CallbackList([adapter, recorder]))
    executed = np.array([[r["executed_action"] for r in step] for step in recorder.reports])
    np.testing.assert_allclose(model.replay_buffer.actions[:80], model.policy.scale_action(executed), atol=1e-5)
    assert adapter.rewritten > 20 and model._n_updates > 0
    assert shielded.safety_model.policy_sampler is not None


@pytest.mark.parametrize("algo", [SAC, PPO, A2C])
def test_policy_sampler_uses_the_gaussian_sb3_builds(algo):
    """The sampler reads the mean and std without SB3's distribution objects; they must be SB3's own."""
    from safeshield.integrations.sb3 import _gaussian

    env = gym.make(DRUNK_SPIDER)
    model = algo("MlpPolicy", env, policy_kwargs=small(), seed=0)
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(5)]))
    with torch.no_grad():
        mean, std, _ = _gaussian(model, obs)
        if algo is SAC:
            mean_actions, log_std, _ = model.actor.get_action_dist_params(obs)
            normal = model.actor.action_dist.proba_distribution(mean_actions, log_std).distribution
        else:
            normal = model.policy.get_distribution(obs).distribution
    torch.testing.assert_close(mean, normal.mean)
    torch.testing.assert_close(std, normal.stddev)


def make_dict_env():
    """Pendulum with its observation split in two parts (a goal-conditioned env's shape)."""
    box = gym.make("Pendulum-v1").observation_space
    space = gym.spaces.Dict(
        {"angle": gym.spaces.Box(box.low[:2], box.high[:2]), "speed": gym.spaces.Box(box.low[2:], box.high[2:])}
    )
    return gym.wrappers.TransformObservation(gym.make("Pendulum-v1"), lambda o: {"angle": o[:2], "speed": o[2:]}, space)


class Countdown(gym.Env):
    """obs = (episode, t); terminates after 3 steps (a failure) unless truncated after 2 by TimeLimit."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-100, 100, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.episode = -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.array([self.episode, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.episode, self.t], np.float32), 0.0, self.t >= 3, False, {}


@pytest.mark.parametrize("limit", [None, 2])
def test_shielded_vec_env_stores_the_terminal_observation_not_the_reset_one(limit):
    def make():
        return gym.wrappers.TimeLimit(Countdown(), limit) if limit else Countdown()

    venv = wrap_vec_env(make_vec_env(make, n_envs=2), "sqrl", indicator="terminated", learning_starts=10**6)
    venv.reset()
    for _ in range(9):
        venv.step(np.zeros((2, 2), np.float32))
    batch = venv.safety_model.buffer.all()
    assert len(batch.obs) == 18
    assert (batch.next_obs[:, 0] == batch.obs[:, 0]).all() and (batch.next_obs[:, 1] == batch.obs[:, 1] + 1).all()
    ends = batch.next_obs[:, 1] == (limit or 3)
    np.testing.assert_array_equal(batch.terminated, ends if limit is None else np.zeros_like(ends))
    np.testing.assert_array_equal(batch.failure, ends if limit is None else np.zeros_like(ends))
    assert venv.total_failures == (6 if limit is None else 0)


def test_sb3_and_gymnasium_env_checkers_pass_on_a_shielded_env():
    check_env(safeshield.make(DRUNK_SPIDER, seed=0))
    gym_check_env(safeshield.make(DRUNK_SPIDER, seed=0), skip_render_check=True)


def test_shielded_vec_env_rejects_bad_input():
    with pytest.raises(TypeError, match="VecEnv"):
        ShieldedVecEnv(gym.make(DRUNK_SPIDER))
    venv = wrap_vec_env(make_vec_env(DRUNK_SPIDER, n_envs=2))
    with pytest.raises(gym.error.ResetNeeded):
        venv.step(np.zeros((2, 2), np.float32))
    venv.reset()
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        venv.step(np.zeros(2, np.float32))


def _tensorboard_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = [path for path in folder.rglob("events.out.tfevents.*")]
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_shield_metrics_land_in_tensorboard_and_csv_next_to_sb3s_own(tmp_path, far_from_point):
    """The user promise: the shield is visible in the logs the user already reads (issue 18)."""
    pytest.importorskip("tensorboard")
    from stable_baselines3.common.logger import configure

    from safeshield.core.metrics import METRICS

    env = gym.make(DRUNK_SPIDER)
    env = safeshield.ShieldWrapper(env, far_from_point(env), "info:failure", train=False, seed=0)
    model = SAC("MlpPolicy", env, learning_starts=40, batch_size=16, policy_kwargs=small(), seed=0)
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    callback = ShieldCallback()
    model.learn(120, callback=callback, log_interval=1)

    scalars = _tensorboard_scalars(tmp_path)
    assert set(METRICS) <= set(scalars), sorted(set(METRICS) - set(scalars))
    assert any(tag.startswith("train/") for tag in scalars)  # SB3's own tags are still there
    assert scalars["shield/steps"][-1] == 120
    assert scalars["shield/interventions"][-1] == env.total_interventions > 0
    assert scalars["shield/failures"][-1] == env.total_failures
    assert 0.0 < scalars["shield/intervention_rate"][-1] < 1.0  # the stub rejects about half
    assert scalars["shield/threshold"][-1] == pytest.approx(0.5)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"shield/failures", "shield/fallback_rate", "shield/risk_p90"} <= set(header)


def test_shield_callback_counts_every_sub_env_of_a_shared_vec_shield(far_from_point):
    venv = make_vec_env(DRUNK_SPIDER, n_envs=3, seed=0)
    venv = ShieldedVecEnv(venv, far_from_point(gym.make(DRUNK_SPIDER)), "info:failure", train=False, seed=0)
    callback = ShieldCallback()
    PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=small(), seed=0).learn(
        48, callback=callback
    )
    assert callback.stats.steps == 48
    assert callback.stats.interventions == venv.total_interventions
    assert callback.stats.fallbacks == venv.total_fallbacks
