"""Stream benchmark: week after week, does driftfit's policy beat the fixed schedules teams use instead?

    python -m bench.stream --spec bench/streams/shipped.yaml --out bench/results/stream [--only POLICY]
    driftfit bench stream --spec FILE [--out DIR]          (the same, from the project folder)

A stream is an ordered list of labelled batches. For every policy, a fresh project (its own registry and
data memory, under `--work`) receives the batches in order and runs the real library steps on each:
prepare + validate -> remember -> augment -> (shift -> select: driftfit only) -> train -> evaluate ->
promote. The policies:

  driftfit       the selector chooses (shift measures + rules), as the pipeline does
  never          the first batch trains `full`; the first model then serves forever
  head|ia3|full  always that strategy
  scratch        always retrain from scratch (fresh weights) on the whole memory
  full_every_k   `full` on every k-th accepted batch (k = `every_k`), the champion holds in between

Every promotion goes through the same gate (promote.*). Protocol, test on the near future: before
batch t is used for training, the serving champion is scored on batch t's test split and on the test
split of every batch accepted before it. Reported per policy (stream.json, stream.md, PNG plots):
time-averaged accuracy and macro-F1 on the next batch; final accuracy over all past test splits;
compute seconds (selector + training); retrains and promotions; promoted regressions (promotions after
which macro-F1 on some past batch's test split fell significantly more than promote.max_forgetting points:
the gate's paired bootstrap on that batch's rows, each batch alone) and point drops (fell by more than the
limit in the point estimate); gains blocked (rejected candidates significantly better on the new data that
forgot nothing significantly beyond the limit); bad batches rejected (and whether the champion and the memory
were left as they were). Every model's answer on every test row is saved, so these are re-scored from the
saved results; `--set promote.test=point` runs the stream under another gate (into its own --out).

Resumable: every finished (policy, batch) is saved at once under OUT/policies/<policy>.json; a re-run
continues where it stopped, and `--only POLICY` (repeatable) splits a long run. The report is rebuilt
from whatever is saved.

The spec (YAML; paths relative to the folder the command runs in; `chatterbot:<language>` reads the
chatterbot-corpus package, label = category):

    seed: 0                                   # row sampling and every run's train.seed
    budget: {epochs: 1, max_seq_len: 48, batch_size: 32}     # one budget for every policy
    params: {promote.max_forgetting: 5.0}     # other params.yaml overrides (dotted keys), for every policy
    every_k: 4
    policies: [driftfit, never, head, ia3, full, scratch, full_every_k]   # optional: a subset
    sources:                                  # name -> a source as in params.yaml's data.incoming
      sst2: {path: ../shared/data/sst2/train.tsv, text: sentence, label: label}
    batches:
      - name: w01
        take: {sst2: 1.0}                     # shares of the batch's rows per source (a mixture)
        rows: 240                             # rows to train on (the pipeline splits off validation)
        test_rows: 100                        # rows of the batch's own test split (same mixture)
        labels: {"0": negative, "1": positive}   # optional: rename labels; labels not listed are dropped
        corrupt: label_spelling               # optional: damage the batch; validation must reject it
        note: why this batch is in the stream

Rows are drawn without replacement (no text appears in two batches), after dropping texts that repeat
within a source. Corruptions: empty_texts, label_spelling, missing_labels, test_leak (see CORRUPTIONS).
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, model_validator

from driftfit.config import (Params, SourceConfig, StrictModel, parse_params, read_yaml_mapping, read_yaml_model,
                             set_dotted)
from driftfit.errors import ConfigError, DriftfitError
from driftfit.io import read_json, write_json, write_text

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]  # the project: its params.yaml is every policy's base


# ---- the spec ---------------------------------------------------------------------------------

def _blank_texts(train: pd.DataFrame, test: pd.DataFrame, rng) -> pd.DataFrame:
    rows = rng.choice(len(train), size=max(1, len(train) // 5), replace=False)
    train = train.copy()
    train.loc[train.index[rows], "text"] = "   "
    return train


def _respell_labels(train: pd.DataFrame, test: pd.DataFrame, rng) -> pd.DataFrame:
    rows = rng.choice(len(train), size=max(2, len(train) // 3), replace=False)
    train = train.copy()
    spelt = [f"{v.upper()} " if i % 2 else v.capitalize() for i, v in enumerate(train["label"].iloc[rows])]
    train.loc[train.index[rows], "label"] = spelt
    return train


def _drop_labels(train: pd.DataFrame, test: pd.DataFrame, rng) -> pd.DataFrame:
    rows = rng.choice(len(train), size=max(1, len(train) // 5), replace=False)
    train = train.copy().astype({"label": object})
    train.loc[train.index[rows], "label"] = None
    return train


def _leak_test(train: pd.DataFrame, test: pd.DataFrame, rng) -> pd.DataFrame:
    copied = test.sample(n=max(1, len(test) // 3), random_state=int(rng.integers(1 << 31)))
    return pd.concat([train, copied], ignore_index=True)


# name -> f(train, test, rng) -> the damaged training file's rows
CORRUPTIONS: dict[str, Callable] = {
    "empty_texts": _blank_texts,        # a fifth of the texts blank
    "label_spelling": _respell_labels,  # a third of the labels in other case/with spaces ('POS ', 'Pos')
    "missing_labels": _drop_labels,     # a fifth of the labels empty
    "test_leak": _leak_test,            # a third of the test rows copied into the training file
}
POLICIES = ("driftfit", "never", "head", "ia3", "full", "scratch", "full_every_k")


class Budget(StrictModel):
    epochs: float = Field(1, gt=0)
    max_seq_len: int = Field(48, gt=0)
    batch_size: int = Field(32, gt=0)


class Batch(StrictModel):
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    take: dict[str, float] = Field(..., min_length=1)
    rows: int = Field(..., gt=0)
    test_rows: int = Field(..., gt=0)
    labels: dict[str, str] | None = None
    corrupt: Literal[tuple(CORRUPTIONS)] | None = None  # type: ignore[valid-type]
    note: str = ""

    @model_validator(mode="after")
    def _shares(self) -> "Batch":
        if any(v <= 0 for v in self.take.values()) or abs(sum(self.take.values()) - 1) > 1e-6:
            raise ValueError(f"batch {self.name}: take's shares must be positive and sum to 1, got {self.take}")
        return self


class StreamSpec(StrictModel):
    seed: int = 0
    budget: Budget = Budget()
    params: dict[str, object] = {}
    every_k: int = Field(4, gt=0)
    policies: list[Literal[POLICIES]] = list(POLICIES)  # type: ignore[valid-type]
    sources: dict[str, SourceConfig] = Field(..., min_length=1)
    batches: list[Batch] = Field(..., min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> "StreamSpec":
        names = [b.name for b in self.batches]
        if len(set(names)) != len(names):
            raise ValueError(f"batch names must be unique, got {names}")
        for b in self.batches:
            unknown = set(b.take) - set(self.sources)
            if unknown:
                raise ValueError(f"batch {b.name}: unknown source(s) {sorted(unknown)}; the spec's sources are "
                                 f"{sorted(self.sources)}")
        if self.batches[0].corrupt:
            raise ValueError(f"the first batch ({self.batches[0].name}) must be clean: it trains the first model")
        return self


def load_spec(path: str | Path) -> StreamSpec:
    return read_yaml_model(StreamSpec, path, "stream spec", f"{Path(__file__).name}'s docstring")


# ---- the batches, written once and shared by every policy -------------------------------------

def _pool(src: SourceConfig, seed: int) -> pd.DataFrame:
    """A source's rows, texts repeated within it dropped, in a seeded random order."""
    from bench.sources import read_source
    from driftfit.modalities.text.texts import normalise

    df = read_source(src, seed)
    df = df.assign(label=df["label"].astype(str))
    df = df[~normalise(df["text"].astype(str)).duplicated()]
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def materialise(spec: StreamSpec, data_dir: Path) -> list[dict]:
    """Write every batch's train.csv and test.csv under data_dir/<batch>/ (once: a spec whose batches
    changed writes them again) and return what each holds."""
    from driftfit.io import atomic_dir

    fingerprint = json.dumps(spec.model_dump(mode="json", include={"seed", "sources", "batches"}), sort_keys=True)
    index = data_dir / "batches.json"
    if index.is_file() and read_json(index).get("spec") == fingerprint:
        return read_json(index)["batches"]
    pools = {name: _pool(src, spec.seed) for name, src in spec.sources.items()}
    cursor = {name: 0 for name in pools}
    rng = np.random.default_rng(spec.seed)
    info = []
    with atomic_dir(data_dir) as tmp:
        for b in spec.batches:
            parts = {"train": [], "test": []}
            for name, share in b.take.items():
                pool = pools[name]
                if b.labels is not None:
                    pool = pool[pool["label"].isin(b.labels)]
                pool = pool[pool.index >= cursor[name]]
                n_train, n_test = round(b.rows * share), round(b.test_rows * share)
                if len(pool) < n_train + n_test:
                    raise ConfigError(f"batch {b.name}: source '{name}' has {len(pool)} unused rows left, "
                                      f"the batch needs {n_train + n_test}")
                taken = pool.iloc[: n_train + n_test]
                cursor[name] = int(taken.index.max()) + 1  # rows are never drawn twice
                parts["train"].append(taken.iloc[:n_train])
                parts["test"].append(taken.iloc[n_train:])
            train, test = (pd.concat(parts[k]).sample(frac=1.0, random_state=spec.seed)[["text", "label"]]
                           for k in ("train", "test"))
            if b.labels is not None:
                train, test = (d.assign(label=d["label"].map(b.labels)) for d in (train, test))
            if b.corrupt:
                train = CORRUPTIONS[b.corrupt](train.reset_index(drop=True), test, rng)
            (tmp / b.name).mkdir()
            train.to_csv(tmp / b.name / "train.csv", index=False)
            test.to_csv(tmp / b.name / "test.csv", index=False)
            info.append({"name": b.name, "train_rows": len(train), "test_rows": len(test), "take": b.take,
                         "labels": sorted(test["label"].astype(str).unique()), "corrupt": b.corrupt,
                         "note": b.note})
        write_json(tmp / "batches.json", {"spec": fingerprint, "batches": info})
    return info


# ---- one policy over the stream ---------------------------------------------------------------

def fixed_strategy(policy: str, accepted_before: int, every_k: int, has_champion: bool) -> str | None:
    """The strategy a fixed schedule runs on the next accepted batch; None: driftfit's selector decides.
    Every schedule trains until it has a first champion (a first model the gate refused serves nothing)."""
    if policy == "driftfit":
        return None
    if policy == "never":
        return "skip" if has_champion else "full"
    if policy == "full_every_k":
        return "full" if accepted_before % every_k == 0 or not has_champion else "skip"
    return policy


def workspace_params(spec: StreamSpec, policy: str, work: Path, batch_dir: Path) -> Params:
    """The project's params.yaml under the stream's budget, anchored in the policy's own workspace (its
    registry, memory and reports), reading this batch's files."""
    raw = read_yaml_mapping(ROOT / "params.yaml", "params file")
    b = spec.budget
    overrides = {
        "model.max_seq_len": b.max_seq_len, "train.epochs": b.epochs, "train.batch_size": b.batch_size,
        "train.max_steps": -1, "train.checkpoint_steps": 0, "train.seed": spec.seed,
        "evaluate.latency_examples": 0, "strategy.force": None, "search.enabled": False,
        "validate.contract": str(ROOT / "data" / "contract.yaml"),
        "data.reference": None,
        "data.incoming.path": str(batch_dir / "train.csv"), "data.incoming.test_path": str(batch_dir / "test.csv"),
        "data.incoming.text": "text", "data.incoming.label": "label", "data.incoming.header": True,
        "data.incoming.sample": None,
        **({"train.replay_all_for": ["scratch"]} if policy == "scratch" else {}),
        **spec.params,
    }
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "params.yaml", yaml.safe_dump(raw, sort_keys=False))  # to read back what ran
    return parse_params(raw, str(work / "params.yaml")).resolve(work)


def score(model_dir: Path | None, tests: dict[str, pd.DataFrame], params: Params,
          known_labels: list[str] | None = None) -> dict[str, dict]:
    """Accuracy and macro-F1 of what serves on each test frame (labels it doesn't know count as wrong):
    the champion's folder, or with no champion yet the pretrained model zero-shot (the gate's baseline) over
    `known_labels`, the labels of the batches accepted so far: a serving model cannot know the names of
    labels that have not arrived yet (None: the test frames' labels, for the very first batch)."""
    from sklearn.metrics import accuracy_score, f1_score

    from driftfit.modalities.text.model import load_classifier, load_tokenizer, pick_device, predict_proba
    from driftfit.modalities.text.zero_shot import zero_shot_classifier

    if not tests:
        return {}
    if model_dir is not None:
        model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    else:
        labels = sorted(known_labels) if known_labels else sorted({str(v) for df in tests.values() for v in df["label"]})
        model, tokenizer = zero_shot_classifier(params, labels), load_tokenizer(params.model)
    device = pick_device(params.train.device)
    out = {}
    for name, df in tests.items():
        probs = predict_proba(model, tokenizer, list(df["text"]), params.model.max_seq_len,
                              params.evaluate.batch_size, device)
        pred, true = [labels[i] for i in probs.argmax(1)], list(df["label"].astype(str))
        out[name] = {"accuracy": round(float(accuracy_score(true, pred)), 4),
                     "macro_f1": round(float(f1_score(true, pred, labels=sorted(set(true)), average="macro",
                                                      zero_division=0)), 4),
                     "answers": pred}
    return out


def encode_answers(scores: dict[str, dict], known: list[str]) -> dict[str, dict]:
    """score()'s result with each test set's answers as one character per row (bench.stats.encode)."""
    from bench.stats import encode

    return {name: {**s, "answers": encode(s["answers"], known)} if "answers" in s else s for name, s in scores.items()}


def gate_rows(params: Params, names: dict[str, str], known: list[str]) -> dict[str, dict]:
    """What the gate compared, per test set (the new batch's 'test', each past batch by its stream name): every
    model's answers from evaluate's predictions.csv, encoded (names: memory batch id -> stream batch name)."""
    from bench.stats import encode
    from driftfit.evaluation.gate import PREDICTIONS

    rows = pd.read_csv(Path(params.paths.evaluation) / PREDICTIONS, dtype=str, keep_default_na=False)
    out = {}
    for (split, batch), g in rows.groupby(["split", "batch"], sort=False):
        key = "test" if split == "test" else names.get(batch, batch or "reference")
        out[key] = {m: encode(list(g[m]), known) for m in ("candidate", "champion", "baseline") if m in g}
    return out


def stream_labels(data_dir: Path, batches: list[dict]) -> list[str]:
    """Every label in the stream's files (train and test of every batch): the alphabet answers are saved in."""
    return sorted({str(v) for b in batches for part in ("train.csv", "test.csv")
                   for v in pd.read_csv(data_dir / b["name"] / part, dtype={"label": str}, keep_default_na=False)["label"]})


def known_labels(data_dir: Path, accepted: list[str]) -> list[str]:
    """The labels of the batches accepted so far (their training files): all a serving model can know."""
    return sorted({str(v) for name in accepted for v in pd.read_csv(data_dir / name / "train.csv", dtype={"label": str},
                                                                    keep_default_na=False)["label"]})


def _fingerprint(params: Params) -> dict:
    """What a rejected batch must leave as it was: the champion pointer and the memory pointer."""
    from driftfit.state import memory

    pointer = Path(params.paths.registry) / "champion.json"
    return {"champion": pointer.read_text() if pointer.is_file() else None,
            "memory": memory.state(params.paths.memory)}


def run_batch(policy: str, spec: StreamSpec, batch: dict, data_dir: Path, work: Path,
              accepted: list[str], remembered: dict[str, str], labels: list[str]) -> dict:
    """One batch through one policy's project; returns its record (saved by the caller). remembered: memory batch
    id -> stream batch name of the batches accepted so far; labels: the stream's labels (answers are encoded)."""
    from driftfit.pipeline import runner
    from driftfit.state import registry

    params = workspace_params(spec, policy, work, data_dir / batch["name"])
    tests = {name: pd.read_csv(data_dir / name / "test.csv", dtype={"label": str}, keep_default_na=False)
             for name in [*accepted, batch["name"]]}
    champion = registry.champion_dir(params.paths.registry)
    near = score(champion, tests, params, known_labels(data_dir, accepted))
    record: dict = {"batch": batch["name"], "champion_before": champion.name if champion else None,
                    "served": champion.name if champion else "pretrained, zero-shot",
                    "near_future": encode_answers(near, labels), "seconds": {}}

    def timed(step: str, fn):
        t = time.perf_counter()
        try:
            return fn(params)
        finally:
            record["seconds"][step] = round(time.perf_counter() - t, 2)

    before = _fingerprint(params)
    try:
        timed("prepare", runner("prepare"))
        timed("validate", runner("validate"))
    except DriftfitError as err:
        record.update(accepted=False, rejected=str(err).splitlines()[0],
                      untouched=_fingerprint(params) == before)
        return record
    record["accepted"] = True
    record["memory"] = timed("remember", runner("remember"))["batch"]
    timed("augment", runner("augment"))
    forced = fixed_strategy(policy, len(accepted), spec.every_k, champion is not None)
    if forced is not None:  # a fixed schedule runs as the product runs a forced strategy (its replay included)
        params = params.model_copy(update={"strategy": params.strategy.model_copy(update={"force": forced})})
    timed("shift", runner("measure-shift"))
    decision = timed("select", runner("select-strategy"))
    record["strategy"], record["rule"] = decision["strategy"], decision["rule"]
    train_log = timed("train", runner("train"))
    record["trained"] = bool(train_log.get("trained"))
    if record["trained"]:
        timed("evaluate", runner("evaluate"))
        verdict = timed("promote", runner("promote"))
        record.update(promoted=bool(verdict["promoted"]), verdict=verdict["reason"],
                      champion_after=verdict["champion"],
                      gate=gate_rows(params, {**remembered, record["memory"]: batch["name"]}, labels))
    else:
        record.update(promoted=False, verdict=f"kept the champion: '{decision['strategy']}' trains nothing",
                      champion_after=record["champion_before"])
    record["compute_seconds"] = round(sum(record["seconds"].get(s, 0.0) for s in ("shift", "select", "train")), 2)
    return record


def run_policy(policy: str, spec: StreamSpec, batches: list[dict], data_dir: Path, work_root: Path,
               out_dir: Path) -> dict:
    """Every batch in order through one policy, resuming after the last saved batch."""
    path = out_dir / "policies" / f"{policy}.json"
    labels = stream_labels(data_dir, batches)
    saved = read_json(path) if path.is_file() else {"policy": policy, "params": spec.params, "labels": labels,
                                                    "batches": []}
    names = [b["name"] for b in batches]
    if [r["batch"] for r in saved["batches"]] != names[: len(saved["batches"])]:
        raise ConfigError(f"{path}: saved batches {[r['batch'] for r in saved['batches']]} are not the start of "
                          f"this stream {names}; remove it (and {work_root / policy}) to run this policy again")
    if saved["batches"] and (saved.get("params", {}) != spec.params or saved.get("labels") != labels):
        raise ConfigError(f"{path} was run with params {saved.get('params', {})} (and labels {saved.get('labels')}), "
                          f"this run has {spec.params} ({labels}); remove it (and {work_root / policy}) to run "
                          "this policy again, or run into another --out")
    work = work_root / policy
    if not saved["batches"] and work.exists():
        shutil.rmtree(work)  # a fresh run starts from an empty project
    for batch in batches[len(saved["batches"]):]:
        accepted = [r["batch"] for r in saved["batches"] if r.get("accepted")]
        remembered = {r["memory"]: r["batch"] for r in saved["batches"] if r.get("accepted")}
        log.info("stream %s: batch %s", policy, batch["name"])
        record = run_batch(policy, spec, batch, data_dir, work, accepted, remembered, labels)
        log.info("stream %s: %s -> %s", policy, batch["name"],
                 record.get("verdict") or f"rejected: {record.get('rejected')}")
        saved["batches"].append(record)
        write_json(path, saved)  # saved at once: a killed run resumes after this batch
    if "final" not in saved:
        from driftfit.state import registry

        params = workspace_params(spec, policy, work, data_dir / batches[-1]["name"])
        accepted = [r["batch"] for r in saved["batches"] if r.get("accepted")]
        tests = {n: pd.read_csv(data_dir / n / "test.csv", dtype={"label": str}, keep_default_na=False)
                 for n in accepted}
        champion = registry.champion_dir(params.paths.registry)
        saved["final"] = {"champion": champion.name if champion else None,
                          "scores": encode_answers(score(champion, tests, params), labels)}
        write_json(path, saved)
    return saved


# ---- the report -------------------------------------------------------------------------------

def _answers(scores: dict) -> np.ndarray | None:
    from bench.stats import decode

    return decode(scores["answers"]) if "answers" in scores else None


def losses_beyond(truth: dict[str, str], before: dict, after: dict, gate) -> dict[str, dict]:
    """Per test set both were scored on: after minus before macro-F1 (points), its interval, and whether the loss
    is significantly beyond promote.max_forgetting on that set alone (its own interval; no correction for judging
    several: the stricter reading of "a significant loss on some past batch")."""
    from bench.stats import decode
    from driftfit.evaluation import gate as stats

    out = {}
    for b in before:
        new, old = _answers(after.get(b, {})), _answers(before[b])
        if b not in truth or new is None or old is None:
            continue
        paired = stats.paired_bootstrap(decode(truth[b]), new, old, gate.resamples, gate.seed)
        low, high = paired.interval(gate.confidence)
        out[b] = {"difference": round(paired.difference, 2), "low": round(low, 2), "high": round(high, 2),
                  "beyond": paired.p_not_below(-gate.max_forgetting) <= stats.alpha_of(gate.confidence)}
    return out


def blocked_gain(r: dict, truth: dict[str, str], gate) -> dict | None:
    """A rejected candidate that was a real gain: significantly better than the champion on the new test split,
    not significantly below the baseline (when the gate asks), and no past batch lost significantly more than
    max_forgetting (each alone, as in losses_beyond). None when it was not, or nothing was recorded to tell."""
    from bench.stats import decode
    from driftfit.evaluation import gate as stats

    rows = r.get("gate") or {}
    new = rows.get("test") or {}
    if r.get("promoted") or "champion" not in new or r["batch"] not in truth:
        return None
    t = decode(truth[r["batch"]])
    kw = {"confidence": gate.confidence, "resamples": gate.resamples, "seed": gate.seed}
    gain = stats.judge_gain(t, decode(new["candidate"]), decode(new["champion"]), gate.min_improvement, **kw)
    if gain["verdict"] != "gain":
        return None
    if gate.beat_baseline and "baseline" in new and stats.judge_gain(
            t, decode(new["candidate"]), decode(new["baseline"]), 0.0, **kw)["verdict"] == "worse":
        return None
    past = {b: {"answers": v["champion"]} for b, v in rows.items() if b != "test" and "champion" in v}
    cand = {b: {"answers": v["candidate"]} for b, v in rows.items() if b != "test" and "candidate" in v}
    if any(d["beyond"] for d in losses_beyond(truth, past, cand, gate).values()):
        return None
    return {"batch": r["batch"], "gain": gain["difference"], "low": gain["low"], "high": gain["high"]}


WEEK_RESAMPLES = 2000  # draws of the weeks for the intervals of time-averaged figures


def week_interval(values: list[float], seed: int = 0) -> list[float] | None:
    """The 95% percentile interval of the mean of per-week values, the weeks resampled with replacement: how much
    a time-averaged figure owes to which weeks the stream happened to have (None for fewer than two weeks)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    draws = x[np.random.default_rng(seed).integers(0, len(x), size=(WEEK_RESAMPLES, len(x)))].mean(axis=1)
    return [round(float(v), 4) for v in np.quantile(draws, [0.025, 0.975])]


def summarise(saved: dict, gate, truth: dict[str, str]) -> dict:
    """Per policy: the near-future averages, final accuracy, compute, retrains, promotions, promoted regressions
    (significant, and by the point estimates), gains blocked. gate: the PromoteConfig whose max_forgetting,
    min_improvement and bootstrap settings define a regression and a gain; truth: each batch's test labels."""
    rows = saved["batches"]
    scored = {r["batch"]: r["near_future"][r["batch"]] for r in rows  # each accepted week, before it trained
              if r.get("accepted") and r["batch"] in r["near_future"]}
    nf = list(scored.values())
    regressions, point_drops = [], []
    for i, r in enumerate(rows):
        if not r.get("promoted"):
            continue
        after = next((x["near_future"] for x in rows[i + 1:] if x["near_future"]), None)
        after = after if after is not None else saved.get("final", {}).get("scores", {})
        past = {b: s for b, s in r["near_future"].items() if b != r["batch"]}  # the old champion, before t
        drops = {b: round(100 * (s["macro_f1"] - after[b]["macro_f1"]), 2) for b, s in past.items() if b in after}
        worst = max(drops, key=drops.get) if drops else None
        if worst is not None and drops[worst] > gate.max_forgetting:
            point_drops.append({"batch": r["batch"], "past_batch": worst, "macro_f1_points_lost": drops[worst]})
        beyond = {b: d for b, d in losses_beyond(truth, past, after, gate).items() if d["beyond"]}
        if beyond:
            b = min(beyond, key=lambda k: beyond[k]["difference"])
            regressions.append({"batch": r["batch"], "past_batch": b, **beyond[b]})
    blocked = [g for r in rows if r.get("trained") and (g := blocked_gain(r, truth, gate))]
    final = saved.get("final", {}).get("scores", {})
    rejected = [r for r in rows if r.get("accepted") is False]
    return {
        "near_future_accuracy": round(float(np.mean([s["accuracy"] for s in nf])), 4) if nf else None,
        "near_future_accuracy_ci95_weeks": week_interval([s["accuracy"] for s in nf]),
        "near_future_by_batch": {batch: s["accuracy"] for batch, s in scored.items()},
        "near_future_macro_f1": round(float(np.mean([s["macro_f1"] for s in nf])), 4) if nf else None,
        "scored_batches": len(nf),
        "final_accuracy": round(float(np.mean([s["accuracy"] for s in final.values()])), 4) if final else None,
        "final_macro_f1": round(float(np.mean([s["macro_f1"] for s in final.values()])), 4) if final else None,
        "compute_seconds": round(sum(r.get("compute_seconds", 0.0) for r in rows), 1),
        "wall_seconds": round(sum(sum(r["seconds"].values()) for r in rows), 1),
        "retrains": sum(bool(r.get("trained")) for r in rows),
        "promotions": sum(bool(r.get("promoted")) for r in rows),
        "promoted_regressions": regressions,
        "point_drops_beyond_limit": point_drops,
        "gains_blocked": blocked,
        "rejected": [r["batch"] for r in rejected],
        "rejected_untouched": all(r.get("untouched") for r in rejected),
        "strategies": [r.get("strategy") or ("rejected" if r.get("accepted") is False else None) for r in rows],
        "complete": "final" in saved,
    }


def targets(summary: dict[str, dict], corrupt: list[str]) -> dict:
    """The issue's targets for driftfit's policy against the fixed schedules, each with its figures."""
    d = summary.get("driftfit")
    fixed = {p: s for p, s in summary.items() if p != "driftfit" and s["near_future_accuracy"] is not None}
    if not d or d["near_future_accuracy"] is None or not fixed:
        return {}
    best = max(fixed, key=lambda p: fixed[p]["near_future_accuracy"])
    gap = round(100 * (d["near_future_accuracy"] - fixed[best]["near_future_accuracy"]), 2)
    mine, theirs = d.get("near_future_by_batch", {}), fixed[best].get("near_future_by_batch", {})
    both = [w for w in mine if w in theirs]  # weeks both scored, paired
    ci = week_interval([100 * (mine[w] - theirs[w]) for w in both])
    out = {"accuracy": {"best_fixed": best, "points_vs_best_fixed": gap, "ci95_weeks": ci, "target": ">= -0.5",
                        "met": gap >= -0.5}}
    if "full" in summary and summary["full"]["compute_seconds"]:
        share = round(d["compute_seconds"] / summary["full"]["compute_seconds"], 3)
        out["compute"] = {"share_of_always_full": share, "target": "<= 0.30", "met": share <= 0.30}
    out["regressions"] = {"promoted_regressions": len(d["promoted_regressions"]), "target": 0,
                          "met": not d["promoted_regressions"]}
    out["bad_batches"] = {"rejected": d["rejected"], "expected": corrupt,
                          "met": sorted(d["rejected"]) == sorted(corrupt) and d["rejected_untouched"]}
    return out


def plot(out_dir: Path, spec: StreamSpec, saved: dict[str, dict], summary: dict[str, dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [b.name for b in spec.batches]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for policy, s in saved.items():
        xs, ys = [], []
        for r in s["batches"]:
            score_ = r["near_future"].get(r["batch"])
            if r.get("accepted") and score_:
                xs.append(names.index(r["batch"]))
                ys.append(score_["accuracy"])
        ax.plot(xs, ys, marker="o", linewidth=2.2 if policy == "driftfit" else 1.2, label=policy)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("accuracy on the next batch (before training on it)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "stream_accuracy.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for policy, s in summary.items():
        if s["near_future_accuracy"] is None:
            continue
        ax.scatter(s["compute_seconds"], s["near_future_accuracy"], s=60)
        ax.annotate(policy, (s["compute_seconds"], s["near_future_accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("compute seconds (selector + training), whole stream")
    ax.set_ylabel("time-averaged accuracy on the next batch")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "stream_compute.png", dpi=110)
    plt.close(fig)
    return ["stream_accuracy.png", "stream_compute.png"]


def render_md(out: dict) -> str:
    lines = ["# Stream benchmark", "",
             "Command: " + ", ".join(f"`{c}`" for c in out["command"]) + "  ",
             f"Machine: {'; '.join(out['machine'])}; budget {out['budget']}; params beyond params.yaml: "
             f"{out.get('params') or 'none'}; gate max_forgetting {out['max_forgetting']} points.", "",
             "A **promoted regression** is a promotion after which the serving model lost significantly more than "
             "promote.max_forgetting macro-F1 points on some past batch's test split: the paired bootstrap of the "
             "gate (driftfit/evaluation/gate.py) on that batch's rows, its own interval at promote.confidence entirely "
             "below -max_forgetting (each batch alone, no correction). *Point drops* counts the promotions after which "
             "some past batch's point estimate fell by more than max_forgetting (the definition before the paired "
             "test). A **gain blocked** is a rejected candidate that was significantly better than the champion on "
             "the new test split (interval above promote.min_improvement), not significantly below the baseline, and "
             "lost significantly more than max_forgetting on no past batch (each alone).", ""]
    if out["not_run"]:
        lines += [f"Not finished yet: {', '.join(out['not_run'])}.", ""]
    t = out["targets"]
    if t:
        lines += ["## Targets (driftfit's policy)", ""]
        a = t["accuracy"]
        ci = a.get("ci95_weeks")
        lines.append(f"- time-averaged accuracy {a['points_vs_best_fixed']:+.2f} points against the best fixed "
                     f"schedule ({a['best_fixed']})"
                     + (f" (95% over the weeks, paired: {ci[0]:+.2f} to {ci[1]:+.2f})" if ci else "")
                     + f"; target >= -0.5: **{'met' if a['met'] else 'missed'}**")
        if "compute" in t:
            c = t["compute"]
            lines.append(f"- compute {c['share_of_always_full']:.1%} of always-full; target <= 30%: "
                         f"**{'met' if c['met'] else 'missed'}**")
        r = t["regressions"]
        lines.append(f"- promoted regressions: {r['promoted_regressions']}; target 0: "
                     f"**{'met' if r['met'] else 'missed'}**")
        bb = t["bad_batches"]
        lines.append(f"- bad batches rejected: {bb['rejected'] or 'none'} (corrupted: {bb['expected'] or 'none'}), "
                     f"champion and memory untouched: **{'met' if bb['met'] else 'missed'}**")
        lines.append("")
    lines += ["## Policies", "",
              "Next-batch accuracy: the serving champion's on each week's test split before it trained on it, "
              "averaged over the weeks; in brackets the 95% interval of that mean when the weeks are resampled "
              "(how much it owes to which weeks the stream had). Every policy here ran once, with one seed.", "",
              "| policy | accuracy, next batch | macro-F1, next batch | final accuracy, all past tests | "
              "compute s | retrains | promotions | promoted regressions | point drops | gains blocked | rejected |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    def ci(s):
        c = s.get("near_future_accuracy_ci95_weeks")
        return "" if not c else f" ({c[0]:.3f}-{c[1]:.3f})"

    for p, s in out["policies"].items():
        lines.append(f"| {p}{'' if s['complete'] else ' (unfinished)'} | "
                     f"{f(s['near_future_accuracy'])}{ci(s)} | "
                     f"{f(s['near_future_macro_f1'])} | {f(s['final_accuracy'])} | {s['compute_seconds']:.0f} | "
                     f"{s['retrains']} | {s['promotions']} | {len(s['promoted_regressions'])} | "
                     f"{len(s.get('point_drops_beyond_limit', []))} | {len(s.get('gains_blocked', []))} | "
                     f"{len(s['rejected'])} |")
    found = [(p, kind, x) for p, s in out["policies"].items()
             for kind in ("promoted_regressions", "gains_blocked") for x in s.get(kind, [])]
    if found:
        lines += ["", "| policy | promoted regression or gain blocked | week | past batch | difference (points) | "
                      "interval |", "|---|---|---|---|---|---|"]
        lines += [f"| {p} | {'regression' if kind == 'promoted_regressions' else 'gain blocked'} | {x['batch']} | "
                  f"{x.get('past_batch', '(new data)')} | {x.get('difference', x.get('gain')):+.1f} | "
                  f"{x['low']:+.1f} to {x['high']:+.1f} |" for p, kind, x in found]
    lines += ["", "![accuracy over time](stream_accuracy.png) ![accuracy against compute](stream_compute.png)", "",
              "## Batches", "", "| batch | rows (train/test) | mix | labels | note |", "|---|---|---|---|---|"]
    for b in out["batches"]:
        mix = ", ".join(f"{k} {v:.0%}" for k, v in b["take"].items()) + (f"; corrupt: {b['corrupt']}"
                                                                          if b["corrupt"] else "")
        lines.append(f"| {b['name']} | {b['train_rows']}/{b['test_rows']} | {mix} | {', '.join(b['labels'])} | "
                     f"{b['note']} |")
    lines += ["", "## What each policy did", "",
              "Per batch: the strategy (or `rejected`), then `+` when the candidate was promoted; the accuracy is "
              "the serving champion's on that batch's test split before it trained on it.", "",
              "| batch | " + " | ".join(out["policies"]) + " |", "|---|" + "---|" * len(out["policies"])]
    for i, b in enumerate(out["batches"]):
        cells = []
        for p in out["policies"]:
            rows = out["runs"][p]["batches"]
            if i >= len(rows):
                cells.append("")
                continue
            r = rows[i]
            acc = r["near_future"].get(r["batch"], {}).get("accuracy")
            what = "rejected" if r.get("accepted") is False else f"{r['strategy']}{'+' if r.get('promoted') else ''}"
            cells.append(f"{what} ({'-' if acc is None else f'{acc:.2f}'})")
        lines.append(f"| {b['name']} | " + " | ".join(cells) + " |")
    d = out["runs"].get("driftfit")
    if d:
        lines += ["", "## driftfit's reasons", ""]
        for r in d["batches"]:
            lines.append(f"- **{r['batch']}**: " + (f"rejected: {r['rejected']}" if r.get("accepted") is False
                         else f"`{r['strategy']}` (rule {r['rule']}); {r['verdict']}"))
    return "\n".join(lines) + "\n"


def report(spec: StreamSpec, spec_path: str, out_dir: Path, batches: list[dict], command: str | None = None) -> dict:
    """stream.json, stream.md and the plots from whatever is saved under out_dir/policies."""
    saved = {p: read_json(out_dir / "policies" / f"{p}.json") for p in spec.policies
             if (out_dir / "policies" / f"{p}.json").is_file()}
    gate = stream_gate(spec)
    previous = read_json(out_dir / "stream.json") if (out_dir / "stream.json").is_file() else {}
    truth = test_labels(out_dir / "data", batches, saved) or previous.get("truth", {})
    summary = {p: summarise(s, gate, truth) for p, s in saved.items()}
    corrupt = [b.name for b in spec.batches if b.corrupt]
    commands = set(previous.get("command", [])) | ({command} if command else set())
    machines = set(previous.get("machine", [])) | {_machine()}
    out = {"spec": spec_path, "command": sorted(commands), "machine": sorted(machines),
           "budget": spec.budget.model_dump(), "params": spec.params, "max_forgetting": gate.max_forgetting,
           "gate": gate.model_dump(), "batches": batches, "truth": truth,
           "not_run": [p for p in spec.policies if not summary.get(p, {}).get("complete")],
           "targets": targets(summary, corrupt), "policies": summary, "runs": saved}
    out["plots"] = plot(out_dir, spec, saved, summary) if saved else []
    write_json(out_dir / "stream.json", out)
    write_text(out_dir / "stream.md", render_md(out))
    return {"targets": out["targets"], "not_run": out["not_run"],
            "policies": {p: {k: s[k] for k in ("near_future_accuracy", "compute_seconds", "promotions")}
                         for p, s in summary.items()}}


def stream_gate(spec: StreamSpec):
    """The promote section every policy ran with (params.yaml under the spec's params): its max_forgetting,
    min_improvement and bootstrap settings also define the report's regressions and blocked gains."""
    raw = read_yaml_mapping(ROOT / "params.yaml", "params file")
    for key, value in spec.params.items():
        set_dotted(raw, key, value)
    return parse_params(raw, str(ROOT / "params.yaml")).promote


def test_labels(data_dir: Path, batches: list[dict], saved: dict[str, dict]) -> dict[str, str]:
    """Each batch's test labels, encoded in the saved runs' alphabet (empty when the data folder is gone)."""
    from bench.stats import encode

    labels = next((s["labels"] for s in saved.values() if s.get("labels")), None)
    if labels is None or not all((data_dir / b["name"] / "test.csv").is_file() for b in batches):
        return {}
    return {b["name"]: encode(list(pd.read_csv(data_dir / b["name"] / "test.csv", dtype={"label": str},
                                               keep_default_na=False)["label"]), labels) for b in batches}


def _machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    return f"{platform.node() or 'host'}: {device}, torch {torch.__version__}"


def run(spec_path: str | Path, out_dir: str | Path = "bench/results/stream", work: str | Path | None = None,
        only: list[str] | None = None, command: str | None = None, sets: dict | None = None) -> dict:
    spec = load_spec(spec_path)
    if sets:  # --set: params for every policy beyond the spec's (another gate, say), into their own --out
        spec = spec.model_copy(update={"params": {**spec.params, **sets}})
        stream_gate(spec)  # a bad key or value fails here, before any batch runs
    out_dir = Path(out_dir).resolve()  # each policy's params file lives in its workspace: absolute data paths
    work_root = Path(work).resolve() if work else out_dir / "work"
    unknown = sorted(set(only or []) - set(spec.policies))
    if unknown:
        raise ConfigError(f"--only {unknown}: not a policy of this spec; it has {spec.policies}")
    batches = materialise(spec, out_dir / "data")
    for policy in [p for p in spec.policies if not only or p in only]:
        run_policy(policy, spec, batches, out_dir / "data", work_root, out_dir)
    return report(spec, str(spec_path), out_dir, batches, command)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="bench/streams/shipped.yaml", help="stream spec (YAML)")
    ap.add_argument("--out", default="bench/results/stream", help="folder for stream.json, stream.md, plots")
    ap.add_argument("--work", default=None, help="the policies' projects (registry, memory); default OUT/work")
    ap.add_argument("--only", action="append", default=None, metavar="POLICY", help="run only this policy")
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="a params.yaml override for every policy (dotted key, YAML value), e.g. promote.test=point")
    args = ap.parse_args(argv)
    sets = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"bench stream: error: --set '{item}': expected KEY=VALUE", file=sys.stderr)
            return 2
        sets[key] = yaml.safe_load(value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("driftfit", "transformers", "httpx", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = run(args.spec, args.out, args.work, args.only,
                     command=" ".join(["python -m bench.stream", *(argv if argv is not None else sys.argv[1:])]),
                     sets=sets)
    except DriftfitError as err:
        print(f"bench stream: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
