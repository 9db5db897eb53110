"""Shift measures on the real pretrained MiniLM and small real text sets (chatterbot utterances)."""

from __future__ import annotations

import json
from pathlib import Path

import chatterbot_corpus
import numpy as np
import pandas as pd
import pytest
import yaml

from driftfit.pipeline import runner
from driftfit.measures import shift
from driftfit.modalities.text import measures
from driftfit.config import ModelConfig, ShiftConfig, parse_params
from driftfit.io import read_json
from driftfit.modalities.text.model import TextClassifier, load_encoder, load_tokenizer, save_classifier
from driftfit.state.registry import add_version, set_champion

CORPUS = Path(chatterbot_corpus.__file__).parent / "data"
CATEGORIES = ["ai", "emotion", "psychology", "literature"]  # present in English, Chinese and Korean
SMALL = ShiftConfig(sample_size=48, permutations=200, batch_size=32, seed=0)


def utterances(language: str) -> pd.DataFrame:
    """Unique utterances of a chatterbot language, labelled by category (the file name)."""
    rows = []
    for path in sorted((CORPUS / language).glob("*.yml")):
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations") or []:
            rows += [(u.strip(), path.stem) for u in conversation if isinstance(u, str) and u.strip()]
    return pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text").reset_index(drop=True)


def balanced(df: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    picked = df[df["label"].isin(CATEGORIES)].groupby("label").sample(per_class, random_state=seed)
    return picked.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def pretrained():
    return load_tokenizer(ModelConfig()), load_encoder(ModelConfig())


@pytest.fixture(scope="module")
def english():
    return utterances("english")


@pytest.fixture(scope="module")
def sides(english):
    """Reference and an incoming batch (36 train + 12 val) from disjoint English utterances, 12 per class."""
    both = balanced(english, 24, seed=1)
    reference = both.groupby("label").head(12).reset_index(drop=True)
    incoming = both.drop(both.groupby("label").head(12).index).reset_index(drop=True)
    return reference, incoming.iloc[:36].reset_index(drop=True), incoming.iloc[36:].reset_index(drop=True)


@pytest.fixture(scope="module")
def same_report(pretrained, sides):
    tokenizer, encoder = pretrained
    reference, train, val = sides
    return measures.measure_shift(reference, train, val, encoder, tokenizer, SMALL, max_len=64)


@pytest.fixture(scope="module")
def chinese_report(pretrained, sides):
    tokenizer, encoder = pretrained
    reference = sides[0]
    chinese = balanced(utterances("chinese"), 12, seed=2)
    return measures.measure_shift(reference, chinese.iloc[:36], chinese.iloc[36:], encoder, tokenizer, SMALL, max_len=64)


# ---- tokenizer fit --------------------------------------------------------------------------

def test_tokenizer_fits_english_better_than_chinese_and_korean(pretrained, english):
    tokenizer, _ = pretrained
    en = measures.tokenizer_fit(tokenizer, english["text"].head(300).tolist(), max_len=64)
    zh = measures.tokenizer_fit(tokenizer, utterances("chinese")["text"].head(300).tolist(), max_len=64)
    ko = measures.tokenizer_fit(tokenizer, utterances("korean")["text"].head(300).tolist(), max_len=64)
    assert en["unk_rate"] < 0.01 < zh["unk_rate"]
    assert en["tokens_per_word"] < 2 < ko["tokens_per_word"]
    assert en["tokens_per_word"] < zh["tokens_per_word"]
    assert 0 <= en["truncated_rate"] <= 1


def test_tokenizer_fit_reads_a_bounded_seeded_sample(pretrained, sides, monkeypatch):
    """A batch larger than the bound: only TOKENIZER_TEXTS texts per side are tokenized, seeded, drawn from
    train and val; label shift and data size still count every row."""
    tokenizer, encoder = pretrained
    reference, train, val = sides
    monkeypatch.setattr(measures, "TOKENIZER_TEXTS", 20)  # 48 rows per side here
    fit, read = measures.tokenizer_fit, []

    def counted_fit(tok, texts, max_len=None):
        read.append(texts)
        return fit(tok, texts, max_len)

    monkeypatch.setattr(measures, "tokenizer_fit", counted_fit)
    reports = [measures.measure_shift(reference, train, val, encoder, tokenizer, SMALL, max_len=64) for _ in range(2)]
    incoming, ref = read[:2]
    assert [len(texts) for texts in read] == [20, 20, 20, 20]
    assert read[2:] == read[:2]  # seeded: the same sample again
    assert reports[0]["tokenizer"]["incoming"]["texts"] == 20 == reports[0]["tokenizer"]["reference"]["texts"]
    assert set(incoming) & set(train["text"]) and set(incoming) & set(val["text"])
    assert set(ref) <= set(reference["text"])
    assert reports[0]["data_size"]["rows"] == 36 and sum(reports[0]["data_size"]["per_class"].values()) == 36
    exact = shift.label_shift(reference["label"].tolist(), train["label"].tolist() + val["label"].tolist())
    assert reports[0]["label_shift"] == {**exact, "seconds": reports[0]["label_shift"]["seconds"]}


# ---- embedding shift ------------------------------------------------------------------------

def test_different_distribution_has_larger_mmd_lower_p_and_higher_auc(same_report, chinese_report):
    same, diff = same_report["embedding"], chinese_report["embedding"]
    assert diff["mmd2"] > same["mmd2"]
    assert diff["p_value"] < same["p_value"]
    assert diff["p_value"] <= 0.01
    assert 0 < same["p_value"] <= 1
    assert diff["domain_classifier"]["auc"] > same["domain_classifier"]["auc"]
    assert diff["domain_classifier"]["auc"] > 0.9
    assert same["sample_size"] == {"reference": 48, "incoming": 48}


def test_vectorised_permutations_match_a_slow_loop():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    z = np.vstack([x, y])
    kernel, sigma = shift.rbf_kernel(z)
    splits = shift.permutation_splits(len(z), 30, seed=4)
    fast = shift.permuted_mmd2(kernel, len(x), splits)

    def k(a, b):
        return np.exp(-((a - b) ** 2).sum() / (2 * sigma**2))

    def slow_mmd2(xs, ys):  # the unbiased estimator, term by term
        n, m = len(xs), len(ys)
        kxx = sum(k(xs[i], xs[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        kyy = sum(k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        kxy = sum(k(a, b) for a in xs for b in ys) / (n * m)
        return kxx + kyy - 2 * kxy

    slow = np.array([slow_mmd2(z[s[:6]], z[s[6:]]) for s in splits])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)
    assert np.isclose(slow_mmd2(x, y), shift.permuted_mmd2(kernel, 6, np.arange(11)[None, :])[0])

    result = shift.mmd_test(x, y, permutations=30, seed=4)
    observed = slow_mmd2(x, y)
    null = [slow_mmd2(z[s[:6]], z[s[6:]]) for s in splits[1:]]  # row 0 is the observed split itself
    expected_p = (1 + sum(v >= observed - 1e-12 for v in null)) / (1 + len(null))
    assert np.isclose(result["mmd2"], observed)
    assert 0 < result["p_value"] <= 1
    assert np.isclose(result["p_value"], expected_p)


# ---- label shift, transferability -----------------------------------------------------------

def test_label_shift_finds_new_and_vanished_labels():
    out = shift.label_shift(["a", "a", "b", "c"], ["a", "b", "d", "d"])
    assert out["new_labels"] == ["d"]
    assert out["vanished_labels"] == ["c"]
    assert 0 < out["js_divergence"] < 1
    assert shift.label_shift(["a", "b"], ["b", "a"])["js_divergence"] == pytest.approx(0)
    assert shift.label_shift(["a"], ["b"])["js_divergence"] == pytest.approx(1)
    alone = shift.label_shift(None, ["a", "b", "b"])
    assert "new_labels" not in alone and alone["incoming_distribution"] == pytest.approx({"a": 1 / 3, "b": 2 / 3})
    # columns count the same as lists; integer and string labels are one label once read as strings
    assert shift.label_shift(pd.Series(["a", "a", "b", "c"]), pd.Series(["a", "b", "d", "d"])) == out
    assert shift.label_shift([1, "1", 2], ["2"])["reference_distribution"] == pytest.approx({"1": 2 / 3, "2": 1 / 3})


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(0)
    labels = [str(i % 3) for i in range(90)]
    centres = rng.normal(size=(3, 8))
    features = centres[[int(s) for s in labels]] + 0.3 * rng.normal(size=(90, 8))
    shuffled = list(rng.permutation(labels))
    assert shift.logme(features, labels) > shift.logme(features, shuffled)


def test_report_shape_and_probe(same_report):
    json.dumps(same_report)  # JSON-able, as written by io.write_json
    assert set(same_report) >= {"tokenizer", "embed", "embedding", "label_shift", "probe", "data_size", "seconds"}
    assert same_report["label_shift"]["new_labels"] == [] and same_report["label_shift"]["vanished_labels"] == []
    probe = same_report["probe"]
    assert 0.25 < probe["accuracy"] <= 1 and 0 <= probe["macro_f1"] <= 1
    assert same_report["data_size"] == {**same_report["data_size"], "rows": 36, "val_rows": 12, "classes": 4}
    assert same_report["embed"]["texts"] == 48 + 48
    for section in ("tokenizer", "embedding", "label_shift", "probe", "data_size"):
        assert same_report[section]["seconds"] >= 0


def test_without_reference_only_incoming_measures(pretrained, sides):
    tokenizer, encoder = pretrained
    _, train, val = sides
    report = measures.measure_shift(None, train, val, encoder, tokenizer, SMALL, max_len=64)
    assert "embedding" not in report and "reference" not in report["tokenizer"]
    assert "new_labels" not in report["label_shift"]
    assert report["data_size"]["reference_rows"] is None
    assert report["probe"]["accuracy"] is not None


# ---- thin edge ------------------------------------------------------------------------------

def test_run_reads_prepared_splits_and_scores_the_champion(tmp_path, pretrained, sides):
    tokenizer, encoder = pretrained
    reference, train, val = sides
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    train.to_parquet(prepared / "train.parquet")
    val.to_parquet(prepared / "val.parquet")
    reference.to_parquet(prepared / "reference_train.parquet")
    registry = tmp_path / "registry"
    known = CATEGORIES[:3]  # the champion does not know the fourth label
    save_classifier(TextClassifier(load_encoder(ModelConfig()), len(known)), tokenizer, known, tmp_path / "model")
    add_version(registry, "v1", tmp_path / "model", {"note": "test"}, "# test champion\n")
    set_champion(registry, "v1", "promote", "test")
    params = parse_params({"data": {"incoming": {"path": "unused.csv"}},
                           "paths": {"prepared": str(prepared), "registry": str(registry),
                                     "shift": str(tmp_path / "reports" / "shift.json"),
                                     "cache": str(tmp_path / "cache")},
                           "shift": {"sample_size": 20, "permutations": 50, "batch_size": 32}})
    report = runner("measure-shift")(params)
    assert read_json(tmp_path / "reports" / "shift.json")["champion"] == report["champion"]
    champion = report["champion"]
    assert 0 <= champion["val_accuracy"] <= 1
    assert champion["covers_labels"] is False and champion["uncovered_labels"] == [CATEGORIES[3]]
    assert report["embedding"]["sample_size"] == {"reference": 20, "incoming": 20}
    with_memory = report["probe"]["with_memory"]   # the skip rule's yardstick, k-fold over the incoming rows
    assert 0 <= with_memory["accuracy"] <= 1 and with_memory["memory_rows"] == 20 and with_memory["folds"] >= 2

    # Run again: every text is read from the feature cache (the pretrained encoder's and the champion's
    # namespaces), and the measures are those of the first run, up to float rounding.
    namespaces = sorted((tmp_path / "cache").iterdir())
    assert len(namespaces) == 2 and all(list(n.glob("*.npz")) for n in namespaces)
    shards = {n: len(list(n.glob("*.npz"))) for n in namespaces}
    again = runner("measure-shift")(params)
    assert {n: len(list(n.glob("*.npz"))) for n in namespaces} == shards   # nothing was computed anew
    assert again["embedding"]["mmd2"] == pytest.approx(report["embedding"]["mmd2"], rel=1e-4, abs=1e-6)
    assert again["champion"]["val_accuracy"] == champion["val_accuracy"]
    assert again["probe"]["accuracy"] == report["probe"]["accuracy"]


def test_probe_with_memory_learns_from_the_memory():
    """Two classes the incoming rows alone barely show (two rows each, noisy): the memory's many clean rows
    make the cross-validated probe right on them; with a memory of the wrong classes it is not."""
    rng = np.random.default_rng(0)
    centre = {"a": np.r_[3.0, 0.0], "b": np.r_[-3.0, 0.0]}
    memory = np.concatenate([centre[l] + rng.normal(0, 1, (100, 2)) for l in "ab"])
    memory_labels = ["a"] * 100 + ["b"] * 100
    incoming = np.concatenate([centre[l] + rng.normal(0, 1, (4, 2)) for l in "ab"])
    incoming_labels = ["a"] * 4 + ["b"] * 4
    good = shift.probe_with_memory(memory, memory_labels, incoming, incoming_labels, folds=4)
    assert good["accuracy"] == 1.0 and good["rows"] == 8 and good["folds"] == 4 and good["memory_rows"] == 200
    swapped = shift.probe_with_memory(memory, memory_labels[::-1], incoming, incoming_labels, folds=4)
    assert swapped["accuracy"] < 0.5
    assert shift.probe_with_memory(None, [], incoming[:3], ["a", "b", "b"])["accuracy"] is None  # one 'a': no folds
