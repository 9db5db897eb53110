"""Weight averaging with the champion: the `ensemble` strategy's last step.

A candidate fine-tuned from the same pretrained weights as the champion is averaged with it, weight by
weight (WiSE-FT, Wortsman et al. 2022; model soups, Wortsman et al. 2022): the result keeps much of what
the champion knew while moving towards the new data, and serves as one plain model at no extra cost.
Encoder weights are interpolated; each head row of a label both know is interpolated, a label new to the
champion keeps the candidate's row. Models that cannot be averaged (another architecture or vocabulary,
a peft adapter kept apart) leave the candidate as it is, and the log says why.
"""

from __future__ import annotations

from pathlib import Path

import torch


def average_with_champion(model, labels: list[str], champion_dir: Path | None, champion_share: float,
                          trust_remote_code: bool = False) -> dict:
    """Interpolate `model` (in place) towards the champion: w = (1 - share) * candidate + share * champion.
    Returns the log: what was averaged, or why not."""
    from driftfit.modalities.text.model import load_classifier

    if champion_dir is None:
        return {"averaged": False, "why": "no champion yet: the candidate is plain full fine-tuning"}
    champion, _, champion_labels = load_classifier(champion_dir, trust_remote_code)
    mine, theirs = model.encoder.state_dict(), champion.encoder.state_dict()
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        return {"averaged": False, "champion": Path(champion_dir).name,
                "why": "the champion's encoder has other weights (architecture, vocabulary or a peft adapter)"}
    keep = 1.0 - champion_share
    with torch.no_grad():
        for name, value in mine.items():
            if value.is_floating_point():
                value.mul_(keep).add_(theirs[name].to(value.dtype), alpha=champion_share)
        rows = {str(l): i for i, l in enumerate(champion_labels)}
        shared = [(i, rows[str(l)]) for i, l in enumerate(labels) if str(l) in rows]
        for mine_row, their_row in shared:
            model.head.weight[mine_row].mul_(keep).add_(champion.head.weight[their_row], alpha=champion_share)
            model.head.bias[mine_row].mul_(keep).add_(champion.head.bias[their_row], alpha=champion_share)
    return {"averaged": True, "champion": Path(champion_dir).name, "champion_share": champion_share,
            "labels_averaged": len(shared), "labels_new": len(labels) - len(shared)}
