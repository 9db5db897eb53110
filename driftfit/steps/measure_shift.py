"""measure-shift: how the incoming batch differs from what the serving champion learnt and from what the
pretrained model knows (the modality's measures: embedding shift, label shift, probes on frozen features, data
size, the champion's score; for texts also tokenizer fit and zero-shot), written to paths.shift.

The reference is the memory's batches the champion learnt (manifest.json's `champion_batches`); batches accepted
since, while it held, are new to it too."""

from __future__ import annotations

import logging
from pathlib import Path

from driftfit import modalities
from driftfit.config import Params
from driftfit.data.splits import read_split
from driftfit.io import read_json, write_json
from driftfit.state.registry import champion_dir

log = logging.getLogger(__name__)


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)

    def split(name: str, required: bool = False):
        df = read_split(params.paths.prepared, name, required)
        return None if df is None else modality.restored(params, df)

    train, val = split("train", True), split("val", True)
    reference, reference_test = split("reference_train"), split("reference_test")
    manifest = Path(params.paths.prepared) / "manifest.json"  # absent when the splits were written by hand
    learnt = (read_json(manifest).get("reference") or {}).get("champion_batches") if manifest.is_file() else None
    if learnt:
        reference, reference_test = (df[df["batch"].isin(learnt)].reset_index(drop=True)
                                     if df is not None and "batch" in df else df
                                     for df in (reference, reference_test))
    champion = champion_dir(params.paths.registry)  # its files checked against their digest
    report = modality.measure(params, reference, reference_test, train, val, champion)
    if champion is not None:
        report["champion"]["dir"] = str(champion)
    write_json(params.paths.shift, report)
    log.info("shift report written to %s (%.1f s)", params.paths.shift, report["seconds"])
    return report
