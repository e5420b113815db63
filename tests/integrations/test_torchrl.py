"""TorchRL integration: collected data and the replay buffer hold the executed action; SAC trains.

``ShieldedGymEnv`` reports ``("next", "shield", ...)``; ``executed_action`` as the collector's
``postproc`` writes the executed action into ``"action"`` where the shield intervened.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("torchrl")

from tensordict import TensorDict  # noqa: E402
from tensordict.nn import NormalParamExtractor, TensorDictModule  # noqa: E402
from torch import nn  # noqa: E402
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import LazyTensorStorage, ReplayBuffer  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator  # noqa: E402
from torchrl.objectives import SACLoss  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations.torchrl import ShieldedGymEnv, attach, executed_action, policy_sampler  # noqa: E402

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


def small_sac(env):
    obs_dim, act_dim = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]
    actor_net = nn.Sequential(
        MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=[16, 16]), NormalParamExtractor()
    )
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=env.action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": env.action_spec.space.low, "high": env.action_spec.space.high},
    )
    qnet = ValueOperator(
        MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=[16, 16]), in_keys=["observation", "action"]
    )
    return actor, SACLoss(actor, qnet, num_qvalue_nets=2)


def test_replay_buffer_holds_the_executed_action_and_sac_trains(far_from_point):
    torch.manual_seed(0)
    base = gym.make(DRUNK_SPIDER)
    env = ShieldedGymEnv(safeshield.ShieldWrapper(base, far_from_point(base, n_candidates=8), train=False, seed=0))
    actor, loss = small_sac(env)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    buffer = ReplayBuffer(storage=LazyTensorStorage(500))
    collector = Collector(
        env,
        actor,
        frames_per_batch=32,
        total_frames=128,
        postproc=executed_action,
        auto_register_policy_transforms=False,
    )
    before = [p.detach().clone() for p in actor.parameters()]
    for batch in collector:
        buffer.extend(batch.reshape(-1))
        losses = loss(buffer.sample(32))
        optimizer.zero_grad()
        sum(value for key, value in losses.items() if key.startswith("loss_")).backward()
        optimizer.step()
    collector.shutdown()
    stored = buffer[: len(buffer)]
    report = stored["next", "shield"]
    torch.testing.assert_close(stored["action"], report["executed_action"])
    assert report["intervened"].sum() > 5
    assert any(not torch.equal(a, b) for a, b in zip(before, actor.parameters())), "SAC trained"


def test_executed_action_only_replaces_intervened_rows():
    base = gym.make(DRUNK_SPIDER)
    env = ShieldedGymEnv(safeshield.make(DRUNK_SPIDER, seed=0, eps_safe=0.0072))
    rollout = env.rollout(30)
    proposed = rollout["action"].clone()
    intervened = rollout["next", "shield", "intervened"]
    executed_action(rollout)
    torch.testing.assert_close(rollout["action"][~intervened], proposed[~intervened])
    torch.testing.assert_close(rollout["action"][intervened], rollout["next", "shield", "executed_action"][intervened])
    with pytest.raises(TypeError, match="shielded"):
        ShieldedGymEnv(base)


def test_torchrl_env_specs_check_passes():
    check_env_specs(ShieldedGymEnv(safeshield.make(DRUNK_SPIDER, seed=0)))


def test_policy_sampler_draws_the_actors_own_actions_reproducibly():
    env = ShieldedGymEnv(safeshield.make(DRUNK_SPIDER, seed=0))
    actor, _ = small_sac(env)
    shield = attach(env, actor)
    assert shield.safety_model.policy_sampler is not None
    space = shield.observation_space
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    sample = policy_sampler(actor, space)
    state = torch.get_rng_state()
    first = sample(obs, 64, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state), "the caller's random stream is left alone"
    torch.testing.assert_close(first, sample(obs, 64, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, sample(obs, 64, torch.Generator().manual_seed(1)))
    low, high = torch.as_tensor(env.action_spec.space.low), torch.as_tensor(env.action_spec.space.high)
    assert first.shape == (3, 64, 2) and (first >= low).all() and (first <= high).all()
    with torch.no_grad():  # the draws follow the actor's own distribution at each row's observation
        mean = actor.get_dist(TensorDict({"observation": obs}, batch_size=[3])).sample((4000,)).mean(0)
    torch.testing.assert_close(first.mean(1), mean, atol=0.25, rtol=0)


def test_policy_sampler_reads_a_dict_observation_by_its_keys():
    space = gym.spaces.Dict({"goal": gym.spaces.Box(-1.0, 1.0, (2,)), "point": gym.spaces.Box(-1.0, 1.0, (2,))})

    class ToGoal(nn.Module):
        def forward(self, goal, point):
            return goal - point, torch.full_like(goal, 0.1)

    actor = ProbabilisticActor(
        TensorDictModule(ToGoal(), in_keys=["goal", "point"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -torch.ones(2), "high": torch.ones(2)},
    )
    parts = [{"goal": np.array([0.5, -0.5], np.float32), "point": np.array([0.0, 0.0], np.float32)}]
    flat = torch.as_tensor(np.stack([gym.spaces.flatten(space, p) for p in parts]))
    drawn = policy_sampler(actor, space)(flat, 200, torch.Generator().manual_seed(0))
    assert drawn.shape == (1, 200, 2)
    torch.testing.assert_close(drawn.mean(1)[0], torch.tanh(torch.tensor([0.5, -0.5])), atol=0.05, rtol=0)
    with pytest.raises(TypeError, match="ProbabilisticActor"):
        policy_sampler(nn.Linear(2, 2), space)
