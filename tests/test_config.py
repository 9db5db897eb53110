"""params.yaml and dvc.yaml are checked against the config schema."""

import re

import pytest
import yaml

from driftfit.config import Params, load_params, parse_params
from driftfit.errors import ConfigError
from tests.conftest import ROOT, write_params


def test_shipped_params_load_and_every_key_is_commented():
    params = load_params(ROOT / "params.yaml")
    assert params.model.trust_remote_code is False
    for n, line in enumerate((ROOT / "params.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.strip().startswith("-"):
            assert "#" in line, f"params.yaml line {n} has no comment: {line!r}"


def test_dvc_yaml_params_and_paths_exist_in_schema():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for key in stage.get("params", []):
            node = raw
            for part in key.split("."):
                assert part in node, f"stage {name}: param {key} is not in params.yaml"
                node = node[part]
        assert stage["cmd"].startswith("driftfit "), name
    text = (ROOT / "dvc.yaml").read_text()
    for ref in re.findall(r"\$\{([a-z_]+(?:\.[a-z_]+)*)\}", text):
        node = raw
        for part in ref.split("."):
            assert part in node, f"dvc.yaml refers to ${{{ref}}}, not in params.yaml"
            node = node[part]


def test_wrong_type_names_key_value_and_expectation(tmp_path):
    path = write_params(tmp_path, {"train.epochs": "three"})
    with pytest.raises(ConfigError, match=r"train\.epochs.*'three'.*number"):
        load_params(path)


def test_unknown_key_is_rejected(tmp_path):
    path = write_params(tmp_path, {"train.learning_rat": 0.1})
    with pytest.raises(ConfigError, match=r"unknown key 'train\.learning_rat'"):
        load_params(path)


@pytest.mark.parametrize("key,value", [("train.batch_size", 0), ("train.batch_size", -4),
                                       ("shift.sample_size", 0), ("model.max_seq_len", -1)])
def test_zero_or_negative_sizes_are_rejected(tmp_path, key, value):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_params(write_params(tmp_path, {key: value}))


def test_unknown_strategy_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"strategy\.force.*'lorax'.*'lora'"):
        load_params(write_params(tmp_path, {"strategy.force": "lorax"}))


def test_missing_params_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_params(["a", "b"])


def test_relative_paths_are_anchored_at_the_params_folder(tmp_path):
    params = load_params(write_params(tmp_path))
    assert params.paths.prepared == str(tmp_path / "data" / "prepared")
    assert params.data.incoming.path == str(tmp_path / "data" / "default" / "incoming.csv")
    assert params.uses_default_data()
    assert isinstance(params, Params)


@pytest.mark.parametrize("key,value,message", [
    ("train.epochs", float("inf"), "key 'train.epochs' = inf: Input should be a finite number"),
    ("train.learning_rate", float("nan"), "key 'train.learning_rate' = nan: Input should be a finite number"),
    ("model.max_seq_len", True, "key 'model.max_seq_len' = True: Value error, expected a number, not true"),
    ("shift.sample_size", False, "key 'shift.sample_size' = False: Value error, expected a number, not false"),
    ("paths.registry", "/tmp/a-registry-elsewhere", "paths.registry = '/tmp/a-registry-elsewhere': outside the project"),
    ("paths.metrics", "../metrics.json", "paths.metrics = '../metrics.json': outside the project folder"),
])
def test_values_that_used_to_slip_through_are_rejected_up_front(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as err:
        load_params(write_params(tmp_path, {key: value}))
    assert message in str(err.value)
    assert not (tmp_path / "reports").exists() and not (tmp_path / "models").exists()


def test_yaml_infinity_from_an_override_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="'train.epochs' = inf"):
        load_params(write_params(tmp_path), {"train.epochs": yaml.safe_load(".inf")})


def test_every_knob_is_described_once_in_params_yaml():
    """params.yaml's comments are the one description of each knob: every field of the config is there."""
    from pydantic import BaseModel

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def missing(model: type[BaseModel], node: dict, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            if key not in node:
                out.append(prefix + key)
                continue
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(node[key], dict):
                out += missing(sub, node[key], f"{prefix}{key}.")
        return out

    assert missing(Params, raw, "") == []
    config_source = (ROOT / "driftfit" / "config.py").read_text()
    assert "description=" not in config_source  # no second description to drift apart


def test_every_contract_rule_is_described_once_in_contract_yaml():
    """data/contract.yaml's comments are the one description of each contract rule."""
    from pydantic import BaseModel

    from driftfit.data.contract import Contract

    raw = yaml.safe_load((ROOT / "data" / "contract.yaml").read_text())

    def missing(model: type[BaseModel], node: dict, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            if name not in node:
                out.append(prefix + name)
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += missing(field.annotation, node[name], f"{prefix}{name}.")
        return out

    assert missing(Contract, raw, "") == []
    assert "description=" not in (ROOT / "driftfit" / "data" / "contract.py").read_text()
