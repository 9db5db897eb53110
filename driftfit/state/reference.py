"""What the serving champion learnt, as this week's reference: the data memory's batches.

Once a champion was promoted with a memory (its version.json records it), the reference is the train and test
splits of every batch the memory holds now, less this batch if it landed before. So a batch accepted while the
champion held (a skip) is replayed and checked for forgetting like the others. The record lists which of them
the champion itself learnt from (`champion_batches`): the shift step measures against those. Without a champion
or a memory record the reference is `data.reference` (the prepare step's concern).
"""

from __future__ import annotations

import pandas as pd

from driftfit.config import Params
from driftfit.errors import DataError
from driftfit.state import memory, registry


def champion_data(params: Params, splits: dict[str, pd.DataFrame]) -> tuple | None:
    """(reference_train, reference_test, record) from the data memory, or None (see the module's docstring).
    `splits` are this batch's train/val/test as the memory would store them (its id)."""
    info = registry.champion_info(params.paths.registry)
    if info is None:
        return None
    registry.champion_dir(params.paths.registry)  # a damaged champion stops the week here, before it is remembered
    recorded = registry.version_record(params.paths.registry, info["version"]).get("memory")
    if not recorded:
        return None
    this = memory.batch_id(splits)
    current = memory.state(params.paths.memory)
    if current["version"] < (recorded.get("version") or 0):  # emptied, or put back to an older state
        raise DataError(f"data memory {params.paths.memory} is at version {current['version']} "
                        f"({len(current['batches'])} batches), older than the version {recorded.get('version')} "
                        f"({len(recorded.get('batches') or [])} batches) that the serving champion {info['version']} "
                        f"was trained with: restore it with 'dvc checkout {params.portable(params.paths.memory)}' "
                        "(or 'dvc pull'); nothing was changed")
    batches = [b for b in current["batches"] if b != this]
    train = memory.remembered(params.paths.memory, batches, "train")
    test = memory.remembered(params.paths.memory, batches, "test")
    if train is None or test is None:
        return None
    learnt = set(recorded.get("batches", []))
    return train, test, {"from": "memory", "champion": info["version"], "memory_version": recorded.get("version"),
                         "batches": batches, "champion_batches": [b for b in batches if b in learnt]}
