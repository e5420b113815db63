"""TorchRL integration: collected data and the replay buffer hold the executed action; SAC trains.

``ShieldedGymEnv`` reports ``("next", "shield", ...)``; ``executed_action`` as the collector's
``postproc`` writes the executed action into ``"action"`` where the shield intervened.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

pytest.importorskip("torchrl")

from tensordict.nn import NormalParamExtractor, TensorDictModule  # noqa: E402
from torch import nn  # noqa: E402
from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import LazyTensorStorage, ReplayBuffer  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator  # noqa: E402
from torchrl.objectives import SACLoss  # noqa: E402

import safeshield  # noqa: E402
from safeshield.integrations.torchrl import ShieldedGymEnv, executed_action  # noqa: E402

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
