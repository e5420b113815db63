"""Nothing bad gets in, nothing saved is lost: one test per finding of issue 17.

Each test is the minimal reproduction of a measured finding and failed before its fix:

1. a NaN / inf / float32-overflowing observation, a NaN reward or non-finite weights silently
   switched the shield off (a NaN risk counted as safe); now refused with an error naming the
   value, or, with ``on_nonfinite="risky"``, the step is treated as risky and not stored;
2. a float64 action space: the executed action left the space (bounds rounded to float32),
   and bounds that overflow float32 failed mid-episode instead of at wrap time;
3. hostile checkpoints (FIFO, device, symlinks, huge or non-finite config values, wrong dtypes,
   deep JSON) hung, allocated without bound, loaded, or raised the wrong error;
4. ``kill -9`` during ``save`` could leave the path missing and temp folders behind
   (the kill loop itself is in ``test_kill_during_save.py``);
5. CSC / Q-ensemble runs drew from torch's global RNG, so a run depended on what ran before it;
6. an indicator returning the string "0.5" was accepted, and a vector shield whose sub-env
   raised failed later with an unrelated ``AttributeError``.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import safeshield
from safeshield import CheckpointError
from safeshield.core import checkpoint as checkpoint_module
from safeshield.core.decision import PerturbationSampler, decide

torch.set_num_threads(1)
SMALL = dict(hidden=(8,), learning_starts=2, batch_size=4)


def model_of(env):
    return env.get_wrapper_attr("safety_model")


def never_fails(obs, reward, terminated, truncated, info) -> float:
    return 0.0


class Poisoned(gym.Wrapper):
    """Replace the observation (or the reward) of step ``at`` by ``value``."""

    def __init__(self, env, at: int, value: float, where: str = "obs"):
        super().__init__(env)
        self.at, self.value, self.where, self.t = at, value, where, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            if self.where == "obs":
                obs = np.full_like(obs, self.value)
            else:
                reward = self.value
        return obs, reward, terminated, truncated, info


# -- finding 1: non-finite values ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_observation_is_refused_with_its_name(value):
    env = safeshield.wrap(Poisoned(gym.make("Pendulum-v1"), 3, value), "sqrl", never_fails, seed=0, **SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="observation"):
        for _ in range(5):
            env.step(env.action_space.sample())
    weights = torch.cat([p.detach().reshape(-1) for p in model_of(env).parameters()])
    assert torch.isfinite(weights).all()
    assert np.isfinite(model_of(env).buffer.obs).all() and np.isfinite(model_of(env).buffer.next_obs).all()


def test_float64_observation_overflowing_float32_is_refused():
    space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)

    class Huge(gym.Env):
        observation_space, action_space = space, gym.spaces.Box(-1, 1, (1,), np.float32)

        def reset(self, seed=None, options=None):
            return np.zeros(2), {}

        def step(self, action):
            return np.array([1e300, 0.0]), 0.0, False, False, {}

    env = safeshield.wrap(Huge(), "sqrl", never_fails, **SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="observation.*float32"):
        env.step(np.zeros(1, np.float32))


def test_nan_reward_is_refused_with_its_name():
    env = safeshield.wrap(Poisoned(gym.make("Pendulum-v1"), 2, math.nan, "reward"), "sqrl", never_fails, **SMALL)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(ValueError, match="reward"):
        env.step(env.action_space.sample())


def test_on_nonfinite_risky_treats_the_step_as_risky_and_stores_nothing_of_it():
    env = safeshield.wrap(
        Poisoned(gym.make("Pendulum-v1"), 3, math.nan), "sqrl", never_fails, on_nonfinite="risky", seed=0, **SMALL
    )
    env.reset(seed=0)
    reports = [env.step(env.action_space.sample())[-1]["shield"] for _ in range(6)]
    after_nan = reports[3]  # decided from the NaN observation of step 3
    assert after_nan["risk"] == math.inf and after_nan["fell_back"]
    model = model_of(env)
    assert np.isfinite(model.buffer.obs[: len(model.buffer)]).all()
    assert np.isfinite(model.buffer.next_obs[: len(model.buffer)]).all()
    assert len(model.buffer) == 4  # 6 steps, the two touching the NaN observation skipped
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_risk_is_never_safe():
    """A model that returns NaN must not let its proposal pass (NaN < threshold is False)."""
    obs = torch.zeros(3, 2)
    proposal = torch.zeros(3, 1)
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])

    def nan_risk(o, a):
        return torch.full((o.shape[0],), math.nan)

    decision = decide(
        nan_risk, obs, proposal, 0.5, PerturbationSampler(low, high), torch.Generator().manual_seed(0), k=4
    )
    assert decision.fell_back.all()
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", never_fails, train=False, **SMALL)
    model = model_of(env)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(math.nan)
    env.reset(seed=0)
    report = env.step(env.action_space.sample())[-1]["shield"]
    assert report["fell_back"] and not report["risk"] < report["threshold"]


def test_non_finite_weights_refuse_to_load(tmp_path):
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", never_fails, **SMALL)
    model = model_of(env)
    with torch.no_grad():
        next(model.parameters())[0, 0] = math.nan
    model.save(tmp_path / "nan")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        safeshield.load(tmp_path / "nan")


def test_training_stops_with_a_clear_error_when_weights_go_non_finite():
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", never_fails, seed=0, **SMALL)
    model = model_of(env)
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    with torch.no_grad():
        model.critic.net[0].weight[0, 0] = math.inf
    with pytest.raises(FloatingPointError, match="non-finite"):
        for _ in range(3):
            env.step(env.action_space.sample())


# -- finding 2: float64 action spaces ----------------------------------------------------------------------


class Recorder(gym.Env):
    """Records the executed actions; observation and action spaces as given."""

    def __init__(self, action_space, observation_space=None):
        self.action_space = action_space
        self.observation_space = observation_space or gym.spaces.Box(-1, 1, (2,), np.float32)
        self.executed = []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        self.executed.append(action)
        return self.observation_space.sample(), 0.0, False, False, {}


def test_executed_action_stays_inside_a_float64_space():
    space = gym.spaces.Box(np.float64(0.0), np.float64(0.001), (1,), np.float64)
    inner = Recorder(space)
    env = safeshield.wrap(inner, "sqrl", never_fails, train=False)
    env.reset(seed=0)
    report = env.step(np.array([0.001]))[-1]["shield"]
    assert space.contains(inner.executed[-1]), repr(inner.executed[-1])
    assert space.contains(report["executed_action"])


def test_float64_bounds_overflowing_float32_are_refused_at_wrap_time():
    space = gym.spaces.Box(np.float64(-1e300), np.float64(1e300), (1,), np.float64)
    with pytest.raises(ValueError, match="action_space.*float32"):
        safeshield.wrap(Recorder(space), "sqrl", never_fails)


# -- finding 3: hostile checkpoints -----------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", "terminated", seed=0, **SMALL)
    path = tmp_path / "shield"
    model_of(env).save(path)
    return path


def rewrite(path: Path, document: dict | None = None, tensors: dict | None = None) -> None:
    """Replace config and/or weights and recompute the hash: a hostile checkpoint a hash cannot catch."""
    weights = safetensors_bytes(tensors) if tensors is not None else (path / "weights.safetensors").read_bytes()
    document = document if document is not None else json.loads((path / "config.json").read_text())
    document["content_sha256"] = checkpoint_module._content_hash(document, weights)
    (path / "weights.safetensors").write_bytes(weights)
    (path / "config.json").write_text(json.dumps(document))


def edited(path: Path, **changes) -> dict:
    document = json.loads((path / "config.json").read_text())
    document["config"]["config"].update(changes)
    return document


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def load_within(path, seconds: int = 5):
    """``safeshield.load(path)``, failing the test instead of hanging."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return safeshield.load(path)
    except Timeout:
        pytest.fail(f"safeshield.load hung for {seconds} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_fifo_config_does_not_hang(checkpoint):
    (checkpoint / "config.json").unlink()
    os.mkfifo(checkpoint / "config.json")
    with pytest.raises(CheckpointError, match="config.json.*regular file"):
        load_within(checkpoint)


def test_config_linked_to_dev_zero_is_refused(checkpoint):
    (checkpoint / "config.json").unlink()
    os.symlink("/dev/zero", checkpoint / "config.json")
    with pytest.raises(CheckpointError, match="config.json.*symbolic link"):
        load_within(checkpoint)


def test_weights_linked_to_another_checkpoint_are_refused(checkpoint, tmp_path):
    other = tmp_path / "other"
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", "terminated", seed=1, **SMALL)
    model_of(env).save(other)
    (checkpoint / "weights.safetensors").unlink()
    os.symlink(other / "weights.safetensors", checkpoint / "weights.safetensors")
    with pytest.raises(CheckpointError, match="symbolic link"):
        load_within(checkpoint)


def test_oversized_config_is_refused_before_reading_it(checkpoint, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "MAX_CONFIG_BYTES", 1000)
    with pytest.raises(CheckpointError, match="config.json.*at most 1000 bytes"):
        load_within(checkpoint)


def test_huge_hidden_layer_is_refused_before_allocation(checkpoint):
    """hidden=[1e9] would allocate 16 GB; the safetensors header says otherwise and wins."""
    rewrite(checkpoint, edited(checkpoint, hidden=[1_000_000_000]))
    with pytest.raises(CheckpointError, match="weights.safetensors.*config describes"):
        load_within(checkpoint)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"buffer_capacity": 10**12}, "buffer_capacity"),
        ({"learning_starts": math.nan}, "learning_starts"),
        ({"perturbation_scale": math.inf}, "perturbation_scale"),
        ({"eps_safe": math.nan}, "eps_safe"),
        ({"hidden": [8.5]}, "hidden"),
        ({"batch_size": True}, "batch_size"),
        ({"selection": ["closest"]}, "selection"),
    ],
    ids=[
        "capacity-1e12",
        "learning-starts-nan",
        "scale-inf",
        "eps-nan",
        "hidden-float",
        "batch-bool",
        "selection-list",
    ],
)
def test_hostile_config_values_raise_checkpoint_error_naming_the_field(checkpoint, changes, field):
    rewrite(checkpoint, edited(checkpoint, **changes))
    with pytest.raises(CheckpointError, match=field):
        load_within(checkpoint)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_hostile_counting_flag_raises_checkpoint_error_naming_it(checkpoint, value):
    document = json.loads((checkpoint / "config.json").read_text())
    document["config"]["state"]["counting"] = value
    rewrite(checkpoint, document)
    with pytest.raises(CheckpointError, match="counting"):
        load_within(checkpoint)


@pytest.mark.parametrize(
    "field, value",
    [("log_value", math.nan), ("log_initial", "0.1"), ("fallback_share", 2.0), ("steps", -1), ("episodes", 1.5)],
)
def test_a_hostile_budget_state_raises_checkpoint_error_naming_the_field(tmp_path, field, value):
    """The adapted threshold's saved state (which sets the threshold and, overspent, the regret) is checked."""
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", "terminated", seed=0, budget=5.0, **SMALL)
    model = model_of(env)
    model._adaptive(model.nominal_threshold)  # built on first use: the checkpoint now holds its state
    path = tmp_path / "shield"
    model.save(path)
    document = json.loads((path / "config.json").read_text())
    document["config"]["state"]["adaptive_threshold"][field] = value
    rewrite(path, document)
    with pytest.raises(CheckpointError, match=f"adaptive_threshold.{field}"):
        load_within(path)


@pytest.mark.parametrize("value", [-1.0, "3", math.inf, True])
def test_a_hostile_csc_epoch_cost_raises_checkpoint_error_naming_it(tmp_path, value):
    path = tmp_path / "csc"
    model_of(safeshield.wrap(gym.make("Pendulum-v1"), "csc", "terminated", seed=0)).save(path)
    document = json.loads((path / "config.json").read_text())
    document["config"]["state"]["epoch_cost"] = value
    rewrite(path, document)
    with pytest.raises(CheckpointError, match="epoch_cost"):
        load_within(path)


@pytest.mark.parametrize("kind", ["bool", "int64", "nan", "float64"])
def test_weights_of_the_wrong_dtype_or_non_finite_are_refused(checkpoint, kind):
    from safetensors.torch import load_file

    tensors = load_file(str(checkpoint / "weights.safetensors"))
    name = sorted(tensors)[0]
    if kind == "nan":
        tensors[name] = torch.full_like(tensors[name], math.nan)
    else:
        tensors[name] = tensors[name].to(getattr(torch, kind))
    rewrite(checkpoint, tensors=tensors)
    with pytest.raises(CheckpointError, match=name):
        load_within(checkpoint)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["config"].update(state=[1, 2]),
        lambda d: d["config"].update(state={"updates": "many"}),
        lambda d: d["config"].update(state={"updates": math.inf}),
        lambda d: d["config"].update(
            observation_space={"type": "Box", "shape": [10**9], "dtype": "float32", "low": [0], "high": [1]}
        ),
        lambda d: d["config"].update(observation_space=[]),
        lambda d: d["config"].update(
            action_space={"type": "Box", "shape": [1], "dtype": "object", "low": [0], "high": [1]}
        ),
        lambda d: d["config"].update(method=["sqrl"]),
        lambda d: d["config"].update(config=[]),
        lambda d: d.update(kind=7),
        lambda d: d.update(format_version="2"),
    ],
    ids=[
        "state-list",
        "state-str",
        "state-inf",
        "space-huge",
        "space-list",
        "space-dtype",
        "method-list",
        "config-list",
        "kind-int",
        "version-str",
    ],
)
def test_malformed_documents_raise_checkpoint_error(checkpoint, mutate):
    document = json.loads((checkpoint / "config.json").read_text())
    mutate(document)
    rewrite(checkpoint, document)
    with pytest.raises(CheckpointError):
        load_within(checkpoint)


def test_deeply_nested_config_raises_checkpoint_error(checkpoint):
    (checkpoint / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="config.json"):
        load_within(checkpoint)


def test_edited_config_without_a_new_hash_is_refused(checkpoint):
    """The hash covers the config too: only the weights were hashed before."""
    document = json.loads((checkpoint / "config.json").read_text())
    document["config"]["config"]["eps_safe"] = 0.9
    (checkpoint / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="hash"):
        load_within(checkpoint)


@pytest.mark.parametrize("corrupt", ["header-size", "header-json", "offsets"])
def test_corrupt_safetensors_header_raises_checkpoint_error(checkpoint, corrupt):
    data = bytearray((checkpoint / "weights.safetensors").read_bytes())
    size = int.from_bytes(data[:8], "little")
    if corrupt == "header-size":
        data[:8] = (2**62).to_bytes(8, "little")
    elif corrupt == "header-json":
        data[8 : 8 + size] = b"{" + b" " * (size - 1)
    else:
        header = json.loads(bytes(data[8 : 8 + size]))
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"][1] += 4
        text = json.dumps(header).encode().ljust(size)[:size]
        data[8 : 8 + size] = text
    document = json.loads((checkpoint / "config.json").read_text())
    document["content_sha256"] = checkpoint_module._content_hash(document, bytes(data))
    (checkpoint / "weights.safetensors").write_bytes(bytes(data))
    (checkpoint / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        load_within(checkpoint)


# -- finding 4: saves a kill leaves half-done ---------------------------------------------------------


def test_load_recovers_the_complete_old_copy_a_killed_save_left(checkpoint):
    """A kill between the two renames of a non-atomic swap leaves only ``.<name>.old-*``."""
    expected = model_of(safeshield.load(checkpoint, gym.make("Pendulum-v1"))).config
    old = checkpoint.parent / f".{checkpoint.name}.old-999999999-abc"
    os.rename(checkpoint, old)
    with pytest.warns(RuntimeWarning, match="recovered"):
        model = load_within(checkpoint)
    assert model.config == expected
    assert checkpoint.is_dir() and not old.exists()


def test_next_save_removes_debris_of_dead_saves(checkpoint):
    parent = checkpoint.parent
    for name in (
        f".{checkpoint.name}.tmp-999999999-x",
        f".{checkpoint.name}.old-999999999-y",
        f".{checkpoint.name}.tmp-legacy",
    ):
        (parent / name).mkdir()
        (parent / name / "weights.safetensors").write_bytes(b"partial")
    alive = parent / f".{checkpoint.name}.tmp-{os.getppid()}-z"  # a save in flight in a live process
    alive.mkdir()
    safeshield.load(checkpoint).save(checkpoint)
    assert sorted(p.name for p in parent.iterdir()) == sorted([checkpoint.name, alive.name])


# -- finding 5: reproducibility of CSC and the Q-ensemble ------------------------------------------


def short_csc_run(method: str) -> list:
    """A short CSC / Q-ensemble job with a TRPO agent's sampler attached, as benchmarks/csc_nav.py runs them."""
    from safeshield.agents.trpo_lagrangian import TRPOLagrangian, TRPOLagrangianConfig

    env = safeshield.wrap(
        gym.make("Pendulum-v1"),
        method,
        lambda o, r, te, tr, i: float(r < -6.0),
        seed=3,
        hidden=(16,),
        learning_starts=20,
        batch_size=16,
        train_every=2,
        n_critics=3 if method == "q_ensemble" else 1,
        threshold_units="normalised",
        episodes_per_epoch=1,
    )
    agent = TRPOLagrangian.for_env(env, TRPOLagrangianConfig(steps_per_epoch=100, hidden=(8,)), seed=3)
    env.attach_policy(agent.sample_actions)
    records = agent.learn(env, 300, progress=False, seed=3)
    model = model_of(env)
    return [records, [p.detach().clone() for p in model.parameters()], model.buffer.all().action.copy()]


@pytest.mark.parametrize("method", ["csc", "q_ensemble"])
def test_csc_and_q_ensemble_runs_reproduce_exactly(method):
    first = short_csc_run(method)
    torch.rand(17)  # what another job in the same worker process would do to the global RNG
    second = short_csc_run(method)
    assert first[0] == second[0]
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))
    np.testing.assert_array_equal(first[2], second[2])


# -- finding 6: indicators and broken vector envs ------------------------------------------------------


@pytest.mark.parametrize("value", ["0.5", b"1", [0.5], None])
def test_indicator_returning_a_non_number_is_refused(value):
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", lambda *step: value, train=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="indicator.*number"):
        env.step(env.action_space.sample())


class Exploding(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.t = 0

    def step(self, action):
        self.t += 1
        if self.t == 2:
            raise RuntimeError("sub-env exploded")
        return self.env.step(action)


def test_vector_shield_after_a_sub_env_raised_says_so():
    envs = gym.vector.AsyncVectorEnv([lambda: Exploding(gym.make("Pendulum-v1")) for _ in range(2)])
    envs = safeshield.wrap_vector(envs, "sqrl", never_fails, train=False)
    try:
        envs.reset(seed=0)
        envs.step(envs.action_space.sample())
        with pytest.raises(RuntimeError, match="exploded"):
            envs.step(envs.action_space.sample())
        with pytest.raises(RuntimeError, match="raised during an earlier step"):
            envs.step(envs.action_space.sample())
    finally:
        envs.close(terminate=True) if hasattr(envs.unwrapped, "parent_pipes") else envs.close()


@pytest.mark.parametrize("agent", ["sac", "sac_lagrangian", "trpo"])
def test_agent_checkpoint_asking_for_a_huge_layer_is_refused_before_allocation(tmp_path, agent):
    """Agents load through the same sequence: their config is built on the meta device first."""
    from safeshield.agents.sac import SAC, SACConfig
    from safeshield.agents.sac_lagrangian import SACLagrangian, SACLagrangianConfig
    from safeshield.agents.trpo_lagrangian import TRPOLagrangian, TRPOLagrangianConfig

    env = gym.make("Pendulum-v1")
    cls, config = {
        "sac": (SAC, SACConfig),
        "sac_lagrangian": (SACLagrangian, SACLagrangianConfig),
        "trpo": (TRPOLagrangian, TRPOLagrangianConfig),
    }[agent]
    cls(env.observation_space, env.action_space, config(hidden=(8,)), seed=0).save(tmp_path / agent)
    cls.load(tmp_path / agent, env)  # the round trip works
    document = json.loads((tmp_path / agent / "config.json").read_text())
    section = next(key for key, value in document["config"].items() if isinstance(value, dict) and "hidden" in value)
    document["config"][section]["hidden"] = [1_000_000_000]
    rewrite(tmp_path / agent, document)
    with pytest.raises(CheckpointError, match=r"config describes F32\[1000000000"):
        cls.load(tmp_path / agent, env)


class Reshaped(gym.ObservationWrapper):
    """Return observations of ``shape`` (or text) while still declaring the env's own space."""

    def __init__(self, env, value):
        super().__init__(env)
        self.value = value

    def observation(self, observation):
        return self.value


@pytest.mark.parametrize(
    ("value", "match"),
    [(np.zeros(4, np.float32), r"shape \(3,\).*got shape \(4,\)"), ("up", "numeric array of shape")],
    ids=["wrong-shape", "text"],
)
def test_an_observation_its_space_does_not_describe_is_refused_by_name(value, match):
    """Pendulum declares (3,) observations; an env that returns something else gets an error that
    names the observation and both shapes, at reset and at step (not a numpy broadcast error)."""
    env = safeshield.wrap(Reshaped(gym.make("Pendulum-v1"), value), "sqrl", never_fails, seed=0, **SMALL)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0)
