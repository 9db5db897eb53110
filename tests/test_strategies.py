"""The strategy table: one entry per strategy, and everything else derives from it."""

import json
import re
import subprocess
import sys

import pytest

from driftfit import strategies
from driftfit.config import STRATEGIES, TrainConfig, parse_params
from driftfit.errors import ConfigError
from tests.conftest import ROOT


def test_every_entry_is_complete():
    """The table says what each strategy is; each modality's BUILD says how it builds the ones it runs."""
    from driftfit import modalities
    from driftfit.modalities.image.strategies import BUILD as IMAGE
    from driftfit.modalities.text.strategies import BUILD as TEXT, freeze_encoder

    assert STRATEGIES == tuple(strategies.STRATEGIES)
    assert set(TEXT) == set(STRATEGIES)  # the text modality builds every strategy of the table
    for s in strategies.STRATEGIES.values():
        assert s.learning_rate in TrainConfig.model_fields and s.learning_rate.endswith("learning_rate"), s.name
        assert s.summary and s.name in strategies.names_for("text"), s.name  # text runs every strategy
        assert s.trains <= s.makes_model, s.name  # a strategy that trains writes a model
        build = TEXT.get(s.name)
        assert not (s.merges and (build is None or build.peft is None)), s.name  # only peft weights merge
        if s.fit_on_features:  # the head is fitted on fixed features: nothing else may train or change them
            assert s.trains and build.prepare is freeze_encoder and build.peft is None and build.fit is None, s.name
            assert not (s.fresh_weights or s.merges or s.layer_decay), s.name
        if s.stand_in is not None:
            assert s.stand_in in STRATEGIES and s.stand_in != s.name, s.name
    assert [s.name for s in strategies.STRATEGIES.values() if s.fit_on_features] == ["head"]
    assert set(strategies.names_for("image")) == set(IMAGE) == set(modalities.get("image").strategies)
    for name in STRATEGIES:  # an image run of any strategy resolves to one the image modality builds
        assert strategies.for_modality(name, "image") in IMAGE, name
    with pytest.raises(ConfigError, match="unknown strategy 'bitfit'; known: skip, zero_shot, head"):
        strategies.spec("bitfit")  # never a silent fallback


def test_the_readme_lists_exactly_the_table():
    """The README's strategy table is the table, row for row (params.yaml's strategy.force points at --help)."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (.+) \|$", readme, re.M)
    assert rows == [(s.name, s.summary) for s in strategies.STRATEGIES.values()]


def test_a_strategy_outside_the_table_is_refused_by_params():
    with pytest.raises(ConfigError, match="strategy.force"):
        parse_params({"data": {"incoming": {"path": "x.csv"}}, "strategy": {"force": "bitfit"}})


# A toy strategy, BitFit (train only the biases and the head; Ben Zaken et al. 2022), added as one table entry
# before anything else imports the table: it must then be a valid param, in the CLI help and the flow's
# drop-down, and train and evaluate like the others.
TOY = r"""
import json, sys
import pandas as pd
from pathlib import Path
from driftfit import strategies

def biases_only(model, cfg):
    for name, p in model.encoder.named_parameters():
        p.requires_grad = name.endswith(".bias")

strategies.register_strategy(strategies.StrategySpec("bitfit", "only the encoder's biases"))
from driftfit.modalities.text.strategies import BUILD, TextBuild
BUILD["bitfit"] = TextBuild(prepare=biases_only)

from driftfit import cli, modalities
from driftfit.evaluation.scoring import read_test_splits, score_on_tests
from driftfit.config import load_params
from driftfit.modalities.text.recipe import train_model
from flows.retrain import retrain

params = load_params(sys.argv[1], {"strategy.force": "bitfit"})
folder = Path(params.paths.prepared)
train, val = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "val.parquet")
out = Path(sys.argv[2])
log = train_model(train, val, "bitfit", params, out)
schema = retrain.parameters.model_dump()["properties"]["strategy"]
print(json.dumps({
    "force": params.strategy.force,
    "help": "bitfit: only the encoder's biases" in " ".join(cli.build_parser()._subparsers._group_actions[0].choices[
        "select-strategy"].format_help().split()),  # however argparse wraps it
    "flow_choices": json.dumps(schema),
    "log": {k: log[k] for k in ("strategy", "steps", "trainable_params", "total_params")},
    "scores": score_on_tests(params, modalities.get("text").classifier(params, out),
                             read_test_splits(params, modalities.get("text"))),
}))
"""


def test_adding_a_strategy_takes_one_table_entry(prepared_params, tmp_path):
    out = subprocess.run([sys.executable, "-c", TOY, str(tmp_path / "params.yaml"), str(tmp_path / "bitfit")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["force"] == "bitfit" and result["help"]
    assert '"bitfit"' in result["flow_choices"]
    log = result["log"]
    assert log["strategy"] == "bitfit" and log["steps"] == 2
    assert 0 < log["trainable_params"] < 0.01 * log["total_params"]  # biases + head: a sliver of the model
    assert set(result["scores"]) == {"test", "reference_test"}
    assert 0 <= result["scores"]["test"]["accuracy"] <= 1


def test_ensemble_averages_the_trained_weights_with_the_champion(prepared_params, tmp_path):
    """ensemble = full fine-tuning, then each weight halfway to the champion's (share 0.5); share 0 is plain
    full fine-tuning, byte for byte; without a champion, or with one it cannot average with, it says why."""
    from pathlib import Path

    import pandas as pd
    import torch

    from driftfit.modalities.text.model import load_classifier
    from driftfit.modalities.text.recipe import train_model

    params = prepared_params
    folder = Path(params.paths.prepared)
    train, val = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "val.parquet")
    champion = tmp_path / "champion"
    train_model(train.iloc[: len(train) // 2], val, "head", params, champion)  # champion: knows fewer rows
    full, ens = tmp_path / "full", tmp_path / "ensemble"
    train_model(train, val, "full", params, full)
    log = train_model(train, val, "ensemble", params, ens, champion_dir=champion)
    assert log["averaging"]["averaged"] and log["averaging"]["champion_share"] == 0.5

    (f, _, labels), (e, _, _), (c, _, champ_labels) = (load_classifier(d) for d in (full, ens, champion))
    fe, ee, ce = f.encoder.state_dict(), e.encoder.state_dict(), c.encoder.state_dict()
    name = next(k for k in fe if "attention" in k and k.endswith("weight"))
    assert not torch.allclose(fe[name], ce[name])                        # fine-tuning moved it
    assert torch.allclose(ee[name], (fe[name] + ce[name]) / 2, atol=1e-6)  # the ensemble sits halfway
    row = labels.index(champ_labels[0])
    assert torch.allclose(e.head.weight[row], (f.head.weight[row] + c.head.weight[0]) / 2, atol=1e-6)

    alone = train_model(train, val, "ensemble", params, tmp_path / "alone")
    assert not alone["averaging"]["averaged"] and "no champion" in alone["averaging"]["why"]
    plain = params.model_copy(update={"train": params.train.model_copy(update={"ensemble_champion_share": 0.0})})
    train_model(train, val, "ensemble", plain, tmp_path / "share0", champion_dir=champion)
    z = load_classifier(tmp_path / "share0")[0].encoder.state_dict()
    assert all(torch.equal(z[k], fe[k]) for k in fe)
