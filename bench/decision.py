"""Decision benchmark: is the strategy the selector picks as good as the best one, found by training all?

    python -m bench.decision --scenarios bench/scenarios-fit.yaml --out bench/results/fit [--only NAME] [--rescore]
    driftfit bench decision ...            (the same, from the project folder)

For each scenario in the YAML file: load the data, train a champion on the reference data (if any; a
`head` whose regularisation is chosen on a held-out fifth of the reference, as the pipeline would train it;
counted as set-up, not as cost), run the selector exactly as the pipeline does (shift
measures + policy, + trial runs in probe mode), then train and evaluate *every* strategy under the
same budget with `seeds` training seeds each (the oracle; the seed sets initialisation and data order,
train.seed, train.seed + 1, ...; strategies that train nothing, skip and zero_shot, run once). Each
strategy trains on what the pipeline would give it: the batch plus a replay of the champion's data
(driftfit.training.replay.training_frame: train.replay_fraction of the batch's size; every reference row for
train.replay_all_for, the head by default, and when the batch brings new labels), the head's features
cached per scenario as the pipeline caches them (paths.cache). Each
finished scenario is saved at once as scenarios/<name>.json: per strategy and seed the test accuracy,
macro-F1, seconds and the test predictions (label indices, one character per row; see bench/stats.py),
so verdicts can be recomputed without training. decision.json and decision.md then hold, from every
saved scenario of the file: per strategy the mean ± 95% t-interval over seeds, the regret (points
below the best) and whether it is tied with the best (a paired bootstrap on the test rows; the exact
rule is in bench/stats.py), the cheapest strategy tied with the best and the chosen one's cost
relative to it; and the headline: the selector against every fixed policy "always X", with targets.

Scenario file:

    budget: {epochs: 2, max_train_examples: 1200, max_seq_len: 64}   # applies to every strategy and seed
    seeds: 3                              # training seeds per strategy (default 3)
    strategies: [head, lora, full]        # optional: the oracle's strategies (default: all)
    scenarios:
      - name: sst2-to-amazon-32
        family: sst2-to-amazon            # required: the scenarios telling one data story; suites split by family
        shift: near_domain                # optional: same_domain | near_domain | far_domain | new_task | new_language
        reference: {path: ../shared/data/sst2/train.tsv, text: sentence, label: label, slice: [0, 0.03]}
        train: {path: ../shared/data/sentiment_domains/amazon.tsv, header: false, text: 0, label: 1,
                slice: [0.55, 0.65]}
        test: {path: ../shared/data/sentiment_domains/amazon.tsv, header: false, text: 0, label: 1,
               slice: [0, 0.5]}           # or test_fraction: 0.3 (a stratified part of the train source)
        train_per_class: 32               # optional: keep this many training rows per class (few-shot)

A source takes the keys of params.yaml's data sources (path, text, label, header, sample), plus:
    slice: [lo, hi]      keep only the rows whose text falls in [lo, hi) of [0, 1) by a stable hash of
                         the text (blake2b): slices that do not overlap share no text, in any file, whatever
                         else is sampled, filtered or relabelled. This is how one file feeds several
                         scenarios without two of them sharing rows.
    label_map: {a: A}    keep only the rows with these labels, renamed (after slicing)
    words: [lo, hi]      keep only the texts of lo to hi whitespace-separated words (either may be null):
                         a shift of length and style within one source, e.g. SST-2's short phrases against
                         its full sentences
    not_in: [{path: ..., text: ...}]   drop the texts that these other files hold (two files that repeat some
                         texts: slices keep texts apart only within one hash space)
Every source's texts are stripped, empty and repeated texts dropped (the first kept), then sliced,
mapped and finally sampled (`sample`, seeded). Paths are relative to the directory the command runs
in; formats come from the extension. A path `chatterbot:<language>[,<language>...]` reads those
languages of the chatterbot-corpus package; `label: label` (default) labels by category, `label:
language` by language (a language-identification task). A text under two labels, or found in two
languages of the corpus ('Hello'), is dropped, so scenarios on different languages share no row.

Results saved by the previous harness (one seed, no predictions) are listed as stale, not mixed in.
`--report` rebuilds decision.json and decision.md from the saved results (no training), e.g. after a change to how
they are judged. `--rescore` re-judges the saved results under the current policy (re-applied to the saved measures), no training.
`--redo STRATEGY` retrains one strategy in the saved scenarios after a change to how it trains (each result
records it under `redone`), keeping every other figure.
`--redo-champion` trains the saved scenarios' champions again after a change to how they are trained, runs the
selector again on them and redoes the strategies that read the champion (skip, ensemble), keeping the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from bench import stats
from bench.sources import chatterbot_frame  # the one reader of the corpus, for every benchmark
from driftfit.config import STRATEGIES, Params, SourceConfig, StrictModel, load_params, read_yaml_model
from driftfit.errors import ConfigError
from driftfit.io import write_json, write_text

log = logging.getLogger(__name__)

FORMAT = 2  # of scenarios/<name>.json; results saved by an older harness are listed as stale, not mixed in
SHIFTS = ("same_domain", "near_domain", "far_domain", "new_task", "new_language")


# ---- the scenario file ----------------------------------------------------------------------

_Strict = StrictModel


# the train.* learning rates a budget may set (bench.lr_sweep tunes them)
LEARNING_RATES = ("learning_rate", "lora_learning_rate", "head_learning_rate", "adapter_learning_rate")


class Budget(_Strict):
    epochs: float = Field(3, gt=0)
    max_train_examples: int = Field(4000, gt=0)
    max_seq_len: int = Field(128, gt=0)
    batch_size: int = Field(32, gt=0)
    # the learning rates this budget's few steps want (validated by bench.lr_sweep on the fitting half);
    # unset ones are params.yaml's
    learning_rates: dict[Literal[LEARNING_RATES], float] = {}  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _positive_rates(self) -> "Budget":
        for name, value in self.learning_rates.items():
            if not value > 0:
                raise ValueError(f"learning_rates.{name} must be > 0, got {value}")
        return self


def check_slice(bounds: tuple[float, float] | None) -> None:
    """A source's `slice: [lo, hi]` of the hash space [0, 1): the error a YAML author sees."""
    if bounds is not None and not 0 <= bounds[0] < bounds[1] <= 1:
        raise ValueError(f"slice must be [lo, hi] with 0 <= lo < hi <= 1, got {list(bounds)}")


class BenchSource(SourceConfig):
    slice: tuple[float, float] | None = None
    label_map: dict[str, str] | None = None
    words: tuple[int | None, int | None] | None = None
    not_in: list[SourceConfig] = []

    @model_validator(mode="after")
    def _check(self) -> "BenchSource":
        check_slice(self.slice)
        lo, hi = self.words or (None, None)
        if any(w is not None and w < 1 for w in (lo, hi)) or (lo is not None and hi is not None and lo > hi):
            raise ValueError(f"words must be [lo, hi] with 1 <= lo <= hi (either may be null), got {list(self.words)}")
        if self.label_map is not None and not self.label_map:
            raise ValueError("label_map must map at least one label (or be left out)")
        if self.path.startswith("chatterbot:") and (self.text != "text" or self.label not in ("label", "language")):
            raise ValueError(f"a chatterbot source takes label: label (by category) or label: language, and no "
                             f"text column; got text={self.text!r}, label={self.label!r}")
        return self


class Scenario(_Strict):
    name: str = Field(..., min_length=1)
    family: str = Field(..., min_length=1)
    shift: Literal[SHIFTS] | None = None  # type: ignore[valid-type]
    reference: BenchSource | None = None
    train: BenchSource
    test: BenchSource | None = None
    test_fraction: float = Field(0.3, gt=0, lt=1)
    train_per_class: int | None = Field(None, gt=0)
    note: str = ""


class ScenarioFile(_Strict):
    budget: Budget = Budget()
    seeds: int = Field(3, ge=1)
    strategies: list[Literal[STRATEGIES]] | None = None  # type: ignore[valid-type]
    scenarios: list[Scenario] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "ScenarioFile":
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be unique, got {names}")
        return self


def load_scenarios(path: str | Path) -> ScenarioFile:
    return read_yaml_model(ScenarioFile, path, "scenario file", f"{Path(__file__).name}'s docstring")


# ---- data -----------------------------------------------------------------------------------

def chatterbot_languages() -> list[str]:
    """Every language the installed chatterbot-corpus package has."""
    import chatterbot_corpus

    root = Path(chatterbot_corpus.__file__).parent / "data"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.yml")))


@functools.lru_cache(maxsize=1)
def chatterbot_shared_texts() -> frozenset[str]:
    """Texts found in more than one chatterbot-corpus language ('Hello', names, loanwords): no chatterbot
    source keeps them, so scenarios on different languages never share a row."""
    counts = Counter(t for lang in chatterbot_languages() for t in set(chatterbot_frame(lang)["text"]))
    return frozenset(t for t, n in counts.items() if n > 1)


def chatterbot_source(languages: str, by_language: bool) -> pd.DataFrame:
    """Several chatterbot-corpus languages, labelled by category or by language; a text under two labels, or in
    two languages of the corpus, dropped."""
    frames = [chatterbot_frame(lang.strip()).assign(language=lang.strip()) for lang in languages.split(",")]
    df = pd.concat(frames, ignore_index=True)
    df = df[~df["text"].isin(chatterbot_shared_texts())]
    if by_language:
        df["label"] = df["language"]
    df = df[["text", "label"]].drop_duplicates()
    owners = df.groupby("text")["label"].nunique()
    return df[df["text"].map(owners) == 1].reset_index(drop=True)


def text_position(texts: pd.Series) -> np.ndarray:
    """Where each text falls in [0, 1): a stable hash of the text, the same in every file, run and machine."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "big") / 2.0 ** 64 for t in texts])


def _file_stamp(path: str) -> tuple:
    """A file's size and modification time (nothing for a chatterbot source): the key under which its rows stay
    read, so a file rewritten in place is read again."""
    try:
        stat = Path(path).stat()
    except OSError:
        return ()
    return (stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _clean_rows(spec: str, stamp: tuple) -> pd.DataFrame:
    """A source's rows (stripped; empty and repeated texts dropped), read once per process for every scenario that
    slices, filters or samples the same file. `spec`: the source's reading fields (a SourceConfig) as JSON."""
    from driftfit.modalities.text.loaders import load_table

    src = SourceConfig.model_validate_json(spec)
    if src.path.startswith("chatterbot:"):
        df = chatterbot_source(src.path.split(":", 1)[1], by_language=src.label == "language")
    else:
        df = load_table(src, seed=0)  # no sample: the seed draws nothing
    df = df[df["text"].notna()].assign(text=lambda d: d["text"].astype(str).str.strip())
    return df[df["text"] != ""].drop_duplicates("text")


@functools.lru_cache(maxsize=16)
def _positions(spec: str, stamp: tuple) -> np.ndarray:
    """text_position of _clean_rows' texts, for the files a scenario slices."""
    return text_position(_clean_rows(spec, stamp)["text"])


def _reading(src: SourceConfig) -> tuple[str, tuple]:
    """The cache key of a source's rows: its reading fields without the sample, and its file's stamp."""
    fields = src.model_dump(include=set(SourceConfig.model_fields)) | {"sample": None}
    return SourceConfig.model_validate(fields).model_dump_json(), _file_stamp(src.path)


def load_source(src: BenchSource, seed: int) -> pd.DataFrame:
    """The source's rows (text, label): stripped, empty and repeated texts dropped, sliced, mapped, sampled."""
    df = _clean_rows(*_reading(src))
    if src.slice is not None:
        pos = _positions(*_reading(src))
        df = df[(pos >= src.slice[0]) & (pos < src.slice[1])]
    if src.words is not None:
        lo, hi = src.words
        df = df[df["text"].str.split().str.len().between(lo or 1, hi or np.inf)]
    for other in src.not_in:
        df = df[~df["text"].isin(set(_clean_rows(*_reading(other))["text"]))]
    if src.label_map is not None:
        df = df[df["label"].isin(src.label_map)].assign(label=lambda d: d["label"].map(src.label_map))
    if src.sample is not None and src.sample < len(df):
        df = df.sample(n=src.sample, random_state=seed).sort_index()
    return df[["text", "label"]].reset_index(drop=True)


def cap_per_class(df: pd.DataFrame, total: int | None, per_class: int | None, seed: int) -> pd.DataFrame:
    """A seeded, stratified subsample: at most `per_class` rows per label, at most `total` rows in all."""
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = [i for _, idx in sorted(df.groupby("label").indices.items())
                for i in rng.permutation(idx)[:per_class]]
        df = df.iloc[sorted(keep)]
    if total is not None and len(df) > total:
        from driftfit.data.splits import stratified_split

        keep = total / len(df)
        df = stratified_split(df, {"keep": keep}, seed)["keep"]
    return df.reset_index(drop=True)


def scenario_data(sc: Scenario, budget: Budget, seed: int) -> dict[str, pd.DataFrame | None]:
    """train, val, test and reference frames; `seed` draws the splits and samples (not the training seeds)."""
    from driftfit.data.splits import stratified_split

    incoming = load_source(sc.train, seed)
    if sc.test is not None:
        test = load_source(sc.test, seed)
    else:
        parts = stratified_split(incoming, {"test": sc.test_fraction}, seed)
        incoming, test = parts["train"], parts["test"]
    parts = stratified_split(incoming, {"val": 0.15}, seed)
    train = cap_per_class(parts["train"], budget.max_train_examples, sc.train_per_class, seed)
    val = parts["val"]
    if sc.train_per_class is not None:  # few-shot: the validation split is as small as the data
        val = cap_per_class(val, None, max(2, sc.train_per_class // 2), seed)
    reference = None
    if sc.reference is not None:
        reference = cap_per_class(load_source(sc.reference, seed), budget.max_train_examples, None, seed)
    for name, df in (("train", train), ("test", test)):
        if len(df) == 0 or df["label"].nunique() < 2:
            raise ConfigError(f"scenario '{sc.name}': its {name} rows ({len(df)}) need at least two labels; "
                              "widen the slice or drop the label_map/train_per_class that empties it")
    return {"train": train, "val": val, "test": test, "reference": reference}


# ---- one scenario ---------------------------------------------------------------------------

def _predict(model_dir: Path, test: pd.DataFrame, params: Params, cache: Path | None = None) -> list[str]:
    """The model's label for each test row. cache: a feature cache (driftfit.state.feature_cache) for what the
    model's head reads, keyed by everything but the head (model.features_identity): the champion and the
    head's seeds share one frozen encoder, so its test features are computed once per scenario."""
    from driftfit.state.feature_cache import cached
    from driftfit.modalities.text.model import features_identity, head_inputs, load_classifier, pick_device, predict_proba
    from driftfit.modalities.text.measures import champion_predict

    model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    texts, max_len, batch = list(test["text"]), params.model.max_seq_len, params.evaluate.batch_size
    if cache is None:
        probs = predict_proba(model, tokenizer, texts, max_len, batch, pick_device(params.train.device))
    else:
        features = cached(cache, f"classifier features {features_identity(model_dir)} head_inputs max_len={max_len}",
                          lambda rows: head_inputs(model, tokenizer, rows, max_len, batch))
        probs = champion_predict((model, tokenizer, labels), max_len, batch, features)(texts)
    return [labels[i] for i in probs.argmax(1)]


def _mean_ci(values: list[float], digits: int = 4) -> dict:
    mean, low, high = stats.t_interval(values)
    return {"mean": round(mean, digits), "ci95": None if low is None else [round(low, digits), round(high, digits)],
            "per_seed": [round(v, digits) for v in values]}


def strategy_record(runs: list[tuple[list[str], float]], truth: list[str], labels: list[str],
                    deterministic: bool) -> dict:
    """One strategy's saved figures from its (test predictions, seconds) per seed."""
    from sklearn.metrics import accuracy_score, f1_score

    acc = [float(accuracy_score(truth, pred)) for pred, _ in runs]
    f1 = [float(f1_score(truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0))
          for pred, _ in runs]
    return {"accuracy": _mean_ci(acc), "macro_f1": _mean_ci(f1),
            "seconds": {"mean": round(float(np.mean([t for _, t in runs])), 2),
                        "per_seed": [round(t, 2) for _, t in runs]},
            "deterministic": deterministic,  # trains nothing: one run stands for every seed
            "predictions": [stats.encode(pred, labels) for pred, _ in (runs[:1] if deterministic else runs)]}


def with_seed(params: Params, seed: int) -> Params:
    return params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})


def check_test_rows(sc: Scenario, data: dict, result: dict) -> None:
    """The scenario's test rows, drawn again, must be the saved result's: else its verdicts would not hold."""
    if stats.encode(list(data["test"]["label"]), result["labels"]) != result["test_labels"]:
        raise ConfigError(f"scenario '{sc.name}': its test rows are no longer the saved ones (the data or the "
                          "scenario changed); rerun the whole scenario with --only")


def measure_and_select(data: dict, base: Params, work: Path) -> tuple[Path | None, dict, dict, Params, float]:
    """What the pipeline would do before training: the champion "in production" (set-up, not cost), then the
    shift report, the rules' decision (probed when base.strategy.mode is probe) and scratch's tokenizer settled.
    Returns (champion folder or None, shift report, decision, the settled params, seconds of measuring and
    deciding)."""
    from driftfit.modalities.text.model import load_classifier, load_encoder, load_tokenizer
    from driftfit.modalities.text.measures import measure_shift
    from driftfit.policy.probe import with_probe
    from driftfit.policy.rules import select_strategy
    from driftfit import modalities
    from driftfit.modalities.text.recipe import settle_scratch_tokenizer

    train, val, reference = data["train"], data["val"], data["reference"]
    champion_dir = _champion(reference, val, base, work)
    start = time.perf_counter()
    tokenizer, encoder = load_tokenizer(base.model), load_encoder(base.model)
    champion = load_classifier(champion_dir, base.model.trust_remote_code) if champion_dir else None
    report = measure_shift(reference, train, val, encoder, tokenizer, base.shift, base.model.max_seq_len, champion)
    decision = select_strategy(report, base.strategy, champion is not None)
    base = settle_scratch_tokenizer(base, report)  # scratch's tokenizer from this scenario's own shift report
    if base.strategy.mode == "probe":
        decision = with_probe(decision, train, val, base, modalities.get("text"), shift=report)
    return champion_dir, report, decision, base, time.perf_counter() - start


def run_scenario(sc: Scenario, spec: ScenarioFile, base: Params, work: Path) -> dict:
    from driftfit.strategies import spec as strategy_spec

    seed = base.train.seed
    data = scenario_data(sc, spec.budget, seed)
    train, val, test, reference = data["train"], data["val"], data["test"], data["reference"]
    labels = sorted(set(train["label"]) | set(test["label"]) | set([] if reference is None else reference["label"]))
    if len(labels) > len(stats.ALPHABET):
        raise ConfigError(f"scenario '{sc.name}': {len(labels)} labels; the saved predictions hold at most "
                          f"{len(stats.ALPHABET)}")
    log.info("scenario %s: %d train, %d val, %d test rows, reference %s", sc.name, len(train), len(val),
             len(test), "none" if reference is None else len(reference))

    champion_dir, report, decision, base, selector_seconds = measure_and_select(data, base, work)

    names = list(spec.strategies or STRATEGIES)
    if champion_dir is None:
        names = [n for n in names if strategy_spec(n).makes_model]  # skip: nothing to keep
    if decision["strategy"] not in names:
        names.append(decision["strategy"])
    seeds = [seed + k for k in range(spec.seeds)]
    oracle: dict[str, dict] = {}
    for name in names:
        oracle[name] = train_strategy(name, data, base, seeds, labels, decision["replay"] == "all", champion_dir, work)
        log.info("scenario %s: %s -> accuracy %s, %s s", sc.name, name, oracle[name]["accuracy"]["mean"],
                 oracle[name]["seconds"]["mean"])

    return {
        "format": FORMAT, "name": sc.name, "family": sc.family, "shift_kind": sc.shift, "note": sc.note,
        "rows": {"train": len(train), "val": len(val), "test": len(test),
                 "reference": None if reference is None else len(reference),
                 "classes": int(train["label"].nunique())},
        "seeds": seeds,
        **_selection_record(decision, report, selector_seconds),
        "champion_fit": None if champion_dir is None else CHAMPION_FIT,
        "labels": labels,
        "test_labels": stats.encode(list(test["label"]), labels),
        "learning_rates": {k: getattr(base.train, k) for k in LEARNING_RATES},
        "strategies": oracle,
    }


def _selection_record(decision: dict, report: dict, selector_seconds: float) -> dict:
    """What a result keeps of the selector's run: its choice, rule, measures and reason, and the shift report."""
    return {"choice": decision["strategy"], "runner_up": decision["runner_up"], "rule": decision["rule"],
            "measures": decision["measures"], "reason": decision["reason"],
            "selector_seconds": round(selector_seconds, 2),
            "shift": {"unk_rate": report["tokenizer"]["incoming"]["unk_rate"],
                      "tokens_per_word": report["tokenizer"]["incoming"]["tokens_per_word"],
                      "mmd2": (report.get("embedding") or {}).get("mmd2"),
                      "p_value": (report.get("embedding") or {}).get("p_value"),
                      "probe_accuracy": report["probe"].get("accuracy"),
                      "new_labels": report["label_shift"].get("new_labels"),
                      "seconds": round(report["seconds"], 2)}}


CHAMPION_FIT = "head, C on a held-out fifth of the reference"  # how _champion trains (a result records it)


def _champion(reference: pd.DataFrame | None, val: pd.DataFrame, base: Params, work: Path) -> Path | None:
    """The model "in production", as the pipeline would have trained it (set-up, not cost); None without a
    reference: a head on every reference row, its regularisation C chosen on a held-out fifth of them
    (driftfit.head_fit.replay_holdout, the rows marked as the memory's) and then refit on all. None of the
    incoming rows (`val`) is used. Before 2026-12-04 the champion had no validation rows and fell back to
    C = 1 (head_fit.DEFAULT_C): on agnews-same-8 that champion scored 0.826 where the chosen C scores 0.855,
    so skip, scored as that champion, lost 3 points to a head that was only better regularised."""
    from driftfit.modalities.text.recipe import train_model

    if reference is None:
        return None
    fit = train_model(reference.assign(replayed=True), val.iloc[:0], "head", base, work / "champion")["head_fit"]
    log.info("champion: a head on %d reference rows, C = %s (%s)", len(reference), fit["chosen_c"], fit["chosen_by"])
    return work / "champion"


def train_strategy(name: str, data: dict, base: Params, seeds: list[int], labels: list[str], replay_all: bool,
                   champion_dir: Path | None, work: Path) -> dict:
    """One strategy of the oracle: trained with each seed on what the pipeline would give it (the batch plus
    the replay of the champion's data: all of it when `replay_all`), scored on the test rows."""
    from driftfit.strategies import spec as strategy_spec
    from driftfit.modalities.text.recipe import train_model
    from driftfit.training.replay import training_frame

    train, val, test, reference = data["train"], data["val"], data["test"], data["reference"]
    entry = strategy_spec(name)
    runs, trained_on = [], 0
    for s in seeds if entry.trains else seeds[:1]:  # nothing trains: the same model for every seed
        params = with_seed(base, s)
        t = time.perf_counter()
        model_dir = work / f"{name}-{s}" if entry.makes_model else champion_dir
        if entry.makes_model:
            rows = training_frame(train, reference, params.train, name, replay_all=replay_all)
            trained_on = len(rows)
            train_model(rows, val, name, params, model_dir, champion_dir=champion_dir,  # ensemble averages with it
                        feature_cache=work / "feature-cache")
        seconds = time.perf_counter() - t if entry.makes_model else 0.0
        runs.append((_predict(model_dir, test, params, work / "feature-cache"), seconds))
        if model_dir != champion_dir:
            shutil.rmtree(model_dir, ignore_errors=True)
    return {**strategy_record(runs * (len(seeds) if not entry.trains else 1), list(test["label"]), labels,
                              deterministic=not entry.trains),
            "train_rows": trained_on}  # the batch plus its replay (0: nothing trained)


# ---- the whole benchmark --------------------------------------------------------------------

def _pm(m: dict) -> str:
    """0.853 ± 0.012 (the 95% interval's half width), or the mean alone for one seed."""
    ci = m["ci95"]
    return f"{m['mean']:.3f}" if ci is None else f"{m['mean']:.3f} ± {(ci[1] - ci[0]) / 2:.3f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _timing_note(t: dict | None) -> str:
    if not t:
        return "; seconds as measured"
    return (f"; seconds scaled by {t['factor']:.2f}: {t['strategy']} seed {t['seed']} took {t['seconds_now']:.1f} s "
            f"on the rerun, {t['saved_seconds']:.1f} s in the first run"
            f"{'' if t['reproduced'] else ', and its accuracy did NOT come out as saved'}")


def _before_note(x: dict) -> str:
    """What a champion redo replaced: the selector's choice on the first run's champion."""
    b = x.get("before")
    return "" if not b else (f"; the champion retrained ({x['champion_fit']}), the selector ran again: it chose "
                             f"{b['choice']} ({b['rule']}) on the first run's champion")


METRIC_WORDS = {"macro_f1": "macro-F1", "accuracy": "accuracy"}


def render_md(out: dict) -> str:
    h = out["headline"]
    metric = h.get("metric", stats.METRICS[0])
    other = next(m for m in stats.METRICS if m != metric)
    lines = [
        f"# Decision benchmark: {out['scenario_file']}", "",
        "Commands: " + ", ".join(f"`{c}`" for c in out["command"]) + "  ",
        f"Machine: {'; '.join(out['machine'])}; last finished {out['finished']}; budget {out['budget']}; "
        f"{out['seeds']} training seeds per strategy; selector mode `{out['selector_mode']}`.", "",
        *([f"Not run yet: {', '.join(out['not_run'])}.", ""] if out["not_run"] else []),
        *([f"Saved by an older harness (rerun with --only): {', '.join(out['stale'])}.", ""] if out["stale"] else []),
        f"Judged by {METRIC_WORDS[metric]}, the metric the promotion gate promotes on; {METRIC_WORDS[other]} beside "
        "it. Tied: a paired bootstrap over the test rows (2,000 draws of the rows, each strategy's seeds averaged on "
        "every draw) does not separate the strategy from the best at 95% (bench/stats.py). Regret: the best's score "
        "minus the strategy's, in points. Seconds: training; a strategy fitted on frozen features is charged its "
        "first seed's (which computed the features). Cost relative to the cheapest tied strategy: the policy's "
        "compute (the selector's includes its selection) over the cheapest tied strategy's seconds, each floored "
        "at 1 s.",
        "", "## The selector against every fixed policy", "",
        f"| policy | scenarios | mean regret (points) | mean {METRIC_WORDS[other]} regret | tied with the best "
        "| tied or within 1 point | compute (s) | median cost / cheapest tied |", "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in h.get("policies", {}).items():
        bold = "**" if name in ("selector", h.get("best_fixed_policy")) else ""
        beside = p.get(f"mean_{other}_regret_points")
        lines.append(f"| {bold}{name}{bold} | {p['scenarios']} | {p['mean_regret_points']:.2f} "
                     f"| {'' if beside is None else f'{beside:.2f}'} | {p['share_tied']:.0%} "
                     f"| {p['share_tied_or_within_1']:.0%} | {p['compute_seconds']:.0f} "
                     f"| {p['median_cost_vs_cheapest_tied']:.2f}x |")
    if h.get("policies"):
        lines += ["", f"Exhaustive training (every strategy, once): {h['exhaustive_seconds']:.0f} s. The selector's "
                      "compute is selection (shift measures, rules, probes) plus training its choice; a fixed policy's "
                      "is training its strategy. Best fixed policy: the lowest mean regret among those run in every "
                      "scenario.", "", "| target | figure | goal | met |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']} | {t['goal']} | {_yes(t['met'])} |" for t in h["targets"]]
    lines += ["", "## Per scenario", "",
              "| scenario | family | shift | rows (train/test) | chosen (rule) | best | regret | tied "
              "| cheapest tied | cost vs cheapest tied | selection (s) |", "|---" * 11 + "|"]
    for r, v in zip(out["results"], out["verdicts"]):
        c = v["choice"]
        lines.append(f"| {r['name']} | {r['family']} | {r['shift_kind'] or ''} | {r['rows']['train']}/"
                     f"{r['rows']['test']} | {r['choice']} ({r['rule']}) | {v['best']} | {c['regret_points']:.2f} | "
                     f"{_yes(c['tied'])} | {v['cheapest_tied']} | {c['cost_vs_cheapest_tied']:.2f}x | "
                     f"{r['selector_seconds']:.1f} |")
    for r, v in zip(out["results"], out["verdicts"]):
        lines += ["", f"## {r['name']}", "", r["note"] or "", "", f"Why `{r['choice']}`: {r['reason']}", "",
                  f"Training seeds {r['seeds']}; {r['rows']['test']} test rows.", "",
                  *[f"Retrained later: {', '.join(x['strategies'])} ({x['finished']}; learning rates "
                    f"{x['learning_rates']}){_timing_note(x.get('timing'))}{_before_note(x)}.\n"
                    for x in r.get("redone", [])],
                  f"| strategy | {METRIC_WORDS[metric]} (mean ± 95%) | {METRIC_WORDS[other]} | seconds charged "
                  f"| regret | {METRIC_WORDS[other]} regret | tied |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in sorted(r["strategies"].items(), key=lambda kv: -v["strategies"][kv[0]][metric]):
            mark = " (chosen)" if name == r["choice"] else ""
            mark += " (cheapest tied)" if name == v["cheapest_tied"] else ""
            j = v["strategies"][name]
            lines.append(f"| {name}{mark} | {_pm(m[metric])} | {_pm(m[other])} | {j['seconds']:.1f} | "
                         f"{j['regret_points']:.2f} | {j[f'{other}_regret_points']:.2f} | {_yes(j['tied'])} |")
    return "\n".join(lines) + "\n"


def run(scenarios_path: str | Path, out_dir: str | Path = "bench/results", params_path: str | Path = "params.yaml",
        only: list[str] | None = None, command: str | None = None, resume: bool = False) -> dict:
    """Run the scenarios (all, or `only`); each finished scenario is saved at once under out_dir/scenarios/,
    and decision.json/.md are rebuilt from every saved result of this file's scenarios, so a long run
    can be split (--only) or resumed without losing finished work. resume: leave out the scenarios already
    saved by this harness (an older harness's result is run again)."""
    import platform

    import torch

    spec = load_scenarios(scenarios_path)
    base = _base_params(spec, params_path)
    chosen = [s for s in spec.scenarios if not only or s.name in only]
    if only and len(chosen) != len(only):
        raise ConfigError(f"unknown scenario(s) {sorted(set(only) - {s.name for s in chosen})}; "
                          f"the file has {[s.name for s in spec.scenarios]}")
    out_dir = Path(out_dir)
    if resume:
        _, missing, stale = saved_results(spec.model_copy(update={"scenarios": chosen}), out_dir)
        chosen = [s for s in chosen if s.name in set(missing) | set(stale)]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    machine = f"{platform.node() or 'host'}: {device}, torch {torch.__version__}"
    for sc in chosen:
        with tempfile.TemporaryDirectory(prefix=f"driftfit-bench-{sc.name}-") as work:
            result = run_scenario(sc, spec, base, Path(work))
        result.update(machine=machine, finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                      command=command or f"driftfit bench decision --scenarios {scenarios_path} --out {out_dir}")
        write_json(out_dir / "scenarios" / f"{sc.name}.json", result)
    return combine(spec, base, out_dir, str(scenarios_path))


def redo(scenarios_path: str | Path, out_dir: str | Path, strategies: list[str],
         params_path: str | Path = "params.yaml", only: list[str] | None = None, command: str | None = None) -> dict:
    """Retrain only `strategies` in the saved scenarios (all of the file's, or `only`), after a change to how they
    train (a learning rate, a fix); every other figure of a scenario stays as saved. The same data, champion,
    seeds and replay as the first run; the test rows must still be the saved ones. Each result lists what was
    redone, when, by which command and with which learning rates and guards (`redone`); a scenario already redone
    with the same strategies, learning rates and guards is left out, so an interrupted run resumes.

    Seconds are only comparable within a scenario if they were measured under the same load, and the machine may
    be busier or idler now than when the scenario first ran. So one seed of a strategy that is not redone (the
    first of CALIBRATE_WITH the scenario has) is trained again as a yardstick: the redone strategies' seconds are
    scaled by its saved seconds over its seconds now, and the seconds as measured are kept beside them
    (`seconds_measured`). The yardstick's accuracy must come out as saved, which checks the rerun reproduces."""
    from driftfit.strategies import spec as strategy_spec
    from driftfit.policy.rules import replays_everything

    spec = load_scenarios(scenarios_path)
    base = _base_params(spec, params_path)
    for name in strategies:
        if name not in STRATEGIES or strategy_spec(name).fresh_weights or not strategy_spec(name).trains:
            raise ConfigError(f"--redo {name}: only a strategy that trains from the pretrained weights can be redone "
                              "on its own (scratch's tokenizer comes from the scenario's shift report: rerun the "
                              "scenario)")
    out_dir = Path(out_dir)
    results, by_name = _saved_to_redo(spec, out_dir, only, "--redo")
    rates, guards = _redo_settings(base)
    for result in results:
        if any(x["strategies"] == strategies and x["learning_rates"] == rates and x.get("guards") == guards
               for x in result.get("redone", [])):
            continue  # already redone with these learning rates and guards: an interrupted --redo resumes
        sc = by_name[result["name"]]
        data = scenario_data(sc, spec.budget, base.train.seed)
        check_test_rows(sc, data, result)
        with tempfile.TemporaryDirectory(prefix=f"driftfit-bench-{sc.name}-") as work:
            champion_dir = _champion(data["reference"], data["val"], base, Path(work))
            replay_all = replays_everything(result["measures"]["new_labels"], champion_dir is not None,
                                            result["choice"], base.strategy, result["rule"])
            timing = _yardstick(result, strategies, data, base, replay_all, champion_dir, Path(work))
            for name in strategies:
                _retrain(result, name, data, base, replay_all, champion_dir, Path(work), timing)
        result.setdefault("redone", []).append(_redone_entry(
            strategies, command or f"python -m bench.decision --scenarios {scenarios_path} --out {out_dir} --redo "
                                   + " --redo ".join(strategies), rates, guards, timing))
        write_json(out_dir / "scenarios" / f"{sc.name}.json", result)
    return combine(spec, base, out_dir, str(scenarios_path))


def _saved_to_redo(spec: ScenarioFile, out_dir: Path, only: list[str] | None, flag: str) -> tuple[list[dict], dict]:
    """The saved results a redo goes through (all of the file's, or `only`: each must be saved) and the file's
    scenarios by name."""
    results, _, _ = saved_results(spec, out_dir)
    unknown = sorted(set(only or []) - {r["name"] for r in results})
    if unknown:
        raise ConfigError(f"{flag}: no saved result under {out_dir} for {unknown}")
    return [r for r in results if not only or r["name"] in only], {s.name: s for s in spec.scenarios}


def _redo_settings(base: Params) -> tuple[dict, dict]:
    """(learning rates, training guards) a redo records: a redo under other ones reruns."""
    from driftfit.modalities.text.recipe import DIVERGENCE_RULE

    return ({k: getattr(base.train, k) for k in LEARNING_RATES},
            {"divergence_retries": base.train.divergence_retries, "divergence_rule": DIVERGENCE_RULE})


def _retrain(result: dict, name: str, data: dict, params: Params, replay_all: bool, champion_dir: Path | None,
             work: Path, timing: dict | None) -> None:
    """Train one strategy of a saved result again, in place; its seconds scaled by the yardstick's factor (the
    seconds as measured kept beside them)."""
    record = train_strategy(name, data, params, result["seeds"], result["labels"], replay_all, champion_dir, work)
    if timing is not None:
        measured, factor = record["seconds"], timing["factor"]
        record["seconds_measured"] = measured
        record["seconds"] = {"mean": round(measured["mean"] * factor, 2),
                             "per_seed": [round(t * factor, 2) for t in measured["per_seed"]]}
    result["strategies"][name] = record
    log.info("scenario %s: %s redone -> accuracy %s, %s s", result["name"], name, record["accuracy"]["mean"],
             record["seconds"]["mean"])


def _redone_entry(strategies: list[str], command: str, rates: dict, guards: dict, timing: dict | None,
                  **extra) -> dict:
    """What a result's `redone` list records of one redo."""
    return {"strategies": strategies, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command,
            "learning_rates": rates, "guards": guards, "timing": timing, **extra}


CHAMPION_STRATEGIES = ("skip", "ensemble")  # the oracle's strategies that read the champion's own head


def redo_champion(scenarios_path: str | Path, out_dir: str | Path, params_path: str | Path = "params.yaml",
                  only: list[str] | None = None, command: str | None = None) -> dict:
    """After a change to how the champion is trained (`_champion`, CHAMPION_FIT): in each saved scenario with a
    reference (all of the file's, or `only`), train the champion again, run the selector again (its measures score
    the champion on the incoming rows), and redo what reads the champion: skip (the champion itself), ensemble (it
    averages with it) and the new choice where the oracle lacks it. The other strategies start from the pretrained
    encoder (the head on the champion's encoder: the same frozen features) and keep their figures, trained on the
    same replay as the first run. Seconds are scaled by a yardstick, as in `redo`; the result records the choice it
    replaced under `redone`. A scenario whose champion is already trained this way is left out (a run resumes)."""
    from driftfit.policy.rules import replays_everything

    spec = load_scenarios(scenarios_path)
    base = _base_params(spec, params_path)
    out_dir = Path(out_dir)
    results, by_name = _saved_to_redo(spec, out_dir, only, "--redo-champion")
    rates, guards = _redo_settings(base)
    for result in results:
        if result["rows"]["reference"] is None or result.get("champion_fit") == CHAMPION_FIT:
            continue
        sc = by_name[result["name"]]
        data = scenario_data(sc, spec.budget, base.train.seed)
        check_test_rows(sc, data, result)
        replay_all = replays_everything(result["measures"]["new_labels"], True, result["choice"], base.strategy,
                                        result["rule"])  # the replay every saved strategy trained on
        before = {k: result[k] for k in ("choice", "rule", "selector_seconds")}
        with tempfile.TemporaryDirectory(prefix=f"driftfit-bench-{sc.name}-") as work:
            champion_dir, report, decision, settled, seconds = measure_and_select(data, base, Path(work))
            redone = [n for n in CHAMPION_STRATEGIES if n in result["strategies"]]
            redone += [decision["strategy"]] if decision["strategy"] not in result["strategies"] else []
            timing = _yardstick(result, redone, data, settled, replay_all, champion_dir, Path(work))
            factor = timing["factor"] if timing is not None else 1.0  # the selection's seconds too
            result.update(_selection_record(decision, report, seconds * factor), champion_fit=CHAMPION_FIT)
            for name in redone:
                _retrain(result, name, data, settled, replay_all, champion_dir, Path(work), timing)
        log.info("scenario %s: the selector chose %s (%s), before %s (%s)", sc.name, result["choice"], result["rule"],
                 before["choice"], before["rule"])
        result.setdefault("redone", []).append(_redone_entry(
            ["champion", *redone],
            command or f"python -m bench.decision --scenarios {scenarios_path} --out {out_dir} --redo-champion",
            rates, guards, timing, champion_fit=CHAMPION_FIT, before=before))
        write_json(out_dir / "scenarios" / f"{sc.name}.json", result)
    return combine(spec, base, out_dir, str(scenarios_path))


CALIBRATE_WITH = ("ia3", "lora", "partial", "full", "head")  # a redo's yardstick: the first the scenario has
YARDSTICK_FLOOR_SECONDS = 1.0  # a yardstick run shorter than this (either time) is too short to scale by


def _yardstick(result: dict, redone: list[str], data: dict, base: Params, replay_all: bool,
               champion_dir: Path | None, work: Path) -> dict | None:
    """Train the yardstick strategy's first seed again: {strategy, seconds saved and now, factor = saved / now,
    reproduced: whether its accuracy came out as saved}; None when the scenario has no yardstick or it took
    under a second either time (too short to scale by)."""
    name = next((n for n in CALIBRATE_WITH if n in result["strategies"] and n not in redone), None)
    if name is None:
        return None
    saved = result["strategies"][name]
    again = train_strategy(name, data, base, result["seeds"][:1], result["labels"], replay_all, champion_dir, work)
    before, now = saved["seconds"]["per_seed"][0], again["seconds"]["per_seed"][0]
    if min(before, now) < YARDSTICK_FLOOR_SECONDS:
        return None
    timing = {"strategy": name, "seed": result["seeds"][0], "saved_seconds": before, "seconds_now": now,
              "factor": round(before / now, 4),
              "reproduced": again["accuracy"]["per_seed"][0] == saved["accuracy"]["per_seed"][0]}
    log.info("scenario %s: yardstick %s took %.1f s now against %.1f s saved (x%.2f); accuracy %s", result["name"],
             name, now, before, timing["factor"], "as saved" if timing["reproduced"] else "NOT as saved")
    return timing


def _base_params(spec: ScenarioFile, params_path: str | Path, extra: dict | None = None) -> Params:
    """The params file under the scenario file's budget; `extra`: dotted overrides on top (e.g. probe settings)."""
    b = spec.budget
    return load_params(params_path, {
        "model.max_seq_len": b.max_seq_len, "train.epochs": b.epochs, "train.batch_size": b.batch_size,
        "train.max_steps": -1, "train.checkpoint_steps": 0,
        "strategy.force": None, **{f"train.{k}": v for k, v in b.learning_rates.items()}, **(extra or {})})


def saved_results(spec: ScenarioFile, out_dir: Path) -> tuple[list[dict], list[str], list[str]]:
    """The saved results of the file's scenarios (in file order), the names not run, and those saved by an older
    harness (no seeds, no predictions: they cannot be judged by the tie rule)."""
    results, missing, stale = [], [], []
    for sc in spec.scenarios:
        path = out_dir / "scenarios" / f"{sc.name}.json"
        if not path.is_file():
            missing.append(sc.name)
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        (results.append(r) if r.get("format") == FORMAT else stale.append(sc.name))
    return results, missing, stale


def combine(spec: ScenarioFile, base: Params, out_dir: Path, scenarios_path: str = "") -> dict:
    """decision.json + decision.md from the saved results of the file's scenarios (missing and stale ones listed)."""
    results, missing, stale = saved_results(spec, out_dir)
    verdicts = [stats.judge(r) for r in results]
    head = stats.headline(verdicts)
    slim = [{k: v for k, v in r.items() if k not in ("test_labels",)} |
            {"strategies": {n: {k: v for k, v in m.items() if k != "predictions"} for n, m in r["strategies"].items()}}
            for r in results]  # the predictions stay in scenarios/<name>.json
    out = {"scenario_file": scenarios_path,
           "command": sorted({r["command"] for r in results} | {x["command"] for r in results
                                                                  for x in r.get("redone", [])}),
           "machine": sorted({r["machine"] for r in results}) if results else [],
           "finished": max((r["finished"] for r in results), default=None),
           "budget": spec.budget.model_dump(), "seeds": spec.seeds, "selector_mode": base.strategy.mode,
           "headline": head, "not_run": missing, "stale": stale, "results": slim, "verdicts": verdicts}
    write_json(out_dir / "decision.json", out)
    write_text(out_dir / "decision.md", render_md(out))
    sel = head.get("policies", {}).get("selector", {})
    return {"scenarios": len(results), "not_run": len(missing), "stale": len(stale), **sel,
            "targets_met": [t["met"] for t in head.get("targets", [])]}


def current_choice(result: dict, base: Params) -> str:
    """The current policy's choice for a saved scenario: the rules (and learned rules, if params name them)
    re-applied to its saved measures; a forced or probed choice, or a result without measures, keeps what ran."""
    from driftfit.policy.rules import choose

    if result["rule"] == "forced" or result["rule"].startswith("probe") or not result.get("measures"):
        return result["choice"]
    measures = {"probe_memory_accuracy": None, "probe_memory_rows": None, **result["measures"]}
    return choose(measures, base.strategy)[0]


def rescore(out_dir: str | Path = "bench/results", scenarios_path: str | Path = "bench/scenarios.yaml",
            params_path: str | Path = "params.yaml") -> dict:
    """Re-score saved results under the current policy without training anything again; writes
    decision-rescored.md. Note: a policy revised after seeing these results is scored in-sample here."""
    spec, base = load_scenarios(scenarios_path), load_params(params_path)
    out_dir = Path(out_dir)
    results, _, stale = saved_results(spec, out_dir)
    rows, now, untrained = [], [], []
    for r in results:
        choice = current_choice(r, base)
        if choice not in r["strategies"]:  # the oracle never trained it: no figure to score
            untrained.append(f"{r['name']} ({choice})")
            continue
        a, b = stats.judge(r), stats.judge(r, choice=choice)
        now.append(b)
        rows.append(f"| {r['name']} | {r['rule']} | {a['choice']['strategy']} ({a['choice']['regret_points']:.2f}, "
                    f"{_yes(a['choice']['tied'])}) | {choice} ({b['choice']['regret_points']:.2f}, "
                    f"{_yes(b['choice']['tied'])}) | {b['best']} | {b['cheapest_tied']} |")
    sel = stats.headline(now).get("policies", {}).get("selector")
    md = ["# Decision benchmark, re-scored under the current policy", "",
          f"Command: `driftfit bench decision --rescore --scenarios {scenarios_path} --out {out_dir}` (no training: "
          "the saved oracle results, the current rules of `driftfit/policy/rules.py` (and strategy.learned_rules, if the "
          "params name them) re-applied to each scenario's saved measures).", "",
          "Caution: a policy revised after these results were seen is scored in-sample here; a fresh run of the "
          "benchmark (or new scenarios) is the out-of-sample check.", "",
          *([f"Saved by an older harness, not scored: {', '.join(stale)}.", ""] if stale else []),
          *([f"The current choice was not trained there, not scored: {', '.join(untrained)}.", ""]
            if untrained else []),
          (f"**{sel['share_tied_or_within_1']:.0%} of {sel['scenarios']}** scenarios tied with the best or within 1 "
           f"point; mean regret {sel['mean_regret_points']} points." if sel else "No saved results to score."), "",
          "| scenario | rule | chosen when run (regret, tied) | current policy (regret, tied) | best | cheapest tied |",
          "|---|---|---|---|---|---|", *rows]
    write_text(out_dir / "decision-rescored.md", "\n".join(md) + "\n")
    return {"scenarios": len(now), "stale": len(stale), "untrained": len(untrained), **(sel or {})}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from driftfit.errors import DriftfitError

    ap = argparse.ArgumentParser(prog="python -m bench.decision", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="bench/scenarios.yaml", help="scenario YAML file")
    ap.add_argument("--out", default="bench/results", help="folder for decision.json and decision.md")
    ap.add_argument("--params", default="params.yaml", help="base params (model, shift, strategy thresholds)")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="run only this scenario")
    ap.add_argument("--resume", action="store_true", help="leave out the scenarios already saved under --out "
                                                          "(with --only: those of the names given)")
    ap.add_argument("--redo", action="append", default=None, metavar="STRATEGY",
                    help="retrain only this strategy in the saved scenarios (with --only: those), keeping every "
                         "other figure: after a change to how it trains")
    ap.add_argument("--redo-champion", action="store_true",
                    help="train the saved scenarios' champions again (after a change to how), run the selector again "
                         "and redo what reads the champion (skip, ensemble, a new choice), keeping every other figure")
    ap.add_argument("--rescore", action="store_true", help="no training: re-score the saved results under the "
                                                           "current policy")
    ap.add_argument("--report", action="store_true", help="no training: rebuild decision.json and decision.md from "
                                                          "the saved results (after a change to how they are judged)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.rescore:
            print(json.dumps(rescore(args.out, args.scenarios, args.params)))
        elif args.report:
            spec = load_scenarios(args.scenarios)
            print(json.dumps(combine(spec, _base_params(spec, args.params), Path(args.out), args.scenarios)))
        elif args.redo_champion:
            print(json.dumps(redo_champion(args.scenarios, args.out, args.params, args.only,
                                           command=" ".join(["python -m bench.decision", *(argv or sys.argv[1:])]))))
        elif args.redo:
            print(json.dumps(redo(args.scenarios, args.out, args.redo, args.params, args.only,
                                  command=" ".join(["python -m bench.decision", *(argv or sys.argv[1:])]))))
        else:
            print(json.dumps(run(args.scenarios, args.out, args.params, args.only, resume=args.resume,
                                 command=" ".join(["python -m bench.decision",
                                                   *[a for a in (argv or sys.argv[1:]) if a != "--resume"]]))))
    except DriftfitError as err:
        print(f"bench decision: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
