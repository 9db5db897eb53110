"""The contract's rules as Great Expectations suites, run on tables profiled in pandas.

- rows: one row per text or image of every split, profiled by the modality (modalities/text/gx_rows.py,
  modalities/image/checks.py). GX sees the profile, not the raw rows: GX fingerprints (hashes) every dataframe
  it is given, and with a text column that hashing was most of a 1M-row run;
- `labels`: one row per label (train rows, share in train and in the reference), for rows per class,
  number of classes, imbalance and divergence from the reference's label mix.
Each rule is one expectation with a severity (GX `critical` = error, `warning` = warning). GX is
imported lazily, once per process (`import driftfit.data.gx_suite` stays cheap).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pandas as pd

from driftfit.data.contract import Contract, Severity
from driftfit.data.values import EXAMPLES, plain

DOCS_SITE = "driftfit"
# ---- the two batches: a per-row profile and a per-label table ----------------------------------

def label_table(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per label of train or reference_train: rows in train, shares, imbalance, half |share diff|."""
    train = splits["train"]["label"].dropna().astype(str).value_counts()
    ref = splits["reference_train"]["label"].dropna().astype(str).value_counts() if "reference_train" in splits \
        else pd.Series(dtype="int64")
    labels = sorted(set(train.index) | set(ref.index))
    table = pd.DataFrame({"label": labels})
    table["train_rows"] = [float(train[x]) if x in train.index else math.nan for x in labels]
    table["in_train"] = table["train_rows"].notna().astype(int)
    table["imbalance"] = train.max() / table["train_rows"] if len(train) else math.nan
    table["train_share"] = table["train_rows"].fillna(0) / max(int(train.sum()), 1)
    if len(ref):
        table["reference_share"] = [float(ref.get(x, 0)) / ref.sum() for x in labels]
        table["half_abs_diff"] = (table["train_share"] - table["reference_share"]).abs() / 2  # sums to the TVD
    return table


def rule(expectation: type, key: str, severity: Severity = "error", **kwargs):
    """One expectation for one contract rule: meta names the key, GX severity says error or warning."""
    return expectation(**kwargs, meta={"rule": key}, severity="critical" if severity == "error" else "warning")


def label_expectations(contract: Contract, has_reference: bool) -> list:
    """The contract's per-label rules, one expectation each."""
    import great_expectations as gx

    E, c = gx.expectations, contract.labels
    out = [
        rule(E.ExpectColumnSumToBeBetween, "labels.min_classes", column="in_train", min_value=c.min_classes,
              description=f"at least {c.min_classes} distinct labels in train"),
        rule(E.ExpectColumnValuesToBeBetween, "labels.min_rows_per_class", column="train_rows",
              min_value=c.min_rows_per_class, description=f"at least {c.min_rows_per_class} training rows per label"),
    ]
    if contract.columns["label"] == "integer":
        out.append(rule(E.ExpectColumnValuesToMatchRegex, "columns.label", column="label", regex=r"^-?\d+$",
                         description="labels that are integers"))
    if c.max_imbalance is not None:
        out.append(rule(E.ExpectColumnValuesToBeBetween, "labels.max_imbalance", "warning", column="imbalance",
                         max_value=c.max_imbalance,
                         description=f"the largest train class at most {c.max_imbalance:g} times this one"))
    if c.max_divergence is not None and has_reference:
        out.append(rule(E.ExpectColumnSumToBeBetween, "labels.max_divergence", "warning", column="half_abs_diff",
                         max_value=c.max_divergence,
                         description=f"train's label mix within total-variation distance {c.max_divergence:g} "
                                     "of the reference's"))
    return out


_CONTEXT = None  # the in-memory context for runs without Data Docs: one per process, reused


def gx_context(docs_dir: Path | None):
    """An in-memory context; its only Data Docs site (if any) is a local folder."""
    global _CONTEXT
    if docs_dir is None and _CONTEXT is not None:
        return _CONTEXT
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        }
    config = DataContextConfig(
        # init_temp_docs_sites=False: no default site writing into a stray temp folder
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas("splits")
    if docs_dir is None:
        _CONTEXT = context
    return context


_SUITES: dict[str, str] = {}  # suite name -> key of the expectations it holds, in the shared context


def run_suite(context, name: str, df: pd.DataFrame, expectations: Callable[[], list], key: str,
              index_columns: list[str], detailed: bool) -> dict:
    """Validate `df` as the dataframe asset `name` against the suite driftfit_<name>.

    The asset, suite and validation definition are made on first use in a context; the suite's
    expectations are rebuilt only when `key` (what they are made from) changes: GX saves on every edit.
    Not `detailed`: a pass/fail run first (about half the cost: GX computes no observed values or
    offending rows), and the detailed run only when something failed, to name the rows.
    """
    import great_expectations as gx

    known = _SUITES if context is _CONTEXT else {}  # a Data Docs context is new each run
    if name not in known:
        batch = context.data_sources.get("splits").add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"driftfit_{name}", expectations=expectations()))
        context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    elif known[name] != key:
        suite = context.suites.get(f"driftfit_{name}")
        suite.expectations = expectations()
        suite.save()
    known[name] = key
    definition = context.validation_definitions.get(name)
    if not detailed:
        result = definition.run(batch_parameters={"dataframe": df}, result_format="BOOLEAN_ONLY")
        if result.success:
            return result.to_json_dict()
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES,
                     "unexpected_index_column_names": index_columns}
    return definition.run(batch_parameters={"dataframe": df}, result_format=result_format).to_json_dict()


# ---- GX results as checks ----------------------------------------------------------------------

def as_check(result: dict, table: str, splits: dict[str, pd.DataFrame]) -> dict:
    config, res = result["expectation_config"], result.get("result") or {}
    meta = config.get("meta") or {}
    column = config["kwargs"].get("column")
    check = {"table": table, "expectation": config["type"], "column": column, "rule": meta.get("rule"),
             "severity": "warning" if config.get("severity") == "warning" else "error",
             "success": bool(result["success"]), "expected": config.get("description")}
    if "observed_value" in res:
        observed = res["observed_value"]
        check["observed_value"] = [plain(v) for v in observed] if isinstance(observed, list) else plain(observed)
    if "unexpected_count" in res:
        check["unexpected_count"] = int(res["unexpected_count"])
        examples = []
        for index in res.get("partial_unexpected_index_list") or []:
            example = {k: plain(v) for k, v in index.items() if table == "labels" or k != column}
            if table == "rows":  # show the text or label itself, not its profile
                source = "label" if column in ("label", "label_type") else "text"
                example["value"] = plain(splits[example["split"]][source].iloc[int(example["row"])])
                if column == "chars":
                    example["chars"] = plain(index.get(column))
            examples.append(example)
        check["unexpected_examples"] = examples
    exception = result.get("exception_info") or {}
    if exception.get("raised_exception"):
        check["exception"] = str(exception.get("exception_message"))
    return check
