"""Run configs: presets, overrides, the resolved TOML that reads back to the same run (issue 18)."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from safeshield.experiments.config import PRESETS, RunConfig, from_toml, load_config, option_docs, resolve, to_toml
from safeshield.experiments.methods import describe_methods, method_config_class, method_toml


def test_resolved_config_round_trips_through_toml():
    config = resolve(
        {
            "run": {"env": "Hopper-v5", "steps": 5000},
            "shield": {"eps_safe": 0.05, "hidden": [64, 64]},
            "agent": {"policy_kwargs": {"net_arch": [32]}, "learning_starts": 100},
        },
        {"seeds": 4, "indicator": "terminated", "out": 'runs/"quoted"'},
        ["shield.selection=uniform", "run.pretrain_env=Hopper-v4"],
    )
    again = from_toml(to_toml(config, header="a header\nsecond line"))
    assert again == config
    assert config.shield == {"eps_safe": 0.05, "hidden": [64, 64], "selection": "uniform"}


def test_precedence_is_defaults_then_file_then_options_then_set():
    file = {"run": {"env": "A-v0", "steps": 10}, "shield": {"eps_safe": 0.2}, "agent": {}}
    config = resolve(file, {"steps": 20, "seeds": None}, ["run.steps=30", "shield.eps_safe=0.3"])
    assert (config.env, config.steps, config.seeds, config.shield["eps_safe"]) == ("A-v0", 30, RunConfig().seeds, 0.3)


def test_a_presets_shield_table_is_dropped_for_the_unshielded_baseline():
    config = resolve(load_config("drunkspider-demo"), {"method": "none"})
    assert config.shield == {} and config.agent_options["hidden"] == [64, 64]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_valid_and_each_value_cites_its_source(name):
    document = load_config(name)
    config = resolve(document, {"env": "safeshield/DrunkSpider-v0"})
    if config.method != "none" and config.shield:
        method_config_class(config.method).from_options(config.shield, config.method)  # every option exists, valid
    from safeshield.experiments.config import preset_path

    for line in preset_path(name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"{name}: no source for {line!r}"


def test_option_docs_carry_each_fields_source_comment():
    from safeshield.shields import SQRLConfig

    docs = {doc["name"]: doc for doc in option_docs(SQRLConfig)}
    assert docs["eps_safe"]["source"].startswith("our choice") and "Table 1" in docs["eps_safe"]["source"]
    assert docs["n_candidates"]["source"].startswith("official SQRL code")  # inherited from the base config
    assert docs["eps_safe"]["default"] == SQRLConfig().eps_safe


def test_methods_shows_default_meaning_and_source_for_every_option():
    text = describe_methods("sqrl")
    assert "eps_safe = 0.1" in text and "risk threshold" in text and "[SQRL Table 1" in text
    assert "unknown method 'nope'" in pytest.raises(ValueError, describe_methods, "nope").value.args[0]


@pytest.mark.parametrize("name", ["sqrl", "csc", "q_ensemble"])
def test_method_toml_is_a_config_train_reads_back(tmp_path, name):
    path = tmp_path / "c.toml"
    path.write_text(method_toml(name))
    config = resolve(load_config(str(path)), {"env": "safeshield/DrunkSpider-v0"})
    built = method_config_class(name).from_options(config.shield, name)
    assert dataclasses.asdict(built) == dataclasses.asdict(method_config_class(name)())


def test_load_config_names_an_unknown_section_or_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[runn]\nenv = 'x'\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['runn'\]"):
        load_config(str(path))
    path.write_text("[run]\nsteps = 1\nstep = 2\n")
    with pytest.raises(ValueError, match=r"unknown \[run\] key\(s\) \['step'\]"):
        load_config(str(path))
    path.write_text("[run\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(str(path))


def test_toml_writer_refuses_what_toml_cannot_hold():
    with pytest.raises(TypeError, match="cannot write"):
        to_toml(RunConfig(shield={"x": object()}))
    assert tomllib.loads(to_toml(RunConfig(shield={"inf": float("inf")})))["shield"]["inf"] == float("inf")
