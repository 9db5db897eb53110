"""Batch scoring (`driftfit predict`), the Python API and the README's snippet, `driftfit registry list` and
`driftfit summary`, on a registry of real trained heads (tests/serving_registry.py).

Scoring must write every input row unchanged, with the label and probability the version's own Python API gives
(compared where the top label leads by more than 1e-3, so a float tie cannot decide a test), whatever the chunk
size; a bad input stops with one line naming the file, the line or row and the column, and writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftfit import cli
from driftfit.state import registry
from driftfit.errors import DataError, DriftfitError
from driftfit.data.splits import read_split
from driftfit.serving import load, usage
from driftfit.serving import predict
from tests.conftest import ROOT
from tests.serving_registry import clear_margin, offline, shared_text_project

ATOL = 1e-5  # the same model on the same texts: only float summation order differs (batch composition, padding)


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir):
    return shared_text_project(tmp_path_factory, default_data_dir, "serving-predict")


@pytest.fixture(scope="module")
def table(project) -> pd.DataFrame:
    """The version's test split with an id, 40 rows (the same texts cycled), as a user's file would be."""
    test = read_split(project.paths.prepared, "test", required=True)
    rows = pd.concat([test] * (40 // len(test) + 1), ignore_index=True).iloc[:40]
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "text": rows["text"], "label": rows["label"]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = predict.FORMATS[path.suffix]
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({**row, "meta": {"n": i}}) + "\n"
                                for i, row in enumerate(frame.to_dict("records"))), encoding="utf-8")
    else:
        frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    fmt = predict.FORMATS[path.suffix]
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "jsonl":
        return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype={"id": str, "text": str, "label": str})


def run_cli(project, *args: str) -> int:
    return cli.main([*args, "--params", str(Path(project.paths.registry).parents[1] / "params.yaml")])


def assert_scored(out: pd.DataFrame, source: pd.DataFrame, probs: np.ndarray, labels: list[str], version: str):
    assert len(out) == len(source)
    for col in source.columns:
        assert out[col].tolist() == source[col].tolist(), col  # every input row, in order, unchanged
    assert np.allclose(out["predicted_probability"], probs.max(1), atol=ATOL)
    sure = clear_margin(probs)
    assert sure.sum() > len(out) // 2  # the comparison below is not vacuous
    assert (out["predicted_label"][sure] == np.array(labels)[probs.argmax(1)][sure]).all()
    assert set(out["model_version"]) == {version}


# ---- formats, chunks, versions ---------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_predict_scores_every_row_of_each_format(project, table, tmp_path, ext):
    source = write(table, tmp_path / f"week{ext}")
    out = tmp_path / f"scored{ext}"
    assert run_cli(project, "predict", "--input", str(source), "--out", str(out), "-S", "predict.chunk_rows=7") == 0
    champion = load(project.paths.registry, device="cpu")
    scored = read(out)
    assert_scored(scored, table, offline(project, "v1", list(table["text"])), champion.labels, "v1")
    if ext == ".jsonl":  # JSON objects come back whole, nested values included
        assert scored["meta"].tolist() == [{"n": i} for i in range(len(table))]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_chunks_bound_each_pass_and_change_no_result(project, table, tmp_path):
    """Memory stays flat because no pass sees more than chunk_rows rows; the chunking changes nothing."""
    champion = load(project.paths.registry, device="cpu")
    passes: list[int] = []

    class Recorded:  # the real champion, its calls counted
        version, labels, modality, backend, parts = (champion.version, champion.labels, champion.modality,
                                                    champion.backend, champion.parts)

        def predict_proba(self, items):
            passes.append(len(items))
            return champion.predict_proba(items)

    source = write(table, tmp_path / "week.csv")
    predict.predict_file(Recorded(), predict.open_source(source, "text", False), tmp_path / "small.csv", chunk_rows=6)
    assert passes == [6] * 6 + [4]
    predict.predict_file(champion, predict.open_source(source, "text", False), tmp_path / "whole.csv", chunk_rows=1000)
    small, whole = read(tmp_path / "small.csv"), read(tmp_path / "whole.csv")
    assert np.allclose(small["predicted_probability"], whole["predicted_probability"], atol=ATOL)
    sure = clear_margin(offline(project, "v1", list(table["text"])))
    assert (small["predicted_label"] == whole["predicted_label"])[sure].all()
    assert small[["id", "text", "label", "model_version"]].equals(whole[["id", "text", "label", "model_version"]])


def test_another_version_and_every_probability(project, table, tmp_path):
    source = write(table, tmp_path / "week.parquet")
    out = tmp_path / "scored.csv"  # the output's format follows its own extension
    assert run_cli(project, "predict", "--input", str(source), "--out", str(out), "--version", "v2",
                   "--all-probabilities") == 0
    scored, labels = read(out), load(project.paths.registry, "v2", device="cpu").labels
    assert list(scored.columns) == ["id", "text", "label", "predicted_label", "predicted_probability",
                                    *[f"p_{label}" for label in labels], "model_version"]
    probs = offline(project, "v2", list(table["text"]))
    assert np.allclose(scored[[f"p_{label}" for label in labels]].to_numpy(), probs, atol=ATOL)
    assert_scored(scored, table, probs, labels, "v2")


def test_default_output_is_beside_the_input(project, table, tmp_path):
    source = write(table.iloc[:5], tmp_path / "week.tsv")
    result = predict.run(project, source, progress=False)
    assert result["output"] == str(tmp_path / "week.predictions.tsv") and result["rows"] == 5
    assert sum(result["labels"].values()) == 5 and result["version"] == "v1"


# ---- bad input: one line naming file, place and column; nothing written ------------------------------

def _lines(n: int, bad_line: int, bad: str) -> str:
    """A CSV with a header and n rows, row on `bad_line` (1-based file line) replaced by `bad`."""
    rows = [f"r{i},text number {i}" for i in range(2, n + 2)]
    rows[bad_line - 2] = bad
    return "id,text\n" + "\n".join(rows) + "\n"


BAD = [
    ("fields.csv", _lines(40, 30, "r30,a,b"), "line 30 has 3 fields, expected 2"),
    ("empty.csv", _lines(40, 25, "r25,"), "line 25, column 'text': an empty text"),
    ("quote.csv", _lines(40, 27, 'r27,"never closed'), "the quote opened on line 27 is never closed"),
    ("nul.csv", _lines(40, 33, "r33,a\x00b"), "line 33, column 'text': a NUL byte"),
    ("column.csv", "id,body\n1,hello\n", "no column 'text'; columns found: ['id', 'body']"),
    ("twice.csv", "id,text,text\n1,a,b\n", "line 1: column 'text' appears 2 times"),
    ("clash.csv", "text,predicted_label\nhello,x\n", "already has column(s) ['predicted_label']"),
    ("object.jsonl", '{"text": "a"}\n{"text": "b"}\n[1, 2]\n', "line 3: not a JSON object"),
    ("null.jsonl", '{"text": "a"}\n\n{"text": "b"}\n{"text": null}\n', "line 4, column 'text': no value (null)"),
    ("number.jsonl", '{"text": "a"}\n{"text": 5}\n', "line 2, column 'text': 5 is int"),
    ("broken.jsonl", '{"text": "a"}\n{"text": "b"\n', "line 2: not valid JSON"),
    ("nokey.jsonl", '{"text": "a"}\n{"body": "b"}\n', "line 2: no key 'text'"),
    ("notes.txt", "hello\n", "unknown extension '.txt'"),
    ("nothing.csv", "", "is empty"),
]


@pytest.mark.parametrize("name,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_its_place_and_writes_nothing(project, tmp_path, name, content, message):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    out = tmp_path / "scored.csv"
    out.write_text("last week's predictions\n")  # an earlier output stays as it was
    with pytest.raises(DataError, match=r"data file '.*" + name.replace(".", r"\.")) as err:
        predict.run(project, source, out, progress=False)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert out.read_text() == "last week's predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "scored.csv"])  # no temp file left


def test_bad_bytes_and_parquet_values(project, tmp_path):
    source = tmp_path / "latin1.csv"
    source.write_bytes(_lines(40, 28, "r28,caf\xe9").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv', line 28: bytes that are not UTF-8"):
        predict.run(project, source, tmp_path / "out.csv", progress=False)
    pd.DataFrame({"text": ["a", "b", "c", None]}).to_parquet(tmp_path / "gap.parquet")
    with pytest.raises(DataError, match=r"gap\.parquet', row 3, column 'text': no value \(null\)"):
        predict.run(project, tmp_path / "gap.parquet", tmp_path / "out.csv", progress=False)
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "ints.parquet")
    with pytest.raises(DataError, match=r"ints\.parquet', column 'text': of type int64, not strings"):
        predict.run(project, tmp_path / "ints.parquet", tmp_path / "out.csv", progress=False)
    with pytest.raises(DataError, match="is the input file"):
        predict.run(project, tmp_path / "gap.parquet", tmp_path / "gap.parquet", progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_cli_error_is_one_line_and_exit_status_2(project, tmp_path, capfd):
    source = tmp_path / "week.csv"
    source.write_text(_lines(10, 5, "r5,a,b"))
    assert run_cli(project, "predict", "--input", str(source), "--out", str(tmp_path / "o.csv")) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"driftfit predict: error: data file '{source}': not a CSV table (line 5 has 3 fields")
    assert run_cli(project, "predict", "--input", str(source), "--version", "v9") == 2
    assert "no version 'v9' (versions: v1, v2)" in capfd.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    import torch

    if not torch.cuda.is_available():  # the key the value came from, not train.device
        good = tmp_path / "good.csv"
        good.write_text("text\nhello\n")
        assert run_cli(project, "predict", "--input", str(good), "--out", str(tmp_path / "o.csv"),
                       "-S", "predict.device=cuda") == 2
        assert "predict.device = 'cuda' but no CUDA device is visible" in capfd.readouterr().err
        with pytest.raises(DriftfitError, match=r"^device = 'cuda' but no CUDA device"):
            load(project.paths.registry, device="cuda")
        assert not (tmp_path / "o.csv").exists()


def test_a_damaged_version_is_never_loaded(project, tmp_path):
    """A version whose files no longer match the digest recorded at promotion is refused, not scored."""
    copy = tmp_path / "registry"
    shutil.copytree(project.paths.registry, copy)
    head = copy / "v1" / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last weight
    head.write_bytes(bytes(data))
    with pytest.raises(DriftfitError, match="v1's model files do not match"):
        load(copy, device="cpu")
    assert load(copy, "v2", device="cpu").version == "v2"  # its neighbours are still served


# ---- the Python API, as the README and the model cards show it ---------------------------------------

def test_readme_snippet_runs_as_written(project):
    snippet = usage()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```python\n{snippet}\n```" in readme  # the README shows exactly what this test runs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=Path(project.paths.registry).parents[1], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    version, rows = done.stdout.strip().split(" ", 1)
    champion = load(project.paths.registry, device="cpu")
    assert version == "v1" and rows.startswith("[{'label': '") and rows.count("'probability': ") == 2
    assert usage("v2").replace('version="v2"', "") != snippet and 'load("models/registry", version="v2")' in usage("v2")
    got = champion.predict(["where can I eat pizza?"], all_probabilities=True)[0]
    assert got["label"] in champion.labels and abs(sum(got["probabilities"].values()) - 1) < 1e-5


def test_python_api_refuses_what_it_cannot_score(project):
    champion = load(project.paths.registry, device="cpu")
    with pytest.raises(DriftfitError, match="input 1 is int; a text champion reads strings"):
        champion.predict(["fine", 3])
    assert champion.predict([]) == [] and champion.predict_proba([]).shape == (0, len(champion.labels))
    with pytest.raises(DriftfitError, match="backend = 'tf'"):
        load(project.paths.registry, backend="tf")


# ---- what people read: the registry table, the last run's line ---------------------------------------

def test_registry_list_is_a_table_and_json_for_scripts(project, capsys):
    assert run_cli(project, "registry", "list") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["version", "promoted", "(UTC)", "strategy", "macro-F1", "on", "its", "batch", "serves"]
    rows = registry.list_versions(project.paths.registry)
    for line, row in zip(lines[1:], rows):
        assert line.split()[0] == row["version"] and f"{row['macro_f1_new']:.3f}" in line and "head" in line
    assert "<- serving" in lines[1] and "served before" in lines[2] and len(lines) == 3
    assert run_cli(project, "registry", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(rows, default=str))


def test_summary_is_the_last_run_in_one_line(project, capsys):
    assert run_cli(project, "summary") == 0
    line = capsys.readouterr().out.strip()
    verdict = json.loads(Path(project.paths.promotion).read_text())
    metrics = json.loads(Path(project.paths.metrics).read_text())
    assert "\n" not in line and line.startswith("driftfit: chose head;")
    assert f"new model macro-F1 {metrics['candidate']['test']['macro_f1']:.3f} on the new test split" in line
    assert "PROMOTED as v1" in line and verdict["reason"].split(": ", 1)[1][:40] in line


def test_the_flow_reads_no_image_outside_the_data_roots(tmp_path):
    """A path given from Prefect's UI must stay in data.roots, and so must every image its folder or manifest
    leads to (a link, or an absolute path in a manifest); nothing outside is opened."""
    roots = tmp_path / "data"
    (roots / "images").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not an image, and not for you")
    (roots / "images" / "a.png").symlink_to(secret)
    source = predict.open_source(roots / "images", "path", image=True)
    source.roots = [str(roots)]
    with pytest.raises(DataError, match="a.png': links outside the data roots"):
        next(source.chunks(10, image=True))
    manifest = roots / "manifest.csv"
    manifest.write_text(f"path\n{secret}\n")
    source = predict.open_source(manifest, "path", image=True)
    source.roots = [str(roots)]
    with pytest.raises(DataError, match=r"manifest\.csv', line 2, column 'path': an image outside the data roots"):
        next(source.chunks(10, image=True))
