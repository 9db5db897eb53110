"""remember: add the prepared (and validated) batch to the data memory, paths.memory (once per batch:
memory.keep decides what stays). A modality whose rows are files has them copied into the memory first."""

from __future__ import annotations

from driftfit import modalities
from driftfit.config import Params
from driftfit.data.splits import BATCH, read_manifest, read_split
from driftfit.state import memory


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    splits = {name: read_split(params.paths.prepared, name, required=True) for name in BATCH}
    incoming = read_manifest(params.paths.prepared).get("sources", {}).get("incoming", {})
    if modality.stores_files:  # the memory keeps its own copies: next week's replay does not need the source
        splits = memory.store_files(params.absolute(params.paths.memory), splits, params.absolute, params.portable)
    return memory.add_batch(params.paths.memory, splits, incoming, params.memory)
