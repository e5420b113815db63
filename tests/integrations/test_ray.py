"""The Ray adapter: one shared shield learner fed by many runners, and a distributed SAC-Lagrangian.

Promises held here (issue: "scale out on Ray"):
- the learner learns exactly what one single-process shield learns from the same steps (SQRL, CSC);
- every runner's transitions reach the learner, none lost, none duplicated (runner id + sequence);
- every runner loads new weights, with rising version numbers;
- a runner's shield decides exactly as a single-process shield with the same weights and seed;
- a killed runner is restarted and the learner keeps every transition it had;
- a killed learner restarts from its last checkpoint;
- a distributed SAC-Lagrangian checkpoint loads into the single-process agent, and back.

Ray runs locally (2 logical CPUs, loopback, no dashboard) once for the module; the tests share
it and stay small (CI has 2 cores).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from safeshield.agents import SACLagrangian, SACLagrangianConfig  # noqa: E402
from safeshield.integrations.ray import (  # noqa: E402
    DistributedSACLagrangian,
    SharedShield,
    ShieldLearner,
    ShieldSpec,
    TransitionRecorder,
    init,
)
from safeshield.integrations.ray.shield import load_payload, model_of, scripted_rollout  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")  # one Ray session per test process

SPIDER = "safeshield/DrunkSpider-v0"
SMALL = {
    "sqrl": dict(hidden=(16, 16), batch_size=16, learning_starts=20),
    # CSC's first epoch has ε = 0 under Alg. 1 (the paper preset): every proposal is replaced by the least
    # risky of 20 draws, so each decision depends on the weights (a strong check that runners use the right ones)
    "csc": dict(
        preset="paper", hidden=(16, 16), batch_size=16, learning_starts=20, episodes_per_epoch=2, n_candidates=19
    ),
}
RUNNER = {"num_cpus": 0.5}  # 2 shield runners + 2 SAC workers on 2 logical CPUs


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# -- the learner on its own (no Ray processes) -----------------------------------------------------
@pytest.mark.parametrize("method", ["sqrl", "csc"])
def test_learner_fed_in_chunks_learns_exactly_as_one_shield(method):
    """Same steps, same schedule, same minibatches: the shared learner is a single-process shield
    whose data arrives by message. A resent chunk changes nothing (it is dropped as duplicate)."""
    spec = ShieldSpec(SPIDER, method, options=SMALL[method], seed=3)
    env = spec.wrap(spec.make_env(), train=True, seed=3)
    learner = ShieldLearner(model_of(env))  # copies the model before the env's shield learns
    recorder = TransitionRecorder(env.observation_space)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)  # CSC's CQL term draws uniform actions from torch's global RNG: same draws in both
    obs, _ = env.reset(seed=0)
    recorder.start(obs)
    for _ in range(150):
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        recorder.step(obs, info, terminated, truncated)
        if terminated or truncated:
            obs, _ = env.reset()
            recorder.start(obs)
    recorder.close()
    chunk = recorder.take("r0")
    parts = [{k: (v[i : i + 50] if isinstance(v, np.ndarray) else v) for k, v in chunk.items()} for i in (0, 50, 100)]
    torch.manual_seed(0)
    for part in (parts[0], parts[1], parts[1], parts[2]):
        learner.add(part)
    stats = learner.stats()
    single = model_of(env)
    assert stats["runners"]["r0"] == {"received": 150, "last_seq": 149, "duplicates": 50, "gaps": 0}
    assert stats["updates"] == single.updates > 0
    _assert_same_weights(_weights(learner.model), _weights(single))
    assert learner.model.extra_state() == single.extra_state()  # CSC: V̂_C and its epoch counters too


def test_learner_counts_gaps_and_rejects_bad_settings():
    spec = ShieldSpec(SPIDER, "sqrl", options=SMALL["sqrl"])
    learner = ShieldLearner(model_of(spec.wrap(spec.make_env(), train=True, seed=0)))
    env = spec.wrap(spec.make_env(), train=False, seed=0)
    recorder = TransitionRecorder(env.observation_space)
    obs, _ = env.reset(seed=0)
    recorder.start(obs)
    for _ in range(6):
        obs, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        recorder.step(obs, info, terminated, truncated)
    recorder.close()
    chunk = recorder.take("r")
    keep = np.array([True, True, False, False, True, True])  # seqs 2 and 3 never arrive
    learner.add({k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in chunk.items()})
    assert learner.stats()["runners"]["r"]["gaps"] == 2
    assert learner.origins()["seq"] == [0, 1, 4, 5]
    # a chunk that is not what TransitionRecorder.take makes is refused whole, before anything is stored
    stored = learner.stats()["total_added"]
    with pytest.raises(ValueError, match=r"chunk is missing \['first'\]"):
        learner.add({k: v for k, v in chunk.items() if k != "first"})
    with pytest.raises(ValueError, match=r"chunk\['obs'\] must be finite"):
        learner.add({**chunk, "obs": np.full_like(chunk["obs"], np.nan)})
    with pytest.raises(ValueError, match=r"chunk\['failure'\] must lie in \[0, 1\]"):
        learner.add({**chunk, "failure": chunk["failure"] + 2.0})
    with pytest.raises(ValueError, match=r"chunk\['done'\] must have shape \(6,\)"):
        learner.add({**chunk, "done": chunk["done"][:3]})
    assert learner.stats()["total_added"] == stored
    with pytest.raises(ValueError, match="broadcast_every must be a positive integer"):
        ShieldLearner(learner.model, broadcast_every=0)
    with pytest.raises(ValueError, match="checkpoint_every > 0 needs checkpoint_dir"):
        ShieldLearner(learner.model, checkpoint_every=10)


# -- local Ray: 2 runners, one learner ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session():
    for attempt in range(3):
        try:
            init(num_cpus=2, num_gpus=0)
            break
        except Exception:  # "the current node timed out during startup": an overloaded machine
            ray.shutdown()
            if attempt == 2:
                raise
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shared(ray_session):
    """A CSC shield shared by 2 runner actors, each having run 90 steps."""
    spec = ShieldSpec(SPIDER, "csc", options=SMALL["csc"], seed=0)
    shared = SharedShield(spec, flush_every=16)
    runners = shared.start_runners(2, resources=RUNNER)
    ray.get([runner.run.remote(90) for runner in runners])
    return shared, runners


def _received(shared: SharedShield) -> dict[str, list[int]]:
    origins = ray.get(shared.learner.origins.remote())
    by_runner: dict[str, list[int]] = {}
    for runner, seq in zip(origins["runner"], origins["seq"]):
        by_runner.setdefault(runner, []).append(seq)
    return by_runner


def test_every_runner_transition_reaches_the_learner_once(shared):
    shared, runners = shared
    stats = ray.get([runner.stats.remote() for runner in runners])
    received, learner = _received(shared), shared.stats()
    for runner in stats:
        assert runner["sent"] >= runner["steps"] - 1  # at most the open transition waits for its next action
        assert received[runner["runner"]] == list(range(runner["sent"]))  # in order, none lost, none twice
        assert learner["runners"][runner["runner"]] == {
            "received": runner["sent"],
            "last_seq": runner["sent"] - 1,
            "duplicates": 0,
            "gaps": 0,
        }
    assert learner["total_added"] == sum(runner["sent"] for runner in stats)


def test_every_runner_receives_new_weight_versions(shared):
    shared, runners = shared
    for runner in ray.get([runner.stats.remote() for runner in runners]):
        versions = runner["versions"]
        assert versions[0] >= 1 and len(versions) >= 3
        assert all(a < b for a, b in zip(versions, versions[1:]))  # strictly rising
    assert shared.stats()["updates"] > 0


def test_runner_decides_as_a_single_process_shield_with_the_same_weights(shared):
    shared, runners = shared
    version = ray.get(runners[0].sync.remote())
    reply = ray.get(shared.learner.weights.remote())
    assert reply["version"] == version  # the learner is idle: the runner holds the latest weights
    payload = ray.get(reply["weights"][0])
    on_runner = ray.get(runners[0].evaluate.remote(40, seed=7))

    def locally(weights) -> np.ndarray:
        env = shared.spec.wrap(shared.spec.make_env(), train=False, seed=shared.runner_seed(0))
        if weights is not None:
            load_payload(model_of(env), weights)
        return scripted_rollout(env, 40, seed=7)

    assert on_runner["version"] == version
    np.testing.assert_array_equal(on_runner["executed"], locally(payload))
    assert not np.array_equal(on_runner["executed"], locally(None))  # the weights matter to the check


def test_killed_runner_restarts_and_the_learner_keeps_its_data(shared):
    shared, runners = shared
    before, received_before = ray.get(runners[1].stats.remote()), _received(shared)
    ray.kill(runners[1], no_restart=False)
    after = ray.get(runners[1].run.remote(40))  # Ray restarts the actor; the call runs on the new one
    assert after["pid"] != before["pid"] and after["steps"] == 40
    received = _received(shared)
    assert received["runner-1"][: len(received_before["runner-1"])] == received_before["runner-1"]
    assert received["runner-1"] == list(range(before["sent"] + after["sent"]))  # numbering continued
    assert received["runner-0"] == received_before["runner-0"]
    assert shared.stats()["runners"]["runner-1"]["duplicates"] == 0


def test_rllib_env_creator_names_runners_by_worker_and_vector_index(shared):
    """RLlib builds each env runner's envs from an ``EnvContext``; the runner id must survive a
    restart (same worker and vector index), so the learner's numbering continues."""
    from ray.rllib.env.env_context import EnvContext

    shared, _ = shared
    creator = shared.env_creator()
    env = creator(EnvContext({}, worker_index=3, vector_index=1))
    env.reset(seed=0)
    for _ in range(10):
        env.step(env.action_space.sample())
    env.close()  # sends everything, the open transition included
    again = creator(EnvContext({}, worker_index=3, vector_index=1))
    assert env.sent == 10 and again.next_seq == 10
    assert _received(shared)["3/1"] == list(range(10))


def _eventually(ask, done, timeout: float = 60.0):
    """``ask()`` until ``done(answer)`` (Ray kills and restarts actors asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = ask()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


# -- distributed SAC-Lagrangian -----------------------------------------------------------------------
SAC_CONFIG = SACLagrangianConfig(hidden=(16, 16), batch_size=16, learning_starts=32)


def test_distributed_sac_lagrangian_checkpoints_load_both_ways(ray_session, tmp_path):
    algo = DistributedSACLagrangian(
        SPIDER, SAC_CONFIG, num_runners=2, seed=0, rollout_steps=32, runner_resources=RUNNER
    )
    records = algo.learn(160)
    stats = algo.stats()
    assert stats["total_steps"] == 160 and stats["num_updates"] > 0 and records
    assert {r["runner"] for r in records} == {"worker-0", "worker-1"}
    assert all(r["duplicates"] == 0 and r["gaps"] == 0 for r in stats["runners"].values())
    path = algo.save(tmp_path / "distributed")
    single = SACLagrangian.load(path)
    remote_agent = algo.agent()
    assert single.config == SAC_CONFIG and single.total_steps == 160
    assert single.num_updates == remote_agent.num_updates and single.beta == remote_agent.beta
    _assert_same_weights(_weights(single.actor), _weights(remote_agent.actor))
    _assert_same_weights(_weights(single.qc), _weights(remote_agent.qc))
    algo.shutdown()

    single.save(tmp_path / "single")
    back = DistributedSACLagrangian.load(
        tmp_path / "single", SPIDER, num_runners=1, seed=1, rollout_steps=32, runner_resources=RUNNER
    )
    continued = back.agent()
    _assert_same_weights(_weights(continued.qc_target), _weights(single.qc_target))
    assert continued.total_steps == 160 and continued.beta == single.beta
    back.learn(32)
    assert back.stats()["total_steps"] == 192
    back.shutdown()


def test_killed_learner_restarts_from_its_last_checkpoint(ray_session, tmp_path):
    algo = DistributedSACLagrangian(
        SPIDER,
        SAC_CONFIG,
        num_runners=1,
        seed=0,
        rollout_steps=32,
        checkpoint_dir=tmp_path,
        checkpoint_every=1_000_000,
        runner_resources=RUNNER,
    )
    algo.learn(64)
    ray.get(algo.learner.save.remote())
    saved = algo.stats()
    algo.learn(32)  # progress after the checkpoint is lost with the learner
    ray.kill(algo.learner, no_restart=False)  # asynchronous: wait for the restarted learner
    restored = _eventually(algo.stats, lambda stats: stats["restored_from"] is not None)
    assert restored["restored_from"] == str(tmp_path)
    assert (restored["total_steps"], restored["num_updates"]) == (saved["total_steps"], saved["num_updates"])
    algo.learn(32)  # the rollout worker keeps feeding the restarted learner
    assert algo.stats()["total_steps"] == saved["total_steps"] + 32
    algo.shutdown()
