"""Select the strategy for an image batch (`driftfit select-strategy` when task.modality is image).

The selector's rules (driftfit.strategy) read the image shift report as they read a text one: the tokenizer
rule does not fire (no tokenizer), nor does the zero-shot rule (no label names to embed). Where a rule names
a strategy without an image form, its stand-in from the strategy table trains instead (IA3 -> LoRA: both
small updates of a frozen network), and the decision says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from driftfit.config import Params
from driftfit.errors import DataError
from driftfit.io import read_json, write_json
from driftfit.modalities import runs_on
from driftfit.strategies import for_modality, spec
from driftfit.strategy import select_strategy

log = logging.getLogger(__name__)


def image_decision(report: dict, params: Params, champion_exists: bool) -> dict:
    """The selector's decision record, its strategies mapped to their image forms."""
    decision = select_strategy(report, params.strategy, champion_exists)
    chosen, runner_up = decision["strategy"], decision["runner_up"]
    mapped = for_modality(chosen, "image")
    decision["runner_up"] = for_modality(runner_up, "image") if runner_up else runner_up
    if decision["runner_up"] == mapped:  # both rules' picks map to the same: the runner-up is the rules' next
        decision["runner_up"] = next((for_modality(s, "image") for s in ("full", "head")
                                      if for_modality(s, "image") != mapped), None)
    if mapped != chosen:
        decision.update(strategy=mapped, rules_choice=chosen)
        decision["reason"] += (f" '{chosen}' has no image form; its stand-in '{mapped}' ({spec(mapped).summary}) "
                               "trains instead.")
    return decision


@runs_on("image", "select-strategy")
def run(params: Params) -> dict:
    """Read the shift report and the registry, decide, write paths.decision."""
    from driftfit.registry import champion_dir

    path = Path(params.paths.shift)
    if not path.is_file():
        raise DataError(f"shift report '{path}' not found (run the shift step first)")
    decision = image_decision(read_json(path), params, champion_dir(params.paths.registry) is not None)
    write_json(params.paths.decision, decision)
    log.info("strategy %s (rule %s): %s", decision["strategy"], decision["rule"], decision["reason"])
    return decision
