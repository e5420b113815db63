"""CleanRL-style single-file SAC on 4 DrunkSpider envs, inside one shared vector shield.

The only shield-specific lines are marked ``# shield``: the vector env is wrapped with
``safeshield.wrap_vector`` (one SQRL model for all sub-envs, one batched risk query per step),
the replay buffer stores ``info["shield"]["executed_action"]`` (what the envs executed), and the
autoreset step of Gymnasium's NEXT_STEP mode is skipped, as CleanRL does. Prints failures with
and without the shield. About a minute on one core: ``.venv/bin/python examples/cleanrl_sac_vector.py``.
"""

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import safeshield


@dataclass
class Args:
    env_id: str = "safeshield/DrunkSpider-v0"
    num_envs: int = 4  # sub-envs sharing one shield
    total_timesteps: int = 2000  # env steps over all sub-envs
    learning_starts: int = 200  # random actions before this many env steps
    batch_size: int = 64
    gamma: float = 0.95  # DrunkSpider episodes last 30 steps
    tau: float = 0.005
    lr: float = 1e-3
    alpha: float = 0.1  # fixed entropy weight
    hidden: int = 64
    seed: int = 0


class Actor(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean, self.log_std = nn.Linear(hidden, act_dim), nn.Linear(hidden, act_dim)

    def forward(self, obs):  # tanh-squashed Gaussian in [-1, 1] (the DrunkSpider action box)
        h = self.net(obs)
        std = self.log_std(h).clamp(-5, 2).exp()
        u = self.mean(h) + std * torch.randn_like(std)
        action = torch.tanh(u)
        log_prob = torch.distributions.Normal(self.mean(h), std).log_prob(u) - torch.log(1 - action**2 + 1e-6)
        return action, log_prob.sum(-1)


def q_net(obs_dim, act_dim, hidden):
    return nn.Sequential(
        nn.Linear(obs_dim + act_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


def run(args: Args, shielded: bool) -> int:
    torch.manual_seed(args.seed)
    envs = gym.make_vec(args.env_id, num_envs=args.num_envs, vectorization_mode="sync")
    if shielded:
        envs = safeshield.wrap_vector(envs, "sqrl", seed=args.seed, learning_starts=200, hidden=(64, 64))  # shield
    obs_dim, act_dim = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    actor, q1, q2 = (
        Actor(obs_dim, act_dim, args.hidden),
        q_net(obs_dim, act_dim, args.hidden),
        q_net(obs_dim, act_dim, args.hidden),
    )
    q1_target, q2_target = q_net(obs_dim, act_dim, args.hidden), q_net(obs_dim, act_dim, args.hidden)
    q1_target.load_state_dict(q1.state_dict())
    q2_target.load_state_dict(q2.state_dict())
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=args.lr)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=args.lr)
    buffer = {k: [] for k in ("obs", "action", "reward", "next_obs", "done")}

    obs, _ = envs.reset(seed=args.seed)
    autoreset = np.zeros(args.num_envs, dtype=bool)
    failures = 0
    for step in range(0, args.total_timesteps, args.num_envs):
        if step < args.learning_starts:
            actions = envs.action_space.sample()
        else:
            with torch.no_grad():
                actions = actor(torch.as_tensor(obs))[0].numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        failures += int(np.sum(infos["failure"] & infos["_failure"] & ~autoreset))
        executed = infos["shield"]["executed_action"] if shielded else actions  # shield: store what ran
        for i in np.flatnonzero(~autoreset):  # skip the reset step of NEXT_STEP autoreset
            buffer["obs"].append(obs[i])
            buffer["action"].append(executed[i])
            buffer["reward"].append(rewards[i])
            buffer["next_obs"].append(next_obs[i])
            buffer["done"].append(float(terminations[i]))
        obs, autoreset = next_obs, np.logical_or(terminations, truncations)

        if step >= args.learning_starts:
            idx = np.random.default_rng(step).integers(0, len(buffer["obs"]), args.batch_size)
            b = {k: torch.as_tensor(np.asarray(v)[idx], dtype=torch.float32) for k, v in buffer.items()}
            with torch.no_grad():
                next_action, next_log_prob = actor(b["next_obs"])
                next_in = torch.cat([b["next_obs"], next_action], 1)
                next_q = torch.min(q1_target(next_in), q2_target(next_in)).squeeze(-1) - args.alpha * next_log_prob
                target = b["reward"] + args.gamma * (1 - b["done"]) * next_q
            q_in = torch.cat([b["obs"], b["action"]], 1)
            q_loss = F.mse_loss(q1(q_in).squeeze(-1), target) + F.mse_loss(q2(q_in).squeeze(-1), target)
            q_opt.zero_grad()
            q_loss.backward()
            q_opt.step()
            action, log_prob = actor(b["obs"])
            pi_in = torch.cat([b["obs"], action], 1)
            actor_loss = (args.alpha * log_prob - torch.min(q1(pi_in), q2(pi_in)).squeeze(-1)).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            for net, target_net in ((q1, q1_target), (q2, q2_target)):
                for p, tp in zip(net.parameters(), target_net.parameters()):
                    tp.data.lerp_(p.data, args.tau)
    if shielded:
        print(
            f"  shield: {envs.total_interventions} interventions, {envs.safety_model.buffer.total_added} stored "
            "transitions"
        )
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-timesteps", type=int, default=Args.total_timesteps)
    args = Args(total_timesteps=parser.parse_args().total_timesteps)
    torch.set_num_threads(1)
    print(f"SAC without shield: {run(args, shielded=False)} failures in {args.total_timesteps} env steps")
    print(f"SAC inside a vector SQRL shield: {run(args, shielded=True)} failures in {args.total_timesteps} env steps")


if __name__ == "__main__":
    main()
