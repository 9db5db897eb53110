"""Text models as scorers (driftfit.modalities.Scorer): a saved classifier, or the untrained baseline (the label
names' embeddings: what the pretrained model knows before any training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params
from driftfit.evaluation.scoring import time_per_example
from driftfit.modalities.text.model import load_classifier, load_tokenizer, predict_proba
from driftfit.training.device import pick_device


class TextScorer:
    def __init__(self, model, tokenizer, labels: list[str], folder: Path | None, params: Params):
        self.model, self.tokenizer, self.labels, self.folder = model, tokenizer, labels, folder
        self.device = pick_device(params.train.device)
        self.max_len, self.batch_size = params.model.max_seq_len, params.evaluate.batch_size

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return predict_proba(self.model, self.tokenizer, list(rows["text"]), self.max_len, self.batch_size,
                             self.device)

    def runtime(self) -> dict:
        return {"device": self.device.type, "torch_threads": torch.get_num_threads()}

    def latency(self, rows: pd.DataFrame, examples: int) -> dict:
        """Milliseconds per text, tokenizing included, over the rows' texts (cycled)."""
        texts = list(rows["text"])
        pool = [texts[i % len(texts)] for i in range(max(examples, 32))]
        return time_per_example(lambda idx: predict_proba(self.model, self.tokenizer, [pool[i] for i in idx],
                                                          self.max_len, len(idx), self.device), examples)


def classifier(params: Params, folder: Path) -> TextScorer:
    """A saved text classifier (any strategy's) as a scorer."""
    model, tokenizer, labels = load_classifier(folder, params.model.trust_remote_code)
    return TextScorer(model, tokenizer, labels, Path(folder), params)


def baseline(params: Params, labels: list[str]) -> TextScorer:
    """The untrained pretrained model: each text gets the label whose name embeds nearest."""
    from driftfit.modalities.text.zero_shot import zero_shot_classifier

    return TextScorer(zero_shot_classifier(params, labels), load_tokenizer(params.model), labels, None, params)
