"""Does a shield with untouched defaults make an off-the-shelf agent fail less, online from scratch?

Run ``python benchmarks/effectiveness.py [--quick] [--cases NAME ...] [--out benchmarks/results/effectiveness]``;
``--verify [N] --cases NAME ...`` reruns a row's first N committed seeds and says whether they reproduce.

Every case trains the same agent on the same seeds for the same number of env steps twice:
inside the shield (``safeshield.wrap(env, method, indicator=...)`` with the method's defaults, or
the options the case lists and documents) and without it. Per case it reports

- failures during learning (mean ± 95 % CI over seeds) and ``failure_ratio`` = shielded /
  unshielded (the ratio of the seed means);
- ``return_ratio``: mean episode return over the last quarter of the training steps, shielded /
  unshielded (the DrunkSpider transfer case: the deployed policy's evaluation return); it reads
  backwards when the unshielded return is negative, so ``met["return_ge_90pct"]`` tests
  "shielded >= unshielded - 10 % of |unshielded|" instead;
- ``wall_ratio``: training wall-clock, shielded / unshielded (the machine is shared, so this is
  noisy; the seeds of one case run back to back in one worker);
- the shield-quality report of the shielded runs (``safeshield.core.quality``): ROC AUC of
  the executed action's risk for "failure within the horizon", calibration error, false-safe,
  intervention and fallback rates; and ``held_out_auc``, the same AUC on 10 new episodes of the
  final agent with the trained shield in shadow mode (``safeshield.held_out_quality``: data it
  never learned from; rows run before it existed lack it).

Cases (``CASES``): gymnasium ``InvertedDoublePendulum-v5`` and ``Walker2d-v5`` with SB3 SAC and
PPO, ``CartPole-v1`` (Discrete actions) with SB3 PPO and DQN, and, as tasks the defaults were
not chosen on, ``InvertedPendulum-v5``, ``Hopper-v5``, ``safeshield/Laikago-v0`` and
``Humanoid-v5`` with SB3 PPO and SAC and ``Ant-v5`` with PPO (indicator ``"terminated"``,
``ShieldCallback``); PPO on a 4-env SB3 ``VecEnv`` sharing one shield (``*_vec4``); SB3 PPO and
SAC on ``safeshield/PointHallwayPoles-v0``, a cost that does not end the episode (indicator ``"cost"``,
failures count the costly steps);
``safeshield/DrunkSpiderTarget-v0`` pre-train -> fine-tune with the reference SAC
(``safeshield.transfer`` with the shield's defaults instead of the paper preset),
``safeshield/MinitaurVelocity-v0`` pre-train -> fine-tune the same way (``MINITAUR_CPU``: 0.3 ->
0.4 m/s, 8k + 6k steps), ``safeshield/PointTraps-v0`` with CSC + TRPO-Lagrangian against TRPO
(10 seeds: its runs have too few failures for 3). Targets of the issue: failures <= 1/3 of
unshielded, return >= 90 %, wall-clock <= 1.3x for SAC; <= 1/2 on the gymnasium cases and
DrunkSpider is the least that counts. The transfer cases' return ratio compares the deployed
(deterministic) policies.

Outputs in ``--out``: ``cases/<name>/seed<k>.json`` (each seed's pair of runs, written as it finishes),
``results.json`` (``cases``: one entry per case with ``name``, ``env_id``,
``agent``, ``method``, ``seeds``, ``steps``, ``failure_ratio``, ``return_ratio``, ``wall_ratio``,
``auc`` and their per-arm means and CIs, ``machines`` (the CPUs its seeds ran on); ``auc_of`` says
which risk ``auc`` ranks: the executed action's, beside ``proposal_auc``, or, for runs made before
the report scored the executed action, the proposal's; ``runs``: every run's totals and episode
records),
``<case>.png`` (cumulative failures and return vs env steps) and ``quality_<case>.png``
(reliability diagram of the shielded runs' risk).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import safeshield
from safeshield.core.quality import plot_quality, quality_report
from safeshield.experiments.plots import plot_learning_curves
from safeshield.experiments.runner import Job, machine_info, mean_ci, run_jobs, write_json
from safeshield.experiments.transfer import MINITAUR_CPU, TransferSettings, transfer_job

TARGETS = {"failure_ratio": 1 / 3, "failure_ratio_progress": 1 / 2, "return_ratio": 0.9, "wall_ratio_sac": 1.3}


@dataclass(frozen=True)
class Case:
    """One shielded-vs-unshielded comparison."""

    name: str
    env_id: str
    agent: str  # "sb3_sac", "sb3_ppo", "sb3_dqn", "reference_sac_transfer", "trpo_lagrangian"
    method: str  # the shield's method name
    steps: int  # env steps of learning per run (the transfer case: fine-tuning steps)
    options: dict[str, Any] = field(default_factory=dict)  # shield options besides the defaults (documented)
    note: str = ""
    pretrain: int = 0  # > 0: the shield learns from another plain run's replay buffer of this many steps, frozen
    transfer: TransferSettings | None = None  # "reference_sac_transfer": the protocol (default: DrunkSpider's)
    min_seeds: int = 0  # > --seeds where failures are rare: a handful per run cannot tell the arms apart
    n_envs: int = 1  # > 1: the SB3 agent steps a VecEnv of this many sub-envs, sharing one shield
    indicator: str = "terminated"  # "cost": a failure is a step with info["cost"] > 0 (counted per step)
    source: str = "gymnasium"  # where env_id comes from: "gymnasium" (gym.make) or "safety-gymnasium"


DRUNK_SPIDER = Case(
    "drunk_spider",
    "safeshield/DrunkSpiderTarget-v0",
    "reference_sac_transfer",
    "sqrl",
    3_000,
    note="pre-train 4k steps in DrunkSpider-v0, fine-tune 3k in DrunkSpiderTarget-v0 (safeshield.experiments."
    "transfer settings: 2 x 64 networks, SAC gamma 0.95) with the shield's default target and threshold",
)
CARTPOLE_PPO = Case(
    "cartpole_ppo",
    "CartPole-v1",
    "sb3_ppo",
    "sqrl",
    20_480,
    note="a Discrete action space: the critic scores both actions in one pass and the mask is exact",
)
UNSEEN = (
    "added after the defaults were fixed and never used to choose them: does the shield carry to a task it "
    "was not developed on?"
)
POINT_TRAPS = Case(
    "point_traps",
    "safeshield/PointTraps-v0",
    "trpo_lagrangian",
    "csc",
    30_000,
    options={"chi": 0.05, "train_every": 10, "updates_per_step": 0.1},
    min_seeds=10,
    note="CSC + TRPO-Lagrangian vs TRPO, 10 seeds (15-58 failures per run: 3 seeds move the ratio by 0.5); "
    "chi 0.05 (CSC Fig. 6), one critic update per 10 steps (CPU); otherwise CSC's defaults: the failure "
    "discounted over 20 steps from failure-balanced minibatches, alpha 0.05, the relative rule (regret 0.05) "
    "above eps = chi - V_C, standardised inputs",
)
CASES = [
    Case("idp_sac", "InvertedDoublePendulum-v5", "sb3_sac", "sqrl", 10_000),
    Case("idp_ppo", "InvertedDoublePendulum-v5", "sb3_ppo", "sqrl", 20_480),
    DRUNK_SPIDER,
    dataclasses.replace(
        DRUNK_SPIDER,
        name="drunk_spider_budget",
        options={"budget": 10.0},
        note="as drunk_spider, with a failure budget of 10 per 1000 env steps (about a third of the unshielded "
        "fine-tuning rate): the threshold rises while failures stay under it",
    ),
    dataclasses.replace(
        DRUNK_SPIDER,
        name="drunk_spider_explore",
        options={"budget": 20.0},
        transfer=TransferSettings(filter_pretraining=False),
        note="as drunk_spider_budget, but the shield only learns during pre-training, from the agent's unfiltered "
        "exploration of the low-stakes task (filter_pretraining=False), and filters from fine-tuning on, with a "
        "failure budget of 20 per 1000 env steps",
    ),
    Case(
        "idp_sac_pretrained",
        "InvertedDoublePendulum-v5",
        "sb3_sac",
        "sqrl",
        3_000,
        pretrain=6_000,
        note="the default shield pre-trained offline (learn_from_replay_buffer, 4000 updates) on the 6k steps in "
        "the replay buffer of another plain SB3 SAC run (seed + 1000) and frozen; the agents learn from scratch",
    ),
    Case(
        "walker_sac_pretrained",
        "Walker2d-v5",
        "sb3_sac",
        "sqrl",
        3_000,
        pretrain=6_000,
        note="as idp_sac_pretrained, on Walker2d (added after that case, with its settings unchanged): the default "
        "shield pre-trained offline on the 6k-step replay buffer of another plain SB3 SAC run and frozen",
    ),
    Case(
        "hopper_sac_pretrained",
        "Hopper-v5",
        "sb3_sac",
        "sqrl",
        3_000,
        pretrain=6_000,
        note="as idp_sac_pretrained, on Hopper (added after that case, with its settings unchanged)",
    ),
    Case("walker_ppo", "Walker2d-v5", "sb3_ppo", "sqrl", 20_480),
    Case("walker_sac", "Walker2d-v5", "sb3_sac", "sqrl", 10_000),
    CARTPOLE_PPO,
    dataclasses.replace(
        CARTPOLE_PPO,
        name="cartpole_ppo_horizon",
        options={"horizon": 100},
        note="as cartpole_ppo with a 100-step (2 s) horizon: the cart drifts out of its track over seconds, "
        "which the default 20 steps (CartPole declares no dt) do not see (docs/effectiveness.md)",
    ),
    *(
        Case(name, env_id, agent, "sqrl", steps, note=UNSEEN)
        for name, env_id, agent, steps in (
            ("ip_ppo", "InvertedPendulum-v5", "sb3_ppo", 20_480),
            ("ip_sac", "InvertedPendulum-v5", "sb3_sac", 10_000),
            ("hopper_ppo", "Hopper-v5", "sb3_ppo", 20_480),
            ("hopper_sac", "Hopper-v5", "sb3_sac", 10_000),
            ("ant_ppo", "Ant-v5", "sb3_ppo", 20_480),
            ("laikago_ppo", "safeshield/Laikago-v0", "sb3_ppo", 20_480),
            ("laikago_sac", "safeshield/Laikago-v0", "sb3_sac", 10_000),
            ("humanoid_ppo", "Humanoid-v5", "sb3_ppo", 20_480),
            ("humanoid_sac", "Humanoid-v5", "sb3_sac", 10_000),
        )
    ),
    *(
        Case(
            name,
            env_id,
            "sb3_ppo",
            "sqrl",
            20_480,
            n_envs=4,
            note="as the single-env PPO row, on an SB3 VecEnv of 4 sub-envs (make_vec_env) sharing one shield "
            "(ShieldedVecEnv): how most PPO users run it",
        )
        for name, env_id in (("idp_ppo_vec4", "InvertedDoublePendulum-v5"), ("hopper_ppo_vec4", "Hopper-v5"))
    ),
    *(
        Case(
            name,
            "safeshield/PointHallwayPoles-v0",
            agent,
            "sqrl",
            steps,
            indicator="cost",
            note="a cost that does not end the episode (touching a pole; the episode ends at the hallway's end, "
            "a success): failures count the costly steps; indicator 'cost', shield defaults untouched",
        )
        for name, agent, steps in (("hallway_ppo", "sb3_ppo", 20_480), ("hallway_sac", "sb3_sac", 10_000))
    ),
    Case(
        "hallway_sac_budget",
        "safeshield/PointHallwayPoles-v0",
        "sb3_sac",
        "sqrl",
        10_000,
        indicator="cost",
        options={"budget": 66.0},
        note="as hallway_sac, with a failure budget of 66 costly steps per 1000 env steps (about a third of the "
        "unshielded rate, as drunk_spider_budget): the threshold rises while the costs stay under it",
    ),
    Case(
        "cartpole_dqn",
        "CartPole-v1",
        "sb3_dqn",
        "sqrl",
        20_000,
        note="a Discrete action space with an off-policy learner; SB3 DQN's defaults barely learn CartPole "
        "in 20k steps",
    ),
    *(
        Case(
            name,
            "SafetyPointGoal1-v0",
            agent,
            "sqrl",
            steps,
            indicator="cost",
            source="safety-gymnasium",
            note="Safety-Gymnasium's PointGoal1 (make safety-gymnasium installs it): a cost on every step inside a "
            "hazard, which lasts until the robot leaves; failures count the costly steps; indicator 'cost', shield "
            "defaults untouched; " + UNSEEN,
        )
        for name, agent, steps in (("pointgoal_ppo", "sb3_ppo", 20_480), ("pointgoal_sac", "sb3_sac", 10_000))
    ),
    Case(
        "pointgoal_ppo_budget",
        "SafetyPointGoal1-v0",
        "sb3_ppo",
        "sqrl",
        20_480,
        indicator="cost",
        source="safety-gymnasium",
        options={"budget": 25.0, "budget_unit": "episode"},
        note="as pointgoal_ppo, with Safety-Gymnasium's usual cost limit as a failure budget: 25 costly steps per "
        "1000-step episode (budget_unit 'episode'), about a third of the unshielded rate",
    ),
    Case(
        "minitaur",
        "safeshield/MinitaurVelocity-v0",
        "reference_sac_transfer",
        "sqrl",
        MINITAUR_CPU.finetune_steps,
        transfer=MINITAUR_CPU,
        note="pre-train 8k steps at 0.3 m/s (Minitaur-v0), fine-tune 6k at 0.4 m/s, one SAC and shield update per 2 "
        "env steps (benchmarks/minitaur_sqrl.py's CPU-scale settings) with the shield's defaults: the env declares "
        "dt = 0.01 s, so the 0.5 s horizon is 50 control steps, where a fall develops",
    ),
    Case(
        "minitaur_budget",
        "safeshield/MinitaurVelocity-v0",
        "reference_sac_transfer",
        "sqrl",
        MINITAUR_CPU.finetune_steps,
        options={"budget": 5.5},
        transfer=MINITAUR_CPU,
        note="as minitaur, with a failure budget of 5.5 falls per 1000 env steps (about a third of the unshielded "
        "fine-tuning rate, the rule drunk_spider_budget uses): the threshold falls while falls exceed it",
    ),
    POINT_TRAPS,
    dataclasses.replace(
        POINT_TRAPS,
        name="point_traps_budget",
        options={**POINT_TRAPS.options, "budget": 0.34},
        note="as point_traps, with a failure budget of 0.34 failures per 1000 env steps (about a third of plain "
        "TRPO's rate, the rule drunk_spider_budget uses): the threshold falls at each failure and rises while "
        "none comes",
    ),
]
"""Step counts are what this project's shared 2-core machine allowed in one session (the issue asks for
20k-50k steps on the gymnasium cases): they measure the early-learning phase, where an agent fails most."""
CASE_METHODS = {case.name: case.method for case in CASES}  # seed files written before variants: the suite's
COST = {"sb3_sac": 4.0, "reference_sac_transfer": 4.0, "trpo_lagrangian": 2.0, "sb3_ppo": 1.0, "sb3_dqn": 1.0}
"""Rough CPU cost per env step of each agent (shielded + unshielded), to start the longest jobs first."""
QUICK = {"cases": ["idp_ppo"], "steps": 1_500, "seeds": 3}
HELD_OUT_EPISODES, HELD_OUT_MAX_STEPS = 10, 5_000  # the held-out quality report's rollouts, per shielded run


# -- SB3 runs --------------------------------------------------------------------------------------
def _sb3_callback(progress_queue, indicator: str = "terminated"):
    from stable_baselines3.common.callbacks import BaseCallback

    class Episodes(BaseCallback):
        """Episode records {step, return, length, failure} of every sub-env. ``failure``: terminated, not
        truncated (indicator "terminated"), or the episode's count of steps with ``info["cost"] > 0`` ("cost")."""

        def __init__(self):
            super().__init__()
            self.records: list[dict[str, Any]] = []
            self.returns = self.lengths = self.costs = None

        def _on_step(self) -> bool:
            rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
            if self.returns is None:
                n = len(dones)
                self.returns, self.lengths, self.costs = np.zeros(n), np.zeros(n, dtype=int), np.zeros(n, dtype=int)
            self.returns += rewards
            self.lengths += 1
            if indicator == "cost":
                self.costs += [float(info.get("cost", 0.0)) > 0 for info in infos]
            for i in np.flatnonzero(dones):
                truncated = bool(infos[i].get("TimeLimit.truncated", False))
                length = int(self.lengths[i])
                failure = int(self.costs[i]) if indicator == "cost" else not truncated
                record = {"step": int(self.num_timesteps), "return": float(self.returns[i]), "length": length}
                self.records.append(record | {"failure": failure})
                if progress_queue is not None:
                    progress_queue.put(length)
                self.returns[i], self.lengths[i], self.costs[i] = 0.0, 0, 0
            return True

    return Episodes()


def make_env(case: Case) -> gym.Env:
    """A fresh env of ``case``: ``gym.make`` or, for a Safety-Gymnasium task, its Gymnasium form."""
    if case.source == "safety-gymnasium":
        from safeshield.integrations.safety_gymnasium import make

        return make(case.env_id)
    return gym.make(case.env_id)


def available(case: Case) -> bool:
    """Whether ``case``'s env can be built here (Safety-Gymnasium is installed by ``make safety-gymnasium``)."""
    return case.source != "safety-gymnasium" or importlib.util.find_spec("safety_gymnasium") is not None


def sb3_class(agent: str):
    """The SB3 algorithm class of a case's ``agent`` ("sb3_sac", "sb3_ppo", "sb3_dqn")."""
    import stable_baselines3

    return getattr(stable_baselines3, agent.removeprefix("sb3_").upper())


def sb3_job(case: Case, shielded: bool, seed: int, steps: int, progress_queue=None) -> dict[str, Any]:
    """Train the case's SB3 agent on ``case.env_id`` for ``steps`` steps, inside the shield or not."""
    from stable_baselines3.common.callbacks import CallbackList

    from safeshield.integrations.sb3 import ShieldCallback

    torch.set_num_threads(1)
    env = _sb3_env(case, shielded, seed)
    episodes = _sb3_callback(progress_queue, case.indicator)
    callbacks = [episodes] + ([ShieldCallback()] if shielded else [])
    agent = sb3_class(case.agent)("MlpPolicy", env, seed=seed, verbose=0, device="cpu")
    start = time.perf_counter()
    agent.learn(steps, callback=CallbackList(callbacks))
    wall = time.perf_counter() - start
    result = _run_result(case, shielded, seed, episodes.records, wall, steps)
    if shielded:
        result.update(_shield_stats(env))
        result["held_out"] = held_out(case, env.safety_model, lambda obs: agent.predict(obs)[0], seed)
    env.close()
    return result


def _sb3_env(case: Case, shielded: bool, seed: int):
    """The env the case's SB3 agent steps: one gymnasium env, or an SB3 VecEnv of ``case.n_envs`` sub-envs
    sharing one shield (``ShieldedVecEnv``); shielded with the method's defaults, or frozen pre-trained."""
    if case.n_envs > 1:
        from stable_baselines3.common.env_util import make_vec_env

        from safeshield.integrations.sb3 import wrap_vec_env

        if case.pretrain:
            raise ValueError(f"case {case.name!r}: pretrain is for single-env cases, got n_envs={case.n_envs}")
        env = make_vec_env(lambda: make_env(case), n_envs=case.n_envs, seed=seed)
        return wrap_vec_env(env, case.method, indicator=case.indicator, seed=seed, **case.options) if shielded else env
    env = make_env(case)
    if not shielded:
        return env
    if case.pretrain:
        return safeshield.wrap(env, pretrained_shield(case, seed), indicator=case.indicator, seed=seed, train=False)
    return safeshield.wrap(env, case.method, indicator=case.indicator, seed=seed, **case.options)


def pretrained_shield(case: Case, seed: int, updates: int = 4_000) -> safeshield.SafetyModel:
    """The case's shield, pre-trained on the replay buffer of a plain run of the same agent for
    ``case.pretrain`` steps (seed + 1000, so never the run it then shields), and frozen."""
    from safeshield.integrations.sb3 import learn_from_replay_buffer

    env = make_env(case)
    agent = sb3_class(case.agent)("MlpPolicy", env, seed=seed + 1000, verbose=0, device="cpu")
    agent.learn(case.pretrain)
    model = safeshield.model_for(env, case.method, seed=seed)
    learn_from_replay_buffer(model, agent, updates=updates)
    return model.freeze()


def _shield_stats(env) -> dict[str, Any]:
    report = env.quality_report()
    data = env.stepper.quality.arrays()
    return {
        "quality": {k: v for k, v in report.items() if k != "calibration"} | {"calibration": report["calibration"]},
        "quality_data": {
            "risk": data["risk"].round(4).tolist(),
            "proposal_risk": data["proposal_risk"].round(4).tolist(),
            "label": data["label"].astype(int).tolist(),
            # a counting shield's calibration is in failure steps within the horizon (core.quality)
            **(
                {"count": data["count"].astype(int).tolist(), "count_known": data["count_known"].tolist()}
                if report.get("calibration_units") == "count"
                else {}
            ),
        },
        "interventions": env.total_interventions,
        "fallbacks": env.total_fallbacks,
    }


def held_out(case: Case, model: safeshield.SafetyModel, policy, seed: int) -> dict[str, Any]:
    """The trained shield's quality on ``HELD_OUT_EPISODES`` new episodes of the final (stochastic) agent, in
    shadow mode (``safeshield.held_out_quality``): its risk on data it never learned from. Not timed."""
    env = make_env(case)
    indicator = case.indicator if case.agent.startswith("sb3") else None  # the traps declare theirs
    report = safeshield.held_out_quality(
        model,
        env,
        policy,
        episodes=HELD_OUT_EPISODES,
        indicator=indicator,
        seed=10_000 + seed,
        max_steps=HELD_OUT_MAX_STEPS,
    )
    env.close()
    keys = (
        "auc",
        "ece",
        "calibration_units",
        "false_safe_rate",
        "rejection_rate",
        "failure_rate_within_horizon",
        "episodes",
        "total_steps",
    )
    return {key: report.get(key) for key in keys}


def _run_result(case: Case, shielded: bool, seed: int, records: list[dict], wall: float, steps: int) -> dict[str, Any]:
    last_quarter = [r["return"] for r in records if r["step"] > 0.75 * steps] or [r["return"] for r in records[-1:]]
    return {
        "case": case.name,
        "shielded": shielded,
        "seed": seed,
        "wall_s": wall,
        "failures": int(sum(r["failure"] for r in records)),
        "episodes": len(records),
        "final_return": float(np.mean(last_quarter)) if last_quarter else float("nan"),
        "records": records,
    }


# -- DrunkSpider transfer and Point traps ------------------------------------------------------------
def transfer_settings(case: Case, steps: int) -> TransferSettings:
    """The case's transfer protocol with ``steps`` fine-tuning steps (pre-training scaled with them) and the
    shield's defaults instead of the paper preset."""
    protocol = case.transfer or TransferSettings()
    return dataclasses.replace(
        protocol,
        finetune_steps=steps,
        pretrain_steps=max(round(steps * protocol.pretrain_steps / protocol.finetune_steps), 1),
        shield_preset="default",
        shield_budget=case.options.get("budget"),
    )


def progress_steps(case: Case, steps: int) -> int:
    """Env steps one run of ``case`` reports to the progress bar (a transfer run's pre-training included)."""
    return steps + (transfer_settings(case, steps).pretrain_steps if case.agent == "reference_sac_transfer" else 0)


def transfer_case_job(case: Case, shielded: bool, seed: int, steps: int, out_dir: str, progress_queue=None) -> dict:
    settings = transfer_settings(case, steps)
    start = time.perf_counter()
    run = transfer_job("sqrl" if shielded else "sac", seed, settings, out_dir, progress_queue=progress_queue)
    wall = time.perf_counter() - start
    records = [
        {"step": s, "return": r, "failure": f, "length": 0}
        for s, r, f in zip(
            run["finetune"]["curve_steps"],
            run["finetune"]["curve_returns"],
            np.diff([0] + run["finetune"]["curve_cumulative_failures"]).astype(bool).tolist(),
        )
    ]
    result = _run_result(case, shielded, seed, records, wall, steps)
    result["final_return"] = run["final"]["mean_return"]  # the deployed policy's evaluation return
    result["pretrain_failures"] = run["pretrain"]["failures"]
    if shielded and "quality" in run:
        result["quality"] = run["quality"]
    return result


def _traps_job(case: Case, shielded: bool, seed: int, steps: int, progress_queue=None) -> dict[str, Any]:
    from safeshield.agents.trpo_lagrangian import TRPOLagrangian, TRPOLagrangianConfig
    from safeshield.experiments.runner import episode_reporter

    torch.set_num_threads(1)
    env = make_env(case)
    config = TRPOLagrangianConfig(chi=case.options.get("chi", 0.05))
    if shielded:
        env = safeshield.wrap(env, case.method, seed=seed, **case.options)
    agent = TRPOLagrangian.for_env(env, config, seed=seed)
    if shielded:
        env.attach_policy(agent.sample_actions)
        agent.set_cost_critic(env.safety_model.q_c)
    start = time.perf_counter()
    records = agent.learn(env, steps, callback=episode_reporter(progress_queue), progress=False, seed=seed)
    wall = time.perf_counter() - start
    result = _run_result(case, shielded, seed, records, wall, steps)
    if shielded:
        result.update(_shield_stats(env))
        result["held_out"] = held_out(case, env.safety_model, agent.act, seed)
    return result


def run_case_seed(case: Case, seed: int, steps: int, out_dir: str, progress_queue=None) -> list[dict]:
    """Both arms of ``case`` for one seed, back to back in one worker (same machine load for both).

    The pair is written to ``<out_dir>/cases/<name>/seed<seed>.json`` when it finishes, so a long
    run that is stopped keeps its finished pairs (``--summarise`` collects them); a pair already
    there for the same steps is read instead of run again.
    """
    path = Path(out_dir) / "cases" / case.name / f"seed{seed}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        same_method = cached.get("method", CASE_METHODS.get(case.name)) == case.method
        if cached["steps"] == steps and cached.get("options") == case.options and same_method:
            return cached["runs"]
    results = []
    for shielded in (False, True):
        if case.agent.startswith("sb3"):
            results.append(sb3_job(case, shielded, seed, steps, progress_queue))
        elif case.agent == "reference_sac_transfer":
            results.append(
                transfer_case_job(case, shielded, seed, steps, str(Path(out_dir) / "checkpoints"), progress_queue)
            )
        else:
            results.append(_traps_job(case, shielded, seed, steps, progress_queue))
    machine = machine_info()["cpu_model"]  # trajectories differ across CPUs (docs/robustness.md)
    write_json(
        path,
        {
            "case": case.name,
            "seed": seed,
            "steps": steps,
            "method": case.method,
            "options": case.options,
            "machine": machine,
            "runs": results,
        },
        indent=None,  # per-step quality arrays: one line, half the indented size
    )
    return results


# -- summary ------------------------------------------------------------------------------------------
def summarise_case(case: Case, runs: list[dict], steps: int) -> dict[str, Any]:
    plain = [r for r in runs if not r["shielded"]]
    shielded = [r for r in runs if r["shielded"]]
    out: dict[str, Any] = {
        "name": case.name,
        "env_id": case.env_id,
        "agent": case.agent,
        "method": case.method,
        "options": case.options,
        "note": case.note,
        "steps": steps,
        "pretrain": case.pretrain,
        "seeds": sorted({r["seed"] for r in runs}),
    }
    for key in ("failures", "final_return", "wall_s"):
        out[f"unshielded_{key}"] = mean_ci([r[key] for r in plain])
        out[f"shielded_{key}"] = mean_ci([r[key] for r in shielded])
    out["failure_ratio"] = _ratio(out["shielded_failures"][0], out["unshielded_failures"][0])
    out["failure_ratio_per_seed"] = [_ratio(s["failures"], p["failures"]) for s, p in zip(shielded, plain)]
    out["failure_ratio_ci"] = mean_ci(out["failure_ratio_per_seed"])
    out["return_ratio"] = _ratio(out["shielded_final_return"][0], out["unshielded_final_return"][0])
    out["wall_ratio"] = _ratio(out["shielded_wall_s"][0], out["unshielded_wall_s"][0])
    qualities = [r["quality"] for r in shielded if "quality" in r]
    if qualities:
        for key in ("auc", "proposal_auc", "ece", "false_safe_rate", "intervention_rate", "fallback_rate"):
            values = [q[key] for q in qualities if q.get(key) is not None and np.isfinite(q[key])]
            out[key] = mean_ci(values) if values else None
        out["auc_ci"] = out["auc"]
        out["auc"] = out["auc"][0] if out["auc"] else None
        # runs before the report scored the executed action ranked the proposal's risk (core.quality)
        out["auc_of"] = "executed action" if all("proposal_auc" in q for q in qualities) else "proposal"
    held = [r["held_out"]["auc"] for r in shielded if r.get("held_out", {}).get("auc") is not None]
    held = [value for value in held if np.isfinite(value)]
    if held:  # the same risk on new episodes of the final agent, in shadow mode
        out["held_out_auc"] = mean_ci(held)
    out["met"] = {
        "failures_le_third": out["failure_ratio"] <= TARGETS["failure_ratio"],
        "failures_le_half": out["failure_ratio"] <= TARGETS["failure_ratio_progress"],
        "return_ge_90pct": return_kept(out["shielded_final_return"][0], out["unshielded_final_return"][0]),
    }
    if case.agent in ("sb3_sac", "reference_sac_transfer"):
        out["met"]["wall_le_1.3x"] = out["wall_ratio"] <= TARGETS["wall_ratio_sac"]
    return out


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def return_kept(shielded: float, unshielded: float) -> bool:
    """The return target, "at least 90 % of unshielded", in a form that also holds for negative returns
    (where the ratio reads backwards: -140 against -75 is a ratio of 1.9 and a loss)."""
    return bool(shielded >= unshielded - (1 - TARGETS["return_ratio"]) * abs(unshielded))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small case, 1.5k steps, 3 seeds")
    parser.add_argument("--cases", nargs="*", default=None, help=f"subset of {[c.name for c in CASES]}")
    parser.add_argument("--steps", type=int, default=None, help="override every case's steps")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case (a case's min_seeds raises it)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--summarise", action="store_true", help="only collect the finished cases in --out")
    parser.add_argument("--out", default="benchmarks/results/effectiveness")
    parser.add_argument("--method", default=None, help="a variant: this shield method instead of each case's")
    parser.add_argument(
        "--options", type=json.loads, default=None, help="a variant: shield options (JSON) over each case's"
    )
    parser.add_argument(
        "--verify",
        type=int,
        nargs="?",
        const=1,
        default=None,
        metavar="N",
        help="rerun the first N (default 1) committed seeds of each --cases row in a temporary folder and say "
        "whether both arms reproduce the pair in --out (exit status 1 if one differs on the same CPU model)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.verify is not None:
        ignored = [flag for flag in ("quick", "steps", "summarise", "method", "options") if getattr(args, flag)]
        if ignored:
            parser.error(f"--verify reruns the committed seeds as they were run; drop --{', --'.join(ignored)}")
        cases = [c for c in CASES if args.cases is None or c.name in args.cases]
        missing = [c.name for c in cases if not available(c)]
        if missing and args.cases is not None:
            parser.error(f"{missing} need safety-gymnasium: run `make safety-gymnasium` first")
        rows = verify([c for c in cases if c.name not in missing], out, args.verify, args.workers)
        raise SystemExit(int(any(row["differs"] and row["same_cpu"] for row in rows)))
    if (args.method or args.options) and out == Path(parser.get_default("out")):
        parser.error("a variant (--method / --options) needs its own --out, beside the suite's results")
    variant = [with_variant(c, args.method, args.options) for c in CASES]
    if not args.summarise:
        names = QUICK["cases"] if args.quick and args.cases is None else args.cases
        cases = [c for c in variant if names is None or c.name in names]
        missing = [c.name for c in cases if not available(c)]
        if missing and names is not None:
            parser.error(f"{missing} need safety-gymnasium: run `make safety-gymnasium` first")
        if missing:
            print(f"skipping {missing}: safety-gymnasium is not installed (`make safety-gymnasium`)")
        cases = [c for c in cases if c.name not in missing]
        n_seeds = QUICK["seeds"] if args.quick else args.seeds
        seeds_of = {c.name: list(range(n_seeds if args.quick else max(n_seeds, c.min_seeds))) for c in cases}
        steps_of = {c.name: QUICK["steps"] if args.quick else (args.steps or c.steps) for c in cases}
        # one job per (case, seed), the costliest cases first, so two workers stay busy to the end
        order = sorted(cases, key=lambda c: -COST.get(c.agent, 1) * steps_of[c.name])
        jobs = [
            Job(run_case_seed, (case, seed, steps_of[case.name], str(out)))
            for case in order
            for seed in seeds_of[case.name]
        ]
        total = sum(2 * len(seeds_of[c.name]) * progress_steps(c, steps_of[c.name]) for c in cases)
        run_jobs(jobs, total, desc="effectiveness", workers=min(args.workers, len(jobs)))
    summarise(out, quick=args.quick, cases=variant)


def verify(cases: list[Case], out: Path, n_seeds: int, workers: int = 2) -> list[dict[str, Any]]:
    """Rerun the first ``n_seeds`` committed seeds of each case (``out/cases/<name>/seed<k>.json``) in a
    temporary folder, with the committed steps, method and options, and compare each arm's failures and
    final return with the committed pair: whether a row still describes the code. A row run on another
    CPU model may differ without anything being wrong (trajectories depend on the CPU: docs/robustness.md).
    """
    if int(n_seeds) < 1:
        raise ValueError(f"--verify needs N >= 1 seeds, got {n_seeds!r}")
    cpu = machine_info()["cpu_model"]
    committed = []
    for case in cases:
        paths = sorted((out / "cases" / case.name).glob("seed*.json"), key=lambda p: int(p.stem[4:]))[:n_seeds]
        for path in paths:
            data = json.loads(path.read_text())
            pair = dataclasses.replace(
                case, method=data.get("method", case.method), options=data.get("options", case.options)
            )
            committed.append((pair, data))
    with tempfile.TemporaryDirectory() as scratch:
        jobs = [Job(run_case_seed, (case, data["seed"], data["steps"], scratch)) for case, data in committed]
        total = sum(2 * progress_steps(case, data["steps"]) for case, data in committed)
        reruns = run_jobs(jobs, total, desc="verify", workers=min(workers, len(jobs))) if jobs else []
    rows = []
    for (case, data), rerun in zip(committed, reruns):
        before = {run["shielded"]: run for run in data["runs"]}
        now = {run["shielded"]: run for run in rerun}
        arms = {
            arm: (before[shielded]["failures"], now[shielded]["failures"])
            for arm, shielded in (("unshielded", False), ("shielded", True))
        }
        differs = any(a != b for a, b in arms.values()) or any(
            not np.isclose(before[k]["final_return"], now[k]["final_return"], equal_nan=True) for k in (False, True)
        )
        same_cpu = data.get("machine") == cpu
        rows.append({"case": case.name, "seed": data["seed"], "arms": arms, "differs": differs, "same_cpu": same_cpu})
        verdict = "DIFFERS" if differs else "reproduced"
        where = "" if same_cpu else f" (committed on {data.get('machine', 'an unrecorded CPU')}, here {cpu})"
        counts = ", ".join(f"{arm} {a} -> {b}" for arm, (a, b) in arms.items())
        print(f"{case.name} seed {data['seed']}: {verdict}: failures {counts}{where}")
    return rows


def with_variant(case: Case, method: str | None, options: dict[str, Any] | None) -> Case:
    """``case`` with another shield method and/or options over its own (a variant: ``--method`` / ``--options``)."""
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"--options must be a JSON object of shield options, got {options!r}")
    return dataclasses.replace(case, method=method or case.method, options={**case.options, **(options or {})})


def summarise(out: Path, quick: bool = False, cases: list[Case] | None = None) -> dict[str, Any]:
    """Collect ``out/cases/*.json`` (in ``CASES`` order, or ``cases``' with a variant) into ``results.json``
    and the plots."""
    finished: dict[str, dict] = {}
    for path in sorted((out / "cases").glob("*/seed*.json")):
        data = json.loads(path.read_text())
        entry = finished.setdefault(data["case"], {"steps": data["steps"], "runs": [], "machines": set()})
        if data["steps"] == entry["steps"]:
            entry["runs"] += data["runs"]
            entry["machines"].add(data.get("machine", "not recorded"))
    cases = [c for c in (cases or CASES) if c.name in finished]
    summaries, runs = [], []
    for case in cases:
        case_runs, steps = finished[case.name]["runs"], finished[case.name]["steps"]
        summaries.append(summarise_case(case, case_runs, steps) | {"machines": sorted(finished[case.name]["machines"])})
        runs += [{k: v for k, v in run.items() if k != "quality_data"} for run in case_runs]
        curves = {
            "unshielded": [r["records"] for r in case_runs if not r["shielded"]],
            f"{case.method} shield": [r["records"] for r in case_runs if r["shielded"]],
        }
        plot_learning_curves(curves, out / f"{case.name}.png", f"{case.name}: {case.env_id}, {case.agent}")
        pooled = [r["quality_data"] for r in case_runs if "quality_data" in r]
        if pooled:
            executed = all("proposal_risk" in p for p in pooled)  # older runs kept the proposal's risk as "risk"
            risk = np.concatenate([p["risk"] for p in pooled])
            label = np.concatenate([p["label"] for p in pooled])
            counted = all("count" in p for p in pooled)  # runs of a counting shield since counts were kept
            report = quality_report(
                risk,
                label,
                horizon=next(r["quality"]["horizon"] for r in case_runs if "quality" in r),
                counts=np.concatenate([p["count"] for p in pooled]) if counted else None,
                counts_known=np.concatenate([p["count_known"] for p in pooled]) if counted else None,
            )
            plot_quality(
                report,
                out / f"quality_{case.name}.png",
                {"risk" if executed else "proposal_risk": risk, "label": label},
            )
    not_run = [
        {"name": c.name, "env_id": c.env_id, "reason": "not run in this session (CPU budget)"}
        for c in CASES
        if c.name not in finished
    ]
    document = {"targets": TARGETS, "quick": quick, "cases": summaries, "not_run": not_run, "runs": runs}
    write_json(out / "results.json", document)
    for s in summaries:
        print(
            f"{s['name']:14s} failures {s['shielded_failures'][0]:7.1f} vs {s['unshielded_failures'][0]:7.1f} "
            f"(ratio {s['failure_ratio']:.2f}), return ratio {s['return_ratio']:.2f}, wall ratio "
            f"{s['wall_ratio']:.2f}, AUC {s.get('auc')}"
        )
    return document


if __name__ == "__main__":
    main()
