"""Serving a text classifier: what a request holds, how a saved folder scores with torch, its ONNX graph.

driftfit.serving (load, predict, export, serve) asks the version's modality for these parts, never its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from driftfit.config import ModelConfig
from driftfit.errors import DriftfitError
from driftfit.state import registry

REQUEST_KEY = "texts"                                  # the list /predict takes
REQUEST_EXAMPLE = '{"texts": ["first text", "second text"]}'
INPUT_COLUMN = "text_column"                           # predict.<this>: the column `driftfit predict` scores
ITEMS_ARE_FILES = False                                # a predict input is a table of texts, not files
EXAMPLE = ('["who wrote hamlet?", "what is the stock market?"]',
           "[{'label': 'literature', 'probability': 0.99}, {'label': 'money', 'probability': 0.98}]")
DEFAULT_MAX_SEQ_LEN = ModelConfig.model_fields["max_seq_len"].default  # for a record that predates recorded params

# Fixed inputs an export is checked on: short, long (truncated), punctuation, digits, accents, other scripts.
CHECK_TEXTS = [
    "hi", "What is the capital of France?", "I can't believe it's already December...",
    "the quick brown fox jumps over the lazy dog " * 12, "Ünïcödé, naïve café — 東京 and Москва",
    "2 + 2 = 4; 3.14159", "OK", "Tell me a joke about computers!", "   spaced   out   words   ",
    "Why is the sky blue? Because of Rayleigh scattering of sunlight in the atmosphere.",
]


def max_seq_len_of(record: dict) -> int:
    """Tokens per text the version was trained and evaluated with (its recorded params)."""
    return int(registry.recorded(record, "model.max_seq_len", DEFAULT_MAX_SEQ_LEN))


def check_items(items: list) -> None:
    """A text champion reads strings."""
    bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
    if bad is not None:
        raise DriftfitError(f"input {bad} is {type(items[bad]).__name__}; a text champion reads strings")


def open_item(item):
    """Texts are scored as given."""
    return item


def saved_scorer(folder: Path, record: dict, device, batch_size: int,
                 trust_remote_code: bool) -> tuple[list[str], Callable[[list], np.ndarray]]:
    """(labels, texts -> probabilities) for the saved classifier in `folder`, reading texts as it was trained."""
    from driftfit.modalities.text.model import load_classifier, predict_proba

    model, tokenizer, labels = load_classifier(folder, trust_remote_code)
    model = model.to(device)
    max_len = max_seq_len_of(record)
    return labels, lambda texts: predict_proba(model, tokenizer, texts, max_len, batch_size, device)


def export_graph(folder: Path, trust_remote_code: bool, max_seq_len: int) -> dict:
    """What driftfit.serving.export needs to write and check one ONNX graph from token ids to probabilities:
    the torch module, an example input, input names with dynamic axes, export.json fields, the files besides
    the graph (written into the export folder by `write_files`), and the check inputs with torch's answers."""
    import torch

    from driftfit.modalities.text.model import load_classifier, predict_proba

    model, tokenizer, labels = load_classifier(folder, trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise DriftfitError(f"'{folder}': its tokenizer has no tokenizer.json (not a fast tokenizer), which "
                            "onnxruntime's users need; it cannot be exported")

    class TextGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return torch.softmax(logits.float(), dim=-1)

    max_len = max_seq_len
    example = tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    batch, length = torch.export.Dim("batch"), torch.export.Dim("tokens")

    def write_files(out: Path) -> list[str]:
        (out / "tokenizer").mkdir()
        tokenizer.backend_tokenizer.save(str(out / "tokenizer" / "tokenizer.json"))
        return ["tokenizer/tokenizer.json"]

    return {"graph": TextGraph().eval(), "example": (example["input_ids"], example["attention_mask"]),
            "names": ["input_ids", "attention_mask"],
            "dynamic": {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
            "meta": {"labels": labels, "inputs": ["input_ids", "attention_mask"], "max_seq_len": max_len,
                     "tokenizer": "tokenizer/tokenizer.json", "pad_token_id": int(tokenizer.pad_token_id or 0)},
            "write_files": write_files, "check_inputs": CHECK_TEXTS,
            "reference": predict_proba(model, tokenizer, CHECK_TEXTS, max_len, 64, torch.device("cpu"))}
