"""prepare: load the sources, split them (stratified, seeded), check them against the data contract, then write
paths.prepared/ (one Parquet file per split + manifest.json with sources, hashes, rows and labels) whole.

The reference is the data memory's batches once a champion was promoted with one (driftfit.state.reference),
else `data.reference` (or none). A bad source or a contract error stops here, naming file and line, before
anything is written to paths.prepared/ (the validation report goes to a new folder under paths.rejected).
"""

from __future__ import annotations

from driftfit import modalities
from driftfit.config import Params
from driftfit.data import splits as prepared
from driftfit.data import validation
from driftfit.state.reference import champion_data


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    src = params.data
    modality.check_sources(params)  # e.g. a bad contract fails before any data is read
    incoming = modality.load(params, src.incoming)
    incoming_test = modality.load(params, src.incoming, src.incoming.test_path) if src.incoming.test_path else None
    splits = prepared.prepare_splits(None, incoming, incoming_test, params.split)
    sources = {"train": src.incoming.path, "val": src.incoming.path,
               "test": src.incoming.test_path or src.incoming.path}
    # the memory identifies a batch by its rows as it would store them
    reference_from = champion_data(params, {name: modality.stored(params, df) for name, df in splits.items()})
    if reference_from is not None:  # what the serving champion learnt: its memory batches
        reference_train, reference_test, reference_from = reference_from
        splits["reference_train"] = modality.restored(params, reference_train)
        splits["reference_test"] = modality.restored(params, reference_test)
        sources.update(reference_train=params.paths.memory, reference_test=params.paths.memory)
    elif src.reference:
        reference = modality.load(params, src.reference)
        splits.update({f"reference_{k}": v for k, v in
                       prepared.stratified_split(reference, {"test": params.split.test_fraction},
                                                 params.split.seed).items()})
        sources.update(reference_train=src.reference.path, reference_test=src.reference.path)
        reference_from = {"from": "data.reference", "path": params.portable(src.reference.path)}
    validation.check_before_writing(params, splits, sources, modality.validate)
    splits = {name: modality.stored(params, df.drop(columns="line", errors="ignore")) for name, df in splits.items()}
    manifest = {
        "modality": modality.name,
        "sources": {  # repo-relative paths and digests: the lineage a version record keeps
            role: {"path": params.portable(s.path), "sha256": modality.source_digest(s.path),
                   "test_path": params.portable(s.test_path),
                   "test_sha256": modality.source_digest(s.test_path) if s.test_path else None}
            for role, s in (("incoming", src.incoming), ("reference", src.reference)) if s is not None
        },
        "reference": reference_from,  # where reference_train/reference_test came from
        "splits": prepared.summary(splits),
    }
    prepared.write_splits(params.paths.prepared, splits, manifest)
    return manifest
