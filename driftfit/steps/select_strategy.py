"""select-strategy: choose how to adapt the model from the shift report and the data size, and say why
(driftfit.policy.rules; with `strategy.mode: probe`, short trial runs decide among the top candidates), in the
forms the modality runs (a strategy it lacks becomes its stand-in); written to paths.decision."""

from __future__ import annotations

import logging
from pathlib import Path

from driftfit import modalities
from driftfit.config import Params
from driftfit.errors import DataError
from driftfit.io import read_json, write_json
from driftfit.policy import learned, probe
from driftfit.policy.rules import in_modality, select_strategy
from driftfit.state.registry import champion_dir
from driftfit.training.replay import training_inputs

log = logging.getLogger(__name__)


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    path = Path(params.paths.shift)
    if not path.is_file():
        raise DataError(f"shift report '{path}' not found (run the shift step first)")
    report = read_json(path)
    champion_exists = champion_dir(params.paths.registry) is not None
    rules = (learned.load(params.absolute(params.strategy.learned_rules))
             if params.strategy.learned_rules is not None else None)
    decision = in_modality(select_strategy(report, params.strategy, champion_exists, rules), modality.name)
    if params.strategy.mode == "probe":
        train, val = training_inputs(params, modality)
        decision = probe.with_probe(decision, train, val, params, modality, shift=report)
    write_json(params.paths.decision, decision)
    log.info("strategy %s (rule %s): %s", decision["strategy"], decision["rule"], decision["reason"])
    return decision
