"""Tests for ``safeshield.core.checkpoint`` and ``SafetyCritic.save`` / ``safeshield.load``.

Contract: checkpoints never use pickle (safetensors + JSON), are written
atomically, and refuse to load into an env with other spaces, naming what is wrong.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import safeshield
from safeshield import CheckpointError, SafetyCritic, ShieldWrapper
from safeshield.core import checkpoint as checkpoint_module
from safeshield.core.checkpoint import save_checkpoint

torch.set_num_threads(1)

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


def trained_shield(seed: int = 0, steps: int = 60, **options):
    """A small SQRL shield that has seen failures and taken some gradient steps."""
    env = safeshield.make(DRUNK_SPIDER, seed=seed, hidden=(16, 16), learning_starts=16, batch_size=16, **options)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    assert env.safety_model.updates > 0
    return env


def probe_batch(n: int = 64, seed: int = 1):
    rng = np.random.default_rng(seed)
    obs = np.concatenate([rng.uniform(-2, 12, (n, 1)), rng.uniform(-8, 8, (n, 1))], 1)
    return torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)


def risks(model: SafetyCritic) -> torch.Tensor:
    obs, actions = probe_batch()
    with torch.inference_mode():
        return model.risk(obs, actions).clone()


def rewrite_config(path: Path, document: dict) -> None:
    """Write an edited config.json with its hash recomputed (an edit a hash cannot catch)."""
    weights = (path / "weights.safetensors").read_bytes()
    document["content_sha256"] = checkpoint_module._content_hash(document, weights)
    (path / "config.json").write_text(json.dumps(document))


@pytest.fixture
def saved(tmp_path):
    env = trained_shield(eps_safe=0.07, gamma_safe=0.65)
    path = tmp_path / "shield"
    env.safety_model.save(path)
    return env, path


# ---------------------------------------------------------------- round trip


def test_round_trip_reproduces_risks_config_and_counters(saved):
    env, path = saved
    loaded = safeshield.load(path, gym.make(DRUNK_SPIDER))
    assert isinstance(loaded, ShieldWrapper)
    assert torch.equal(risks(loaded.safety_model), risks(env.safety_model))
    assert np.array_equal(
        loaded.safety_model.risk_numpy(*map(torch.Tensor.numpy, probe_batch())),
        env.safety_model.risk_numpy(*map(torch.Tensor.numpy, probe_batch())),
    )
    assert loaded.safety_model.config == env.safety_model.config
    assert loaded.safety_model.config.eps_safe == 0.07 and loaded.safety_model.config.gamma_safe == 0.65
    assert loaded.safety_model.updates == env.safety_model.updates
    assert loaded.safety_model.indicator == "info:failure"
    # Target network too (fine-tuning continues from the same target).
    for name, tensor in env.safety_model.state_dict().items():
        assert torch.equal(loaded.safety_model.state_dict()[name], tensor), name


def test_load_with_env_is_frozen_by_default_and_train_true_unfreezes(saved):
    _, path = saved
    frozen = safeshield.load(path, gym.make(DRUNK_SPIDER))
    assert frozen.safety_model.frozen
    frozen.reset(seed=0)
    frozen.step(np.zeros(2, np.float32))
    assert frozen.safety_model.buffer.total_added == 0
    training = safeshield.load(path, gym.make("safeshield/DrunkSpiderTarget-v0"), train=True)
    assert isinstance(training, ShieldWrapper) and not training.safety_model.frozen
    training.reset(seed=0)
    training.step(np.zeros(2, np.float32))
    assert training.safety_model.buffer.total_added == 1


def test_load_without_env_returns_the_model(saved):
    env, path = saved
    model = safeshield.load(path)
    assert isinstance(model, safeshield.SQRL) and not isinstance(model, gym.Env)
    assert model.frozen
    assert not safeshield.load(path, train=True).frozen
    assert torch.equal(risks(model), risks(env.safety_model))
    assert model.action_space == env.action_space
    assert model.observation_space.shape == env.observation_space.shape


def test_loaded_shield_decides_like_the_saved_one(saved):
    """A frozen shield is deterministic given the seed, so a loaded copy replays the original."""
    env, path = saved
    env.safety_model.freeze()
    loaded = safeshield.load(path, gym.make(DRUNK_SPIDER), seed=5)
    original = ShieldWrapper(gym.make(DRUNK_SPIDER), env.safety_model, train=False, seed=5)
    for shield in (loaded, original):
        shield.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        a, b = loaded.step(action), original.step(action)
        assert np.array_equal(a[0], b[0])
        assert a[4]["shield"]["risk"] == b[4]["shield"]["risk"]
        if a[2] or a[3]:
            loaded.reset(seed=3)
            original.reset(seed=3)


def test_sqrl_load_round_trip(saved):
    env, path = saved
    model = safeshield.SQRL.load(path, env)
    assert torch.equal(risks(model), risks(env.safety_model))


# ---------------------------------------------------------------- mismatched spaces


def test_loading_into_another_observation_space_names_it(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="observation_space"):
        safeshield.load(path, gym.make("MountainCarContinuous-v0"))


def test_loading_into_another_action_space_names_it(saved):
    _, path = saved
    env = gym.wrappers.RescaleAction(gym.make(DRUNK_SPIDER), -0.5, 0.5)
    with pytest.raises(CheckpointError, match="action_space"):
        safeshield.load(path, env)


def test_loading_into_a_discrete_action_space_raises_checkpoint_error(saved):
    _, path = saved
    with pytest.raises((CheckpointError, TypeError), match="action_space|Box"):
        safeshield.load(path, gym.make("CartPole-v1"))


# ---------------------------------------------------------------- damaged checkpoints


def test_truncated_weights_file_names_the_file(saved):
    _, path = saved
    weights = path / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        safeshield.load(path)


def test_truncated_weights_with_a_matching_hash_still_raises_checkpoint_error(saved):
    """Even when config.json's hash is rewritten to match, an unreadable weights file is a CheckpointError."""
    _, path = saved
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    document = json.loads((path / "config.json").read_text())
    document["content_sha256"] = checkpoint_module._content_hash(document, weights.read_bytes())
    (path / "config.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        safeshield.load(path)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: text[: len(text) // 2],  # truncated JSON
        lambda text: "\x00\xff garbage",  # not JSON
        lambda text: "[1, 2, 3]",  # JSON, not a checkpoint document
    ],
    ids=["truncated", "garbage", "not-a-document"],
)
def test_corrupt_config_json_names_the_file(saved, corrupt):
    _, path = saved
    config = path / "config.json"
    config.write_text(corrupt(config.read_text()))
    with pytest.raises(CheckpointError, match="config.json"):
        safeshield.load(path)


@pytest.mark.parametrize("section", ["config", "method", "observation_space"])
def test_config_json_missing_a_section_raises_checkpoint_error(saved, section):
    """A config.json of the right format but with a section deleted is corrupt too (not a bare KeyError)."""
    _, path = saved
    config = path / "config.json"
    document = json.loads(config.read_text())
    if section == "config":
        del document["config"]
    else:
        del document["config"][section]
    rewrite_config(path, document)
    with pytest.raises(CheckpointError, match="config.json|" + section):
        safeshield.load(path, gym.make(DRUNK_SPIDER))


def test_checkpoint_of_an_unknown_method_raises_checkpoint_error(saved):
    _, path = saved
    config = path / "config.json"
    document = json.loads(config.read_text())
    document["config"]["method"] = "nosuchmethod"
    rewrite_config(path, document)
    with pytest.raises(CheckpointError, match="nosuchmethod"):
        safeshield.load(path)


@pytest.mark.parametrize("missing", ["config.json", "weights.safetensors"])
def test_missing_file_names_it(saved, missing):
    _, path = saved
    (path / missing).unlink()
    with pytest.raises(CheckpointError, match=missing):
        safeshield.load(path)


def test_missing_directory_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        safeshield.load(tmp_path / "nowhere")


def test_checkpoint_of_another_kind_raises_checkpoint_error(tmp_path):
    path = tmp_path / "agent"
    save_checkpoint(path, {"w": torch.zeros(3)}, {"anything": 1}, kind="agent/sac")
    with pytest.raises(CheckpointError, match="agent/sac"):
        safeshield.load(path)
    with pytest.raises(CheckpointError, match=str(path)):
        safeshield.load(path, gym.make(DRUNK_SPIDER))


# ---------------------------------------------------------------- atomicity and format


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    path = tmp_path / "shield"
    first = trained_shield(seed=0)
    first.safety_model.save(path)
    second = trained_shield(seed=1, eps_safe=0.2)
    second.safety_model.save(path)
    loaded = safeshield.load(path)
    assert torch.equal(risks(loaded), risks(second.safety_model))
    assert not torch.equal(risks(loaded), risks(first.safety_model))
    assert loaded.config.eps_safe == 0.2
    assert sorted(os.listdir(tmp_path)) == ["shield"]


def _boom(*args, **kwargs):
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("target", ["serialise_weights", "write_file"])
def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_dirs(tmp_path, monkeypatch, target):
    path = tmp_path / "shield"
    first = trained_shield(seed=0)
    first.safety_model.save(path)
    expected = risks(first.safety_model)
    second = trained_shield(seed=1)
    if target == "serialise_weights":
        monkeypatch.setattr(checkpoint_module, "save_safetensors_bytes", _boom)
    else:
        monkeypatch.setattr(checkpoint_module, "_write_file", _boom)
    with pytest.raises(OSError, match="simulated"):
        second.safety_model.save(path)
    monkeypatch.undo()
    assert torch.equal(risks(safeshield.load(path)), expected)
    assert leftovers(tmp_path, "shield") == []
    assert sorted(os.listdir(tmp_path)) == ["shield"]


@pytest.mark.parametrize("exchange", ["unsupported", "fails"])
def test_failed_swap_keeps_the_previous_checkpoint_loadable(tmp_path, monkeypatch, exchange):
    """Atomicity at the last step: if moving the new checkpoint into place fails, the old one
    must still be at ``path`` (save_checkpoint's docstring: "the old checkpoint survives until the
    new one is in place"), whether the atomic exchange is unavailable (two renames) or fails."""
    path = tmp_path / "shield"
    first = trained_shield(seed=0)
    first.safety_model.save(path)
    expected = risks(first.safety_model)
    second = trained_shield(seed=1)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if Path(dst) == path and ".tmp-" in Path(src).name:  # only the staging -> target rename fails
            raise OSError("rename failed (simulated)")
        return real_rename(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "rename", rename)
    if exchange == "unsupported":
        monkeypatch.setattr(checkpoint_module, "_exchange", lambda a, b: False)
    else:
        calls.append("exchange")
        monkeypatch.setattr(checkpoint_module, "_exchange", lambda a, b: _boom() if Path(b) == path else False)
    with pytest.raises(OSError, match="simulated"):
        second.safety_model.save(path)
    monkeypatch.undo()
    assert calls, "the save reached the swap"
    assert torch.equal(risks(safeshield.load(path)), expected)
    assert leftovers(tmp_path, "shield") == []


def test_saving_onto_a_regular_file_raises_checkpoint_error_and_keeps_it(tmp_path):
    path = tmp_path / "shield"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        trained_shield().safety_model.save(path)
    assert path.read_text() == "not a checkpoint"
    assert leftovers(tmp_path, "shield") == []


def test_checkpoint_holds_only_json_and_safetensors(saved):
    """Contract: no pickle. The weights load with safetensors; the config is plain JSON."""
    _, path = saved
    assert sorted(os.listdir(path)) == ["config.json", "weights.safetensors"]
    tensors = load_file(str(path / "weights.safetensors"))
    assert tensors and all(isinstance(t, torch.Tensor) for t in tensors.values())
    document = json.loads((path / "config.json").read_text())
    assert document["format"] == "safeshield-checkpoint"
    assert document["kind"] == "shield/sqrl"
    assert document["config"]["method"] == "sqrl"
    for name in os.listdir(path):
        assert b"\x80\x04" not in (path / name).read_bytes()[:2], "pickle protocol header"


# ---------------------------------------------------------------- load with options (a new phase)


def test_load_with_options_changes_the_rules_not_the_weights(saved):
    env, path = saved
    fine_tune = safeshield.load(path, gym.make(DRUNK_SPIDER), train=True, eps_safe=0.2, pretraining=False)
    assert fine_tune.safety_model.nominal_threshold == 0.2 and fine_tune.safety_model.config.eps_safe == 0.2
    assert torch.equal(risks(fine_tune.safety_model), risks(env.safety_model))
    with pytest.raises(ValueError, match="hidden"):
        safeshield.load(path, gym.make(DRUNK_SPIDER), hidden=(4,))
    with pytest.raises(TypeError, match="eps_unsafe"):
        safeshield.load(path, eps_unsafe=0.1)


def test_load_with_a_new_learning_rate_reaches_the_optimizer(saved):
    """``load(..., lr=...)`` for fine-tuning: the config and the optimizer must agree on the rate."""
    _, path = saved
    fine_tune = safeshield.load(path, gym.make(DRUNK_SPIDER), train=True, lr=1e-5)
    assert fine_tune.safety_model.config.lr == 1e-5
    assert [group["lr"] for group in fine_tune.safety_model.optimizer.param_groups] == [1e-5]


def test_fine_tuning_a_loaded_shield_is_reproducible_given_the_seed(saved):
    """A loaded shield that keeps learning samples its minibatches from ``seed``: same seed, same weights."""
    _, path = saved

    def fine_tune():
        env = safeshield.load(path, gym.make(DRUNK_SPIDER), train=True, seed=3, learning_starts=8, batch_size=8)
        env.reset(seed=3)
        rng = np.random.default_rng(3)
        for _ in range(40):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
            if terminated or truncated:
                env.reset()
        assert env.safety_model.updates > 0
        return env.safety_model.state_dict()

    first, second = fine_tune(), fine_tune()
    assert all(torch.equal(first[name], second[name]) for name in first)
