"""Validate image splits: a per-image profile table checked by Great Expectations, plus duplicates and
leakage by hash.

The profile has one row per image: split, row, path, label, readable, decodable, width, height, mode,
channels, bytes, phash (a 256-bit difference hash: the same picture resized or re-encoded keeps it, to a few
bits), sha256 (the file's bytes) and error (why it did not decode). GX sees the profile, as the text suite sees its row
profile, through the same machinery (driftfit.gx_suite: one in-memory context, suites built once); class
counts reuse the text contract's label rules and label table. Duplicates (within a split, by perceptual
hash) and leakage (across splits, by content or perceptual hash) are computed here, as for texts.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from driftfit.config import StrictModel
from driftfit.data.contract import Contract, DuplicateRules, LabelRules, Severity
from driftfit.errors import DataError, ValidationFailed
from driftfit.data.gx_suite import (DOCS_SITE, as_check, gx_context, label_expectations, label_table, rule,
                               run_suite)
from driftfit.modalities.image.data import MAX_PIXELS, open_image
from driftfit.modalities.image.phash import hash_words as _hash_words, matches as _matches, perceptual_hash
from driftfit.data.validation import LEAKAGE_PAIRS, MAX_ERRORS_IN_MESSAGE

EXAMPLES = 5  # offending files named per finding

class ImageRules(StrictModel):
    """What every image split must satisfy (the image counterpart of driftfit.contract.Contract)."""
    max_pixels: int = Field(MAX_PIXELS, gt=0, description="most pixels (width x height) per image, checked "
                                                          "from the header before decoding (error)")
    min_side: int = Field(8, gt=0, description="fewest pixels along the shorter side (error); digits are 8 x 8")
    modes: list[str] = Field(["1", "L", "LA", "P", "PA", "RGB", "RGBA"],
                             description="PIL modes converted to RGB without loss of meaning; others: warning")
    labels: LabelRules = LabelRules()
    duplicates: DuplicateRules = DuplicateRules()
    max_distance: int = Field(4, ge=0, le=256, description="bits (of 256) two perceptual hashes may differ by and "
                                                           "still count as the same picture: a photo re-encoded "
                                                           "or halved moves 0-2; more also pairs distinct "
                                                           "silhouettes (8: 30 pairs of different animals)")
    leakage: Severity = Field("error", description="a train or reference_train image found again in val/test")


# ---- the profile ----------------------------------------------------------------------------------

def profile_image(path: str | Path, max_pixels: int) -> dict[str, Any]:
    """One image's profile row (without split, row and label); `error` says why it did not decode."""
    path = Path(path)
    row: dict[str, Any] = {"path": str(path), "readable": path.is_file(), "decodable": False, "width": None,
                           "height": None, "mode": None, "channels": None, "bytes": None, "phash": None,
                           "sha256": None, "error": None}
    if row["readable"]:
        try:
            with path.open("rb") as f:
                row["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
            row["bytes"] = path.stat().st_size
        except OSError as err:
            row["readable"], row["error"] = False, f"'{path}': unreadable ({err}): expected a readable file"
    try:
        image = open_image(path, max_pixels)
    except DataError as err:
        row["error"] = row["error"] or str(err)
        return row
    with image:
        row.update(decodable=True, width=image.width, height=image.height, mode=image.mode,
                   channels=len(image.getbands()), phash=perceptual_hash(image))
    return row


def profile_images(splits: dict[str, pd.DataFrame], max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """One profile row per image of every split (tables with columns path, label)."""
    rows = []
    for name, table in splits.items():
        for i, (path, label) in enumerate(zip(table["path"], table["label"])):
            rows.append({"split": name, "row": i, "label": None if pd.isna(label) else str(label),
                         **profile_image(path, max_pixels)})
    columns = ["split", "row", "label", "path", "readable", "decodable", "width", "height", "mode", "channels",
               "bytes", "phash", "sha256", "error"]
    profile = pd.DataFrame(rows, columns=columns)
    for column in ("width", "height", "channels", "bytes"):
        profile[column] = profile[column].astype("float64")  # NaN where not decoded
    return profile


# ---- GX on the profile ------------------------------------------------------------------------

def image_expectations(rules: ImageRules) -> list:
    """The per-image rules, one expectation each (meta.rule names the ImageRules key)."""
    import great_expectations as gx

    E = gx.expectations
    return [
        rule(E.ExpectColumnValuesToBeInSet, "readable", column="readable", value_set=[True],
              description="a file that exists and can be read"),
        rule(E.ExpectColumnValuesToBeInSet, "decodable", column="decodable", value_set=[True],
              description=f"a complete image file that decodes, at most {rules.max_pixels:,} pixels"),
        rule(E.ExpectColumnValuesToBeBetween, "min_side", column="width", min_value=rules.min_side,
              description=f"at least {rules.min_side} pixels wide"),
        rule(E.ExpectColumnValuesToBeBetween, "min_side", column="height", min_value=rules.min_side,
              description=f"at least {rules.min_side} pixels high"),
        rule(E.ExpectColumnValuesToBeInSet, "modes", "warning", column="mode", value_set=rules.modes,
              description=f"a colour mode in {rules.modes}"),
        rule(E.ExpectColumnValuesToNotBeNull, "labels", column="label", description="a label for every image"),
    ]


def _plain(value):
    """A profile value as a person writes it: 4.0, not np.float64(4.0); a whole float as an int (4)."""
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _message(check: dict, profile: pd.DataFrame) -> str:
    """One line naming the files: 'train: 'a.png': why' per example, what was expected, which rule."""
    expected = f"expected {check['expected']} (image rule {check['rule']})"
    if "exception" in check:
        return f"column '{check['column']}': check {check['expectation']} could not run ({check['exception']})"
    if "unexpected_examples" not in check:
        return f"column '{check['column']}': observed {check.get('observed_value')}: {expected}"
    shown = []
    for e in check["unexpected_examples"]:
        row = profile[(profile["split"] == e["split"]) & (profile["row"] == e["row"])].iloc[0]
        why = row["error"] if isinstance(row["error"], str) else \
            f"'{row['path']}': {check['column']} = {_plain(row[check['column']])!r}"
        shown.append(f"{e['split']}: {why}")
    more = check["unexpected_count"] - len(shown)
    return f"{'; '.join(shown)}{f' (and {more} more)' if more > 0 else ''}: {expected}"


# ---- duplicates and leakage by hash -------------------------------------------------------------

def find_image_duplicates(profile: pd.DataFrame, max_distance: int = 0) -> dict:
    """Images of one split's profile that repeat an earlier one (same perceptual hash within max_distance)."""
    ok = profile[profile["phash"].notna()].reset_index(drop=True)
    hashes = _hash_words(ok["phash"])
    first = _matches(hashes, hashes, max_distance)  # every image matches itself or an earlier one
    repeats = np.flatnonzero(first < np.arange(len(ok)))
    examples = [{"path": ok["path"][i], "same_as": ok["path"][first[i]],
                 "identical_bytes": bool(ok["sha256"][i] == ok["sha256"][first[i]])} for i in repeats[:EXAMPLES]]
    return {"images": len(ok), "count": len(repeats), "share": len(repeats) / max(len(ok), 1),
            "exact": int(sum(ok["sha256"][i] == ok["sha256"][first[i]] for i in repeats)), "examples": examples}


def find_image_leakage(source: pd.DataFrame, other: pd.DataFrame, max_distance: int = 0) -> dict:
    """Images of `other` whose bytes (sha256) or picture (perceptual hash) are also in `source`."""
    src, oth = source[source["phash"].notna()].reset_index(drop=True), other[other["phash"].notna()]
    by_sha = dict(zip(src["sha256"], src["path"]))
    near = _matches(_hash_words(src["phash"]), _hash_words(oth["phash"]), max_distance) if len(src) else \
        np.full(len(oth), -1)
    leaks = []
    for (path, sha), j in zip(zip(oth["path"], oth["sha256"]), near):
        if sha in by_sha:
            leaks.append({"path": path, "source_path": by_sha[sha], "by": "content (sha256)"})
        elif j >= 0:
            leaks.append({"path": path, "source_path": src["path"][j], "by": "perceptual hash"})
    return {"count": len(leaks), "examples": leaks[:EXAMPLES]}


# ---- the pure core ------------------------------------------------------------------------------

def validate_images(splits: dict[str, pd.DataFrame], rules: ImageRules = ImageRules(),
                    profile: pd.DataFrame | None = None, docs_dir: Path | None = None) -> dict:
    """Check image splits (tables path,label); return a JSON-able summary. `profile` if already computed."""
    started = time.perf_counter()
    errors: list[str] = []
    warnings: list[str] = []
    if profile is None:
        profile = profile_images(splits, rules.max_pixels)
    summary: dict[str, Any] = {"success": False, "errors": errors, "warnings": warnings, "rules": rules.model_dump(),
                               "splits": {n: {"images": len(t)} for n, t in splits.items()}, "checks": []}
    context = gx_context(docs_dir)
    detailed = docs_dir is not None
    if len(profile):
        result = run_suite(context, "images", profile, lambda: image_expectations(rules), repr(rules),
                           ["split", "row", "path"], detailed)
        summary["checks"] += [as_check(r, "images", splits) for r in result["results"]]
    if "train" in splits:
        labels = {n: t for n, t in splits.items() if n in ("train", "reference_train")}
        result = run_suite(context, "image_labels", label_table(labels),
                           lambda: label_expectations(Contract(labels=rules.labels), "reference_train" in labels),
                           repr((rules.labels, "reference_train" in labels)), ["label", "train_rows"], detailed)
        summary["checks"] += [as_check(r, "labels", splits) for r in result["results"]]
    else:
        errors.append("train: split missing: expected a training split")
    for check in summary["checks"]:
        if check["success"]:
            continue
        if check["table"] == "labels":
            shown = ", ".join(f"label {e['label']!r} has {e['train_rows']:g} training images"
                              for e in check.get("unexpected_examples", []))
            text = f"{shown or 'observed ' + str(check.get('observed_value'))}: expected {check['expected']} " \
                   f"(contract labels)"
        else:
            text = _message(check, profile)
        (errors if check["severity"] == "error" else warnings).append(text)
    summary["class_counts"] = {n: t["label"].astype(str).value_counts().sort_index().to_dict()
                               for n, t in splits.items()}

    summary["duplicates"] = {}
    for name in splits:
        dup = summary["duplicates"][name] = find_image_duplicates(profile[profile["split"] == name],
                                                                 rules.max_distance)
        if dup["count"]:
            e = dup["examples"][0]
            text = (f"{name}: {dup['count']} of {dup['images']} images ({dup['share']:.1%}) repeat an earlier one "
                    f"({dup['exact']} byte for byte, the rest by perceptual hash), e.g. '{e['path']}' = "
                    f"'{e['same_as']}'")
            if dup["share"] > rules.duplicates.max_share:
                errors.append(f"{text}: expected at most {rules.duplicates.max_share:.0%} repeated images "
                              "(duplicates.max_share)")
            else:
                warnings.append(f"{text}: expected each picture once")
    summary["leakage"] = {}
    for source, other in LEAKAGE_PAIRS:
        if source not in splits or other not in splits:
            continue
        leak = summary["leakage"][f"{source}->{other}"] = find_image_leakage(
            profile[profile["split"] == source], profile[profile["split"] == other], rules.max_distance)
        if leak["count"]:
            shown = ", ".join(f"'{e['path']}' = {source} '{e['source_path']}' (by {e['by']})" for e in leak["examples"])
            more = leak["count"] - len(leak["examples"])
            (errors if rules.leakage == "error" else warnings).append(
                f"{other}: {leak['count']} image(s) also in {source}: {shown}"
                f"{f' (and {more} more)' if more > 0 else ''}: expected no picture in both {source} and {other} "
                "(image rule leakage)")
    if docs_dir is not None:
        context.build_data_docs(site_names=[DOCS_SITE])
        summary["data_docs"] = str(Path(docs_dir) / "index.html")
    summary["success"] = not errors
    summary["seconds"] = round(time.perf_counter() - started, 4)
    return summary


def raise_if_failed(summary: dict) -> None:
    """ValidationFailed with the first errors, each naming its file(s)."""
    errors = summary["errors"]
    if errors:
        more = f"; and {len(errors) - MAX_ERRORS_IN_MESSAGE} more" if len(errors) > MAX_ERRORS_IN_MESSAGE else ""
        raise ValidationFailed(f"image validation failed: {'; '.join(errors[:MAX_ERRORS_IN_MESSAGE])}{more}")


# ---- the thin edge --------------------------------------------------------------------------------

def rules_for(params) -> ImageRules:
    """The image rules in force: the image.* limits, and the contract's label, duplicate and leakage rules."""
    from driftfit.data.contract import contract_for

    contract, _ = contract_for(params.validate_)
    return ImageRules(max_pixels=params.image.max_pixels, min_side=params.image.min_side,
                      max_distance=params.image.max_distance, labels=contract.labels,
                      duplicates=contract.duplicates, leakage=contract.leakage)


def validate(params, splits: dict[str, pd.DataFrame], docs_dir: Path | None, sources: dict | None = None) -> dict:
    """The modality's validate: the image rules (rules_for) checked on every split (tables path,label)."""
    return validate_images(splits, rules_for(params), None, docs_dir)
