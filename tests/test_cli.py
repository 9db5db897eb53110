"""The CLI door: one clear line on bad input, a non-zero exit, nothing half-written."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_params


def driftfit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "driftfit.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_bad_params_type_fails_before_work(tmp_path):
    write_params(tmp_path, {"train.epochs": "lots"})
    out = driftfit(tmp_path, "prepare")
    assert out.returncode == 2
    assert "train.epochs" in out.stderr and "'lots'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "data").exists()


def test_missing_label_column_keeps_champion_and_writes_nothing(tmp_path, default_data_dir):
    shutil.copytree(default_data_dir, tmp_path / "data" / "default")
    registry = tmp_path / "models" / "registry"
    (registry / "v1").mkdir(parents=True)
    (registry / "champion.json").write_text('{"version": "v1"}')
    bad = tmp_path / "batch.csv"
    bad.write_text("text,category\nhello,a\n")
    write_params(tmp_path, {"data.incoming.path": str(bad)})
    out = driftfit(tmp_path, "run")
    assert out.returncode == 2
    assert f"data file '{bad}': no label column 'label'" in out.stderr
    assert not (tmp_path / "data" / "prepared").exists()
    assert (registry / "champion.json").read_text() == '{"version": "v1"}'


def test_nan_texts_stop_before_the_splits_are_written(tmp_path, default_data_dir):
    shutil.copytree(default_data_dir, tmp_path / "data" / "default")
    incoming = (tmp_path / "data" / "default" / "incoming.csv").read_text().splitlines()
    incoming[1] = "," + incoming[1].rsplit(",", 1)[1]  # first data row: empty text
    (tmp_path / "data" / "default" / "incoming.csv").write_text("\n".join(incoming) + "\n")
    write_params(tmp_path)
    # The contract is checked on the splits in memory, before prepare writes them.
    out = driftfit(tmp_path, "prepare")
    assert out.returncode == 2 and "line 2) = ''" in out.stderr, out.stderr
    assert list((tmp_path / "reports" / "rejected").glob("*/summary.json"))  # the report, outside every stage's outputs
    assert not (tmp_path / "reports" / "validation").exists()
    assert not (tmp_path / "data" / "prepared").exists() and not (tmp_path / "data" / "augmented").exists()


def test_model_path_that_does_not_exist(tmp_path, default_data_dir):
    shutil.copytree(default_data_dir, tmp_path / "data" / "default")
    write_params(tmp_path, {"model.pretrained": "./no/such/model"})
    out = driftfit(tmp_path, "prepare")  # fails at parse time, before any step does work
    assert out.returncode == 2 and "model.pretrained = './no/such/model'" in out.stderr
    assert not (tmp_path / "data" / "prepared").exists()


def test_a_model_that_ships_code_is_refused_in_one_line(prepared_params, tmp_path):
    """A local model whose config asks for its own Python code: one line, and the code never runs."""
    model = tmp_path / "custom_model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "driftfit_custom", "auto_map": {'
                                       '"AutoConfig": "configuration_custom.CustomConfig", '
                                       '"AutoModel": "modeling_custom.CustomModel"}}')
    (model / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["tokenization_custom.T", null]}}')
    ran = tmp_path / "remote-code-ran"
    for name in ("configuration_custom.py", "modeling_custom.py", "tokenization_custom.py"):
        (model / name).write_text(f"open({str(ran)!r}, 'w').write('ran')\n")
    write_params(tmp_path, {"model.pretrained": "./custom_model"})
    out = driftfit(tmp_path, "measure-shift")
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if ": error: " in line]
    assert errors == [f"driftfit measure-shift: error: model.pretrained = '{model}': the model ships its own "
                      "Python code, and model.trust_remote_code is false, so driftfit will not run it; read that "
                      "code, then set model.trust_remote_code: true only if you trust it"], out.stderr
    assert "Traceback" not in out.stderr and not ran.exists()
