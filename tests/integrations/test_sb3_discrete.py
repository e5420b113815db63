"""SB3 DQN and PPO on ``CartPole-v1`` (failure = the pole falls) inside a shield with Discrete actions.

- the learners store what the shield executed: DQN's replay buffer holds the executed action,
  PPO's rollout buffer its own draws by default (the shield is part of the env), or with
  ``on_policy="executed"`` the executed action and its recomputed log-probability;
- the attached sampler exposes the agent's exact distribution (``probs``): PPO's categorical,
  DQN's epsilon-greedy one; the shield masks it;
- a learning SQRL shield trains alongside both, per env and in ``ShieldedVecEnv``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import DQN, PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CallbackList  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations.sb3 import ShieldCallback, policy_sampler, wrap_vec_env  # noqa: E402

torch.set_num_threads(1)


class LeanRisk(safeshield.SafetyCritic):
    """Frozen stub: pushing the cart the way the pole leans is risky (risk 0.9), the other way safe."""

    name = "test-lean-risk"

    def build(self) -> None:
        pass

    def risk_all(self, obs):
        right = (obs[:, 2] > 0).float()  # pole angle
        return torch.stack([0.1 + 0.8 * (1 - right), 0.1 + 0.8 * right], dim=1)

    def risk(self, obs, actions):
        return (self.risk_all(obs) * actions).sum(-1)

    @property
    def threshold(self) -> float:
        return 0.5

    def learn_step(self, batch):
        return {}


class Reports(BaseCallback):
    def __init__(self):
        super().__init__()
        self.reports, self.checked, self.check = [], 0, True

    def _on_step(self) -> bool:
        reports = [info["shield"] for info in self.locals["infos"]]
        self.reports.append(reports)
        if (
            self.check and "log_probs" in self.locals
        ):  # PPO: the rewritten rows hold the executed action and its log-prob
            rows = [i for i, r in enumerate(reports) if r["intervened"]]
            if rows:
                executed = torch.as_tensor(np.array([reports[i]["executed_action"] for i in rows]))
                np.testing.assert_array_equal(np.asarray(self.locals["actions"])[rows].reshape(-1), executed.numpy())
                with torch.no_grad():
                    _, log_prob, _ = self.model.policy.evaluate_actions(self.locals["obs_tensor"][rows], executed)
                torch.testing.assert_close(self.locals["log_probs"][rows], log_prob)
                self.checked += len(rows)
        return True


def lean_env():
    env = gym.make("CartPole-v1")
    return safeshield.ShieldWrapper(
        env, LeanRisk(env.observation_space, env.action_space), "terminated", train=False, seed=0
    )


def test_dqn_replay_buffer_holds_the_executed_actions():
    reports = Reports()
    model = DQN(
        "MlpPolicy", lean_env(), learning_starts=1000, buffer_size=2000, policy_kwargs={"net_arch": [16]}, seed=0
    )
    model.learn(300, callback=CallbackList([ShieldCallback(), reports]))
    executed = np.array([step[0]["executed_action"] for step in reports.reports])
    stored = model.replay_buffer.actions[: len(executed), 0, 0]
    np.testing.assert_array_equal(stored, executed)
    assert any(step[0]["intervened"] for step in reports.reports)


def test_ppo_rollout_buffer_holds_executed_actions_and_their_log_probs_when_asked():
    reports = Reports()
    model = PPO(
        "MlpPolicy", lean_env(), n_steps=128, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0
    )
    model.learn(256, callback=CallbackList([ShieldCallback(on_policy="executed"), reports]))
    assert reports.checked > 0


class RolloutColumn(BaseCallback):
    """One column of PPO's first rollout, flat, as collected (before training reorders it)."""

    def __init__(self, column: str):
        super().__init__()
        self.column, self.values = column, None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.values is None:
            self.values = getattr(self.model.rollout_buffer, self.column).reshape(-1).copy()


def ppo_in_lean_shield(steps: int, column: str, **callback_options):
    """PPO for one rollout of ``steps`` inside the lean-risk shield: its reports and a rollout column."""
    reports, rollout = Reports(), RolloutColumn(column)
    reports.check = False
    model = PPO(
        "MlpPolicy", lean_env(), n_steps=steps, batch_size=steps, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0
    )
    model.learn(steps, callback=CallbackList([ShieldCallback(**callback_options), reports, rollout]))
    intervened = np.array([step[0]["intervened"] for step in reports.reports])
    return reports, intervened, rollout.values


def test_ppo_rollout_buffer_keeps_its_own_draws_by_default():
    """The default treats the shield as part of the env: the rollout holds PPO's proposals."""
    reports, intervened, stored = ppo_in_lean_shield(128, "actions")
    proposed = np.array([step[0]["proposed_action"] for step in reports.reports])
    assert intervened.sum() > 5
    np.testing.assert_array_equal(stored, proposed)


def test_intervention_penalty_is_taken_from_the_replaced_steps_rewards_only():
    _, intervened, stored = ppo_in_lean_shield(64, "rewards", intervention_penalty=2.5)
    assert 0 < intervened.sum() < intervened.size
    np.testing.assert_allclose(stored, np.where(intervened, 1.0 - 2.5, 1.0))  # CartPole pays 1 per step
    with pytest.raises(ValueError, match="intervention_penalty"):
        ShieldCallback(intervention_penalty=-1.0)


@pytest.mark.parametrize("learner", ["dqn", "ppo-executed"])
def test_intervention_penalty_is_refused_where_the_executed_action_is_stored(learner):
    """Off-policy learners and on_policy='executed' store the executed action: charging the penalty to
    it would punish the shield's own choice, so the callback refuses it and says what to do."""
    env = lean_env()
    model = DQN("MlpPolicy", env, seed=0) if learner == "dqn" else PPO("MlpPolicy", env, n_steps=64, seed=0)
    on_policy = "executed" if learner == "ppo-executed" else "proposed"
    with pytest.raises(ValueError, match="intervention_penalty=1.0 applies to on-policy learners"):
        model.learn(64, callback=ShieldCallback(intervention_penalty=1.0, on_policy=on_policy))


@pytest.mark.parametrize("algorithm", ["dqn", "ppo"])
def test_attached_sampler_is_the_agents_exact_distribution(algorithm):
    env = gym.make("CartPole-v1")
    model = (
        DQN("MlpPolicy", env, policy_kwargs={"net_arch": [16]}, seed=0)
        if algorithm == "dqn"
        else PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16]}, seed=0)
    )
    sample = policy_sampler(model)
    obs = torch.randn(5, 4)
    probs = sample.probs(obs)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, dtype=probs.dtype))
    if algorithm == "dqn":
        model.exploration_rate = 0.2
        with torch.no_grad():
            greedy = model.policy.q_net(obs).argmax(-1)
        probs = sample.probs(obs)
        torch.testing.assert_close(probs[torch.arange(5), greedy], torch.full((5,), 0.9))
    else:
        with torch.no_grad():
            expected = model.policy.get_distribution(obs).distribution.probs
        torch.testing.assert_close(probs, expected)
    draws = sample(obs, 50, torch.Generator().manual_seed(0))
    assert draws.shape == (5, 50) and set(draws.unique().tolist()) <= {0, 1}
    torch.testing.assert_close(draws, sample(obs, 50, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("algorithm", ["dqn", "ppo"])
def test_a_learning_sqrl_shield_trains_alongside(algorithm):
    venv = wrap_vec_env(
        make_vec_env("CartPole-v1", n_envs=2, seed=0),
        "sqrl",
        "terminated",
        seed=0,
        hidden=(16,),
        learning_starts=32,
        batch_size=16,
    )
    kwargs = dict(policy_kwargs={"net_arch": [16]}, seed=0)
    model = (
        DQN("MlpPolicy", venv, learning_starts=100, **kwargs)
        if algorithm == "dqn"
        else PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, **kwargs)
    )
    model.learn(256, callback=ShieldCallback())
    shield = venv.safety_model
    assert shield.updates > 0 and venv.total_failures > 0
    assert all(torch.isfinite(p).all() for p in shield.parameters())
