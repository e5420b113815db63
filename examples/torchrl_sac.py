"""TorchRL SAC learning DrunkSpider with and without an SQRL shield.

The shielded run wraps the env (``safeshield.wrap``), hands it to TorchRL through
``ShieldedGymEnv`` (which reports ``("next", "shield", ...)``) and gives the collector
``postproc=executed_action``, so the replay buffer holds the action the shield executed;
``attach(env, actor)`` makes the shield draw its candidates from the actor's own distribution.
Prints failures for both runs. Run: ``.venv/bin/python examples/torchrl_sac.py``.
"""

import argparse

import gymnasium as gym
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import GymWrapper
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate

import safeshield
from safeshield.integrations.torchrl import ShieldedGymEnv, attach, executed_action

ENV_ID = "safeshield/DrunkSpider-v0"


def make_sac(env):
    obs_dim, act_dim = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]
    actor_net = nn.Sequential(
        MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=[64, 64]), NormalParamExtractor()
    )
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=env.action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": env.action_spec.space.low, "high": env.action_spec.space.high},
    )
    qnet = ValueOperator(
        MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=[64, 64]), in_keys=["observation", "action"]
    )
    loss = SACLoss(actor, qnet, num_qvalue_nets=2, fixed_alpha=True, alpha_init=0.1)
    loss.make_value_estimator(gamma=0.95)
    return actor, loss


class CountFailures(gym.Wrapper):
    """Count steps whose ``info["failure"]`` is set (DrunkSpider reports falling into a pit)."""

    failures = 0

    def step(self, action):
        result = self.env.step(action)
        self.failures += bool(result[4]["failure"])
        return result


def train(steps: int, shielded: bool, seed: int = 0) -> int:
    torch.manual_seed(seed)
    counted = CountFailures(gym.make(ENV_ID))
    if shielded:
        env = ShieldedGymEnv(
            safeshield.wrap(counted, "sqrl", seed=seed, learning_starts=200, hidden=(64, 64))
        )  # the one line
    else:
        env = GymWrapper(counted)
    env.set_seed(seed)
    actor, loss = make_sac(env)
    if shielded:
        attach(env, actor)  # candidates from SAC's own distribution, the papers' rule
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    target_update = SoftUpdate(loss, tau=0.005)
    buffer = ReplayBuffer(storage=LazyTensorStorage(steps))
    collector = Collector(
        env,
        actor,
        frames_per_batch=10,
        total_frames=steps,
        init_random_frames=200,
        auto_register_policy_transforms=False,
        postproc=executed_action if shielded else None,
    )  # the optional adapter
    for batch in collector:
        buffer.extend(batch.reshape(-1))
        if len(buffer) >= 200:
            for _ in range(10):
                losses = loss(buffer.sample(64))
                optimizer.zero_grad()
                sum(v for k, v in losses.items() if k.startswith("loss_") and v.requires_grad).backward()
                optimizer.step()
                target_update.step()
    collector.shutdown()
    return counted.failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    steps = parser.parse_args().steps
    torch.set_num_threads(1)
    print(f"TorchRL SAC without shield: {train(steps, shielded=False)} failures in {steps} steps")
    print(f"TorchRL SAC inside an SQRL shield: {train(steps, shielded=True)} failures in {steps} steps")


if __name__ == "__main__":
    main()
