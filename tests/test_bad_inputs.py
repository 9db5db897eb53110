"""Bad input, everywhere data or config enters: the corpus in tests/data/bad/, one case each.

Every case runs the real CLI (`driftfit run`) on the shrunk config in a project that already has a
champion, and must give: exit status 2, one error line naming the file/row/column or key and what was
expected, nothing written to data/prepared/, models/candidate/ or reports/validation/ (a rejected batch's
report goes under reports/rejected/), and a byte-identical champion. A few cases are warnings, not errors:
they must show in summary.json and in the validate step's log, and the run goes on.
Most cases run `cli.main` in this process (GX and torch imported once: the file stays within about two
minutes); a few run it as a real subprocess. The 1 MB text is generated into tmp_path at test time.
"""

from __future__ import annotations

from contextlib import chdir
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftfit import cli
from driftfit.config import SourceConfig
from driftfit.modalities.text.loaders import load_table
from tests.conftest import write_params

BAD = Path(__file__).parent / "data" / "bad"
GOOD = BAD / "good_incoming.csv"
# A champion for sure (no baseline gate), quickly (head, no latency timing, a small shift test).
CHAMPION_RUN = {"promote.beat_baseline": False, "strategy.force": "head", "evaluate.latency_examples": 0,
                "shift.permutations": 10, "shift.sample_size": 32}


def flat(tree: dict, prefix: str = "") -> dict:
    """A YAML fragment as dotted overrides: {'train': {'epochs': 1}} -> {'train.epochs': 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fragment(name: str) -> dict:
    return flat(yaml.safe_load((BAD / name).read_text()))


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the prepared split, the candidate, the registry and the last validation report
    (the DVC validate stage's output), with its sha256."""
    files = {}
    for folder in ("data/prepared", "data/memory", "models/candidate", "models/registry", "reports/validation"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def stray_temp_folders(root: Path) -> list[str]:
    return [str(p) for folder in ("data", "models", "reports") if (root / folder).is_dir()
            for p in (root / folder).iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir):
    """A project whose champion came from one shrunk `driftfit run`."""
    root = tmp_path_factory.mktemp("bad_inputs")
    shutil.copytree(default_data_dir, root / "data" / "default")
    write_params(root, CHAMPION_RUN)
    assert cli.main(["run", "--params", str(root / "params.yaml")]) == 0
    assert (root / "models" / "registry" / "champion.json").is_file()
    before = snapshot(root)
    assert any(k.startswith("data/prepared/") for k in before)
    assert any(k.startswith("models/registry/v") for k in before)
    assert any(k.startswith("data/memory/batches/") for k in before)  # the memory is in the snapshot too
    assert any(k.startswith("reports/validation/") for k in before)
    return root


def run_bad(project: Path, overrides: dict, capsys) -> tuple[int, str]:
    """`driftfit run` on the project with overrides; the exit status and the error line."""
    write_params(project, {**CHAMPION_RUN, **overrides})
    capsys.readouterr()
    status = cli.main(["run", "--params", str(project / "params.yaml")])
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1, errors
    return status, errors[0]


# (case, overrides, fragments the one error line must hold). Paths are the corpus files.
CASES = [
    ("empty_file", {"data.incoming.path": str(BAD / "empty.csv")}, ["empty.csv' is empty", "expected a header"]),
    ("header_only", {"data.incoming.path": str(BAD / "header_only.csv")},
     ["header_only.csv' has a header but no data rows"]),
    ("wrong_delimiter", {"data.incoming.path": str(BAD / "wrong_delimiter.csv")},
     ["wrong_delimiter.csv': no text column 'text'", "['text;label']", "is the delimiter right"]),
    ("missing_text_column", {"data.incoming.path": str(BAD / "missing_text_column.csv")},
     ["missing_text_column.csv': no text column 'text'", "columns found: ['sentence', 'label']"]),
    ("missing_label_column", {"data.incoming.path": str(BAD / "missing_label_column.csv")},
     ["missing_label_column.csv': no label column 'label'", "columns found: ['text', 'category']"]),
    ("null_text", {"data.incoming.path": str(BAD / "null_text.jsonl")},
     ["null_text.jsonl' line 13) = null (0 characters)", "expected between 1 and 5000 characters", "text.min_chars"]),
    ("empty_text", {"data.incoming.path": str(BAD / "empty_text.csv")},
     ["empty_text.csv' line 6) = '' (0 characters)", "column 'text'", "expected between 1 and 5000"]),
    ("whitespace_text", {"data.incoming.path": str(BAD / "whitespace_text.csv")},
     ["whitespace_text.csv' line 9) = '   \\t  ' (0 characters)", "expected between 1 and 5000"]),
    ("label_unseen_in_training", {"data.incoming.path": str(GOOD),
                                  "data.incoming.test_path": str(BAD / "unseen_label_test.csv")},
     ["column 'label'", "unseen_label_test.csv' line 2) = 'gift_cards'", "(labels seen in train)", "labels.allowed"]),
    ("single_class", {"data.incoming.path": str(BAD / "single_class.csv")},
     ["column 'label': observed 1", "expected at least 2 distinct labels in train", "labels.min_classes"]),
    ("non_utf8_bytes", {"data.incoming.path": str(BAD / "non_utf8.csv")},
     ["non_utf8.csv', line 4: bytes that are not UTF-8", "expected UTF-8 text"]),
    ("mixed_label_types", {"data.incoming.path": str(BAD / "mixed_label_types.jsonl")},
     ["mixed_label_types.jsonl', column 'label': labels of mixed types ['int', 'str']", "line/row 10: 3",
      "expected one type"]),
    ("same_rows_in_train_and_test", {"data.incoming.path": str(GOOD),
                                     "data.incoming.test_path": str(BAD / "leaked_test.csv")},
     ["test: column 'text' shares", "expected no text in both", "contract leakage"]),
    ("missing_file", {"data.incoming.path": str(BAD / "does_not_exist.csv")}, ["does_not_exist.csv' does not exist"]),
    ("directory_for_a_file", {"data.incoming.path": str(BAD / "directory.csv")},
     ["directory.csv' is a directory; expected a file"]),
    ("params_unknown_section", fragment("params_unknown_section.yaml"), ["unknown key 'trian'"]),
    ("params_mistyped_key", fragment("params_mistyped_key.yaml"), ["unknown key 'train.epocs'"]),
    ("params_zero_size", fragment("params_zero_batch_size.yaml"),
     ["key 'train.batch_size' = 0", "greater than 0"]),
    ("params_negative_size", fragment("params_negative_fraction.yaml"),
     ["key 'split.val_fraction' = -0.1", "greater than 0"]),
    ("infinite_epochs", fragment("params_epochs_inf.yaml"),
     ["key 'train.epochs' = inf", "Input should be a finite number"]),
    ("true_as_a_length", fragment("params_max_seq_len_true.yaml"),
     ["key 'model.max_seq_len' = True", "expected a number, not true"]),
    ("registry_outside_the_project", fragment("params_registry_outside.yaml"),
     ["paths.registry = '/tmp/driftfit-registry-elsewhere': outside the project"]),
    ("model_path_that_does_not_exist", fragment("params_missing_model.yaml"),
     ["model.pretrained = './no/such/model'", "expected a directory with config.json"]),
    ("contract_mistyped_key", {"validate.contract": str(BAD / "contract_mistyped_key.yaml")},
     ["contract_mistyped_key.yaml: unknown key 'text.max_char'"]),
    ("contract_negative_size", {"validate.contract": str(BAD / "contract_negative_rows.yaml")},
     ["contract_negative_rows.yaml: key 'labels.min_rows_per_class' = -1", "greater than or equal to 1"]),
    ("number_as_text", {"data.incoming.path": str(BAD / "number_as_text.jsonl")},
     ["number_as_text.jsonl', line 7, column 'text': 12345 is an integer; expected strings"]),
    ("labels_differing_in_case", {"data.incoming.path": str(BAD / "label_case.csv")},
     ["label_case.csv', column 'label': labels 'BILLING', 'Billing ', 'billing' differ only in case/whitespace",
      "'Billing ' at line 3", "expected one spelling per label"]),
    ("labels_1_and_1.0", {"data.incoming.path": str(BAD / "label_number_spellings.csv")},
     ["labels '1', '1.0' differ only in number format", "'1.0' at line 6", "expected one spelling per label"]),
    ("float_label", {"data.incoming.path": str(BAD / "float_label.jsonl")},
     ["float_label.jsonl', line 8, column 'label': 1.0 is a float; expected strings or integers"]),
    ("nan_as_label", {"data.incoming.path": str(BAD / "nan_labels.csv")},
     ["nan_labels.csv', column 'label': 4 row(s) without a label (first at line/row [6, 13, 24, 29]",
      "expected a label in every row"]),
    ("duplicate_csv_column", {"data.incoming.path": str(BAD / "duplicate_column.csv")},
     ["duplicate_column.csv', line 1: column 'text' appears 2 times in the header; expected each column once"]),
    ("duplicate_json_key", {"data.incoming.path": str(BAD / "duplicate_key.jsonl")},
     ["duplicate_key.jsonl', line 10: key 'label' appears more than once", "expected each column once"]),
    ("duplicate_parquet_column", {"data.incoming.path": str(BAD / "duplicate_column.parquet")},
     ["duplicate_column.parquet': column 'text' appears 2 times; expected each column once"]),
    ("nul_in_text", {"data.incoming.path": str(BAD / "nul_in_text.csv")},
     ["column 'text'", "nul_in_text.csv' line 13) = 'My parcel has\\x00 not arrived", "expected texts without NUL",
      "contract text.nul", "details: "]),
    ("unbalanced_quote", {"data.incoming.path": str(BAD / "unbalanced_quote.csv")},
     ["unbalanced_quote.csv', line 4: column 'text' runs over lines 4-6", "ending in ',billing'",
      "an unbalanced quote", "expected one row per line"]),
    ("bytes_in_parquet", {"data.incoming.path": str(BAD / "binary_text.parquet")},
     ["binary_text.parquet', row 0, column 'text': bytes, not a string", "decode the bytes to UTF-8 first"]),
    ("broken_json_line", {"data.incoming.path": str(BAD / "broken_line.jsonl")},
     ["broken_line.jsonl', line 6: not valid JSON", "expected one JSON object per line"]),
    ("not_a_table", {"data.incoming.path": str(BAD / "not_a_table.csv")},
     ["not_a_table.csv': not a CSV table with a text column 'text'", "expected a header naming the columns"]),
]


@pytest.mark.parametrize("overrides,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(project, capsys, overrides, fragments):
    before = snapshot(project)
    status, line = run_bad(project, overrides, capsys)
    assert status == 2
    assert line.startswith("driftfit run: error: ") and "Traceback" not in line
    for part in fragments:
        assert part in line, f"{part!r} not in {line!r}"
    assert snapshot(project) == before  # no split, no candidate, no validation report written; the champion untouched
    assert stray_temp_folders(project) == []
    if "details: " in line:  # a contract error: the report is filed under reports/rejected/, one folder per batch
        report = Path(re.search(r"details: (\S+summary\.json)", line)[1])
        assert report.is_relative_to(project / "reports" / "rejected") and report.is_file()
        assert json.loads(report.read_text())["success"] is False


def test_the_reference_file_as_the_incoming_file_is_leakage(tmp_path, capsys):
    """Before a first champion the reference is `data.reference`: the same file as the incoming batch puts
    test rows into reference_train, which training replays. (With a champion the reference is its memory:
    test_a_batch_overlapping_the_champions_memory_is_leakage.)"""
    write_params(tmp_path, {"data.reference": {"path": str(GOOD), "text": "text", "label": "label"},
                            "data.incoming.path": str(GOOD)})
    capsys.readouterr()
    assert cli.main(["prepare", "--params", str(tmp_path / "params.yaml")]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    for part in ("column 'text' shares", "text(s) with reference_train", "expected no text in both reference_train and"):
        assert part in line, f"{part!r} not in {line!r}"
    assert not (tmp_path / "data" / "prepared").exists() and not (tmp_path / "reports" / "validation").exists()


def test_a_file_that_is_no_table_is_not_quoted(project, capsys):
    """A file that is not a table of its format could be anything (here a password file): never echo it."""
    status, line = run_bad(project, {"data.incoming.path": str(BAD / "not_a_table.csv")}, capsys)
    assert status == 2
    content = (BAD / "not_a_table.csv").read_text()
    assert not {word for word in re.split(r"[:/\n]", content) if len(word) > 2} & set(re.split(r"\W+", line))


# (case, file, where prepare's warning points in the file, fragments of the one warning): the run goes on;
# prepare logs the warning with the file line, the validate step logs it and puts it in summary.json.
WARNING_CASES = [
    ("numeric_text", "numeric_text.csv", "numeric_text.csv' line 5) = '12345'",
     ["column 'text'", "= '12345'", "expected texts that are words, not only a number", "text.numeric"]),
    ("control_character", "control_char.csv", "control_char.csv' line 4) = 'I was billed\\x07 twice",
     ["column 'text'", "= 'I was billed\\x07 twice", "expected texts without control characters", "text.control"]),
    ("zero_width_character", "zero_width.csv", "zero_width.csv' line 20) = 'My order is\\u200b stuck",
     ["column 'text'", "= 'My order is\\u200b stuck", "expected texts without zero-width characters",
      "text.zero_width"]),
]


@pytest.mark.parametrize("name,in_file,fragments", [c[1:] for c in WARNING_CASES], ids=[c[0] for c in WARNING_CASES])
def test_warnings_are_reported_and_logged(tmp_path, caplog, name, in_file, fragments):
    write_params(tmp_path, {"data.reference": None, "data.incoming.path": str(BAD / name)})
    with caplog.at_level(logging.WARNING, logger="driftfit"):
        assert cli.main(["prepare", "--params", str(tmp_path / "params.yaml")]) == 0
        assert cli.main(["validate", "--params", str(tmp_path / "params.yaml")]) == 0
    summary = json.loads((tmp_path / "reports" / "validation" / "summary.json").read_text())
    [warning] = [w for w in summary["warnings"] if all(part in w for part in fragments)]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"data validation warning: {warning}" in logged  # by the validate step
    assert any(in_file in m and all(part in m for part in fragments) for m in logged)  # by prepare, with the line


def test_a_batch_overlapping_the_champions_memory_is_leakage(project, capsys, tmp_path):
    """With a champion, the reference is its data memory (what it learnt): a batch that repeats those rows in
    another order (so it is not the same batch, and splits differently) puts rows the champion trained on into
    its test split, and is rejected. (Without a champion, data.reference as the incoming file: test_data.py.)"""
    rows = pd.read_csv(project / "data" / "default" / "incoming.csv", dtype=str, keep_default_na=False)
    overlap = tmp_path / "data" / "overlap.csv"
    overlap.parent.mkdir()
    rows.iloc[::-1].to_csv(overlap, index=False)
    before = snapshot(project)
    status, line = run_bad(project, {"data.incoming.path": str(overlap)}, capsys)
    assert status == 2
    for part in ("test: column 'text' shares", "with reference_train", "expected no text in both reference_train "
                 "and test", "contract leakage"):
        assert part in line, line
    assert snapshot(project) == before


def test_a_one_megabyte_text(project, capsys, tmp_path):
    rows = GOOD.read_text().splitlines()
    rows[3] = "word " * 200_000 + ",billing"  # line 4: 1 MB of text
    big = tmp_path / "huge_text.csv"
    big.write_text("\n".join(rows) + "\n")
    before = snapshot(project)
    status, line = run_bad(project, {"data.incoming.path": str(big)}, capsys)
    assert status == 2
    assert "huge_text.csv' line 4) = 'word word" in line and "(999999 characters)" in line
    assert "expected between 1 and 5000 characters" in line and len(line) < 2000  # the text is cut
    assert snapshot(project) == before


def test_a_utf8_bom_is_accepted():
    with_bom = load_table(SourceConfig(path=str(BAD / "bom.csv")))
    assert with_bom.equals(load_table(SourceConfig(path=str(GOOD))))
    assert list(with_bom.columns) == ["text", "label"]
    assert with_bom["text"][0] == "My invoice shows a charge I do not recognise"  # no BOM glued to it


def test_the_corpus_has_a_file_per_case():
    files = {p.name for p in BAD.iterdir()}
    assert len(files - {"good_incoming.csv", "README.md"}) >= 15
    named = {Path(v).name for _, overrides, _ in CASES for v in overrides.values() if str(v).startswith(str(BAD))}
    assert named - {"does_not_exist.csv"} <= files


@pytest.mark.parametrize("name,overrides,fragment_", [
    ("empty_text", {"data.incoming.path": str(BAD / "empty_text.csv")}, "empty_text.csv' line 6) = ''"),
    ("params_mistyped_key", fragment("params_mistyped_key.yaml"), "unknown key 'train.epocs'"),
])
def test_a_real_process_exits_2_with_one_line(project, name, overrides, fragment_):
    """The same through a real `driftfit` process: status 2, stderr's last line is the one message."""
    before = snapshot(project)
    write_params(project, {**CHAMPION_RUN, **overrides})
    out = subprocess.run([sys.executable, "-m", "driftfit.cli", "run"], cwd=project, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and fragment_ in errors[0] and "Traceback" not in out.stderr
    assert snapshot(project) == before


@pytest.mark.slow
def test_the_flow_fails_the_same_way(prefect_api, project):
    """The Prefect flow on a bad batch: a failed state whose message is the same one line."""
    from flows.retrain import retrain

    before = snapshot(project)
    write_params(project, {**CHAMPION_RUN, "data.roots": ["data", str(BAD)]})  # flow parameters must lie in a root
    with chdir(project):
        state = retrain(params_path=str(project / "params.yaml"), incoming_path=str(BAD / "empty_text.csv"),
                        return_state=True)
    assert state.is_failed()
    assert "empty_text.csv' line 6) = ''" in state.message and "expected between 1 and 5000" in state.message
    assert snapshot(project) == before


def test_bad_inputs_leave_the_prepared_split_readable(project):
    """After all that, the last good split is still there and whole."""
    assert not pd.read_parquet(project / "data" / "prepared" / "train.parquet").empty
