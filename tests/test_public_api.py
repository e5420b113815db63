"""The public surface of ``safeshield``."""

from __future__ import annotations

import dataclasses
import inspect

import gymnasium as gym
import numpy as np
import pytest
import torch

import safeshield
from safeshield import SQRL, CheckpointError, CriticConfig, SafetyCritic, ShieldWrapper, SQRLConfig

torch.set_num_threads(1)

DRUNK_SPIDER = "safeshield/DrunkSpider-v0"


def test_all_names_are_importable():
    for name in safeshield.__all__:
        assert hasattr(safeshield, name), name
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(SQRL, SafetyCritic) and issubclass(SQRLConfig, CriticConfig)
    assert issubclass(ShieldWrapper, gym.Wrapper)


def test_methods_lists_sqrl_with_its_defaults_and_the_paper_preset():
    methods = safeshield.methods()
    assert "sqrl" in methods
    defaults = methods["sqrl"]
    assert defaults == SQRLConfig().to_json()
    assert defaults["target"] == "nstep" and defaults["eps_safe"] == 0.1  # discounted failure < 10 %
    assert defaults["regret"] == 0.05  # above that: within 5 points of the safest action found
    paper = SQRLConfig.from_options({"preset": "paper"}, "sqrl")
    assert paper.eps_safe == 0.1 and paper.gamma_safe == 0.7 and paper.target == "td"  # SQRL Table 1, §5.1
    assert paper.balance == 0.0 and not paper.guard and paper.warmup_failures == 0 and paper.regret is None
    assert defaults["lr"] == 1e-3 and paper.lr == 3e-4  # paper: SQRL Table 1
    assert defaults["hidden"] == [64, 64] and paper.hidden == (256, 256)  # paper: SQRL Table 1
    assert defaults["n_candidates"] == 50 and defaults["resample_rounds"] == 5
    assert defaults["selection"] == "safest" and paper.selection == "uniform"  # paper: Eq. 3, a safe draw of pi
    assert {f.name for f in dataclasses.fields(SQRLConfig)} == set(defaults)


def test_methods_is_json_serialisable():
    import json

    assert json.loads(json.dumps(safeshield.methods())) == safeshield.methods()


def test_wrap_signature():
    params = inspect.signature(safeshield.wrap).parameters
    assert list(params)[:3] == ["env", "method", "indicator"]
    assert params["method"].default == "sqrl"
    for name in ("train", "seed", "config"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["train"].default is True
    env = safeshield.wrap(gym.make("Pendulum-v1"), "sqrl", indicator="terminated", eps_safe=0.05, seed=1)
    assert isinstance(env, ShieldWrapper) and isinstance(env.safety_model, SQRL)
    assert env.safety_model.config.eps_safe == 0.05 and env.safety_model.nominal_threshold == 0.05
    assert env.safety_model.threshold == float("inf")  # warm-up: no failure seen yet, nothing is rejected
    config = SQRLConfig(eps_safe=0.2)
    env = safeshield.wrap(gym.make("Pendulum-v1"), indicator="terminated", config=config)
    assert env.safety_model.config == dataclasses.replace(config, horizon=10)  # horizon_seconds 0.5 at dt 0.05


def test_make_signature():
    params = inspect.signature(safeshield.make).parameters
    assert list(params)[:3] == ["env_id", "shield", "indicator"]
    env = safeshield.make(DRUNK_SPIDER, env_kwargs={"noise_std": 0.0}, train=False, seed=0, gamma_safe=0.65)
    assert env.unwrapped.noise_std == 0.0
    assert env.safety_model.frozen and env.safety_model.config.gamma_safe == 0.65
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_load_signature(tmp_path):
    params = inspect.signature(safeshield.load).parameters
    assert list(params)[:2] == ["path", "env"]
    assert params["train"].default is False
    env = safeshield.make(DRUNK_SPIDER, seed=0, hidden=(8,))
    env.safety_model.save(tmp_path / "s")
    assert isinstance(safeshield.load(tmp_path / "s"), SQRL)
    assert isinstance(safeshield.load(str(tmp_path / "s"), env=gym.make(DRUNK_SPIDER)), ShieldWrapper)


def test_seed_fixes_the_initial_weights():
    a = safeshield.make(DRUNK_SPIDER, seed=7, hidden=(8,)).safety_model
    b = safeshield.make(DRUNK_SPIDER, seed=7, hidden=(8,)).safety_model
    c = safeshield.make(DRUNK_SPIDER, seed=8, hidden=(8,)).safety_model
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name])
    assert any(not torch.equal(t, c.state_dict()[n]) for n, t in a.state_dict().items())


def test_shield_model_api_on_a_batch():
    model = safeshield.make(DRUNK_SPIDER, seed=0).safety_model
    risks = model.risk_numpy(np.zeros((5, 2), np.float32), np.zeros((5, 2), np.float32))
    assert risks.shape == (5,) and ((risks >= 0) & (risks <= 1)).all()
    obs, actions = torch.zeros(3, 2), torch.zeros(3, 2, requires_grad=True)
    model.q_safe(obs, actions).sum().backward()
    assert actions.grad is not None, "risk is differentiable w.r.t. actions (for Eq. 4 in an actor loss)"
    assert model.freeze() is model and model.frozen
    assert model.unfreeze() is model and not model.frozen


def test_learn_on_an_empty_buffer_raises():
    model = safeshield.make(DRUNK_SPIDER, seed=0).safety_model
    with pytest.raises(ValueError, match="no stored transitions"):
        model.learn(1)


@pytest.mark.parametrize(
    "field, value",
    [
        ("eps_safe", 0.0),
        ("eps_safe", 1.5),
        ("eps_safe", float("nan")),
        ("gamma_safe", 0.0),
        ("gamma_safe", 1.2),
        ("tau", 0.0),
        ("tau", 2.0),
        ("fail_weight", 1.0),
        ("n_candidates", 0),
        ("n_candidates", 2.5),
        ("resample_rounds", 0),
        ("buffer_capacity", -1),
        ("batch_size", 0),
        ("train_every", 0),
        ("updates_per_step", 0),
        ("updates_per_step", -0.5),
        ("updates_per_step", float("nan")),
        ("updates_per_step", True),
        ("learning_starts", -1),
        ("selection", "bogus"),
    ],
)
def test_sqrl_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SQRLConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("lr", -1e-3),
        ("hidden", (0,)),
        ("hidden", (64, -1)),
        ("perturbation_scale", 0.0),
        ("uniform_fraction", 1.5),
        ("widen", 0.5),
    ],
)
def test_sqrl_config_validates_every_numeric_field_at_construction(field, value):
    """Convention: bad input gets a clear exception naming the argument. These fields
    must fail when the config is built (not later, in Adam or the sampler, under another name)."""
    with pytest.raises(ValueError, match=field):
        SQRLConfig(**{field: value})


def test_pretraining_makes_the_model_select_the_riskiest_safe_candidate():
    """SQRL §6: pre-training prefers actions only just below the threshold; fine-tuning uses the
    configured rule (the config keeps it, the model's ``selection`` switches)."""
    spaces = (gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)))
    assert SQRL(*spaces, SQRLConfig(pretraining=True, hidden=(4,))).selection == "riskiest"
    assert SQRL(*spaces, SQRLConfig(pretraining=True, selection="uniform", hidden=(4,))).selection == "riskiest"
    assert SQRL(*spaces, SQRLConfig(selection="uniform", hidden=(4,))).selection == "uniform"
    assert SQRL(*spaces, SQRLConfig(hidden=(4,))).selection == "safest"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SQRLConfig().eps_safe = 0.5


def test_wrong_config_class_raises_type_error():
    with pytest.raises(TypeError, match="SQRLConfig"):
        SQRL(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,)), CriticConfig())


def test_unbounded_action_space_raises_type_error():
    with pytest.raises(TypeError, match="bounded Box"):
        SQRL(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-np.inf, np.inf, (1,)))


def test_the_unbounded_action_space_error_gives_a_fix_that_works():
    """The error's advice (declare the range with TransformAction) makes an unbounded env wrappable."""
    env = gym.make("Pendulum-v1")
    unbounded = gym.wrappers.TransformAction(env, lambda a: a, gym.spaces.Box(-np.inf, np.inf, (1,)))
    with pytest.raises(TypeError, match="TransformAction"):
        safeshield.wrap(unbounded, "sqrl", indicator="terminated", seed=0)
    bounded = gym.wrappers.TransformAction(unbounded, lambda a: a, gym.spaces.Box(-2.0, 2.0, (1,)))
    shielded = safeshield.wrap(bounded, "sqrl", indicator="terminated", seed=0)
    shielded.reset(seed=0)
    shielded.step(np.array([0.5], dtype=np.float32))


def test_environments_are_registered_on_import():
    assert DRUNK_SPIDER in gym.registry
    assert "safeshield/DrunkSpiderTarget-v0" in gym.registry


def test_wrap_takes_a_model_instance_and_refuses_anything_else():
    """A model trained elsewhere (or loaded) wraps in one line; a wrong type says what is expected."""
    env = gym.make("Pendulum-v1")
    model = SQRL(env.observation_space, env.action_space, SQRLConfig(hidden=(8, 8)), seed=0).freeze()
    wrapped = safeshield.wrap(env, model, indicator="terminated", train=False)
    assert wrapped.safety_model is model and model.frozen
    wrapped.reset(seed=0)
    wrapped.step(env.action_space.sample())
    with pytest.raises(TypeError, match="method must be a method name"):
        safeshield.wrap(gym.make("Pendulum-v1"), 3)
