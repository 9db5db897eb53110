"""A classifier that needs no training: each class is represented by the embedding of its name.

The head's rows are the L2-normalised mean-pooled embeddings of the label names ("small_talk" is
read as "small talk"), with zero bias. For a text with pooled embedding x the logit of class k is
|x| * cos(x, name_k), so the argmax is the label name nearest by cosine. It is the pretrained
model's own answer before any training: a baseline, and the `zero_shot` strategy.
"""

from __future__ import annotations

import re

import torch

from driftfit.config import Params
from driftfit.modalities.text.model import TextClassifier, embed_texts, load_encoder, load_tokenizer


def label_text(label: str) -> str:
    """How a label name is read: underscores and hyphens become spaces."""
    return re.sub(r"[_\-\s]+", " ", str(label)).strip()


def zero_shot_classifier(params: Params, labels: list[str]) -> TextClassifier:
    """The pretrained encoder with a head made of the label names' embeddings (on CPU, eval mode)."""
    tokenizer = load_tokenizer(params.model)
    encoder = load_encoder(params.model)
    names = embed_texts(encoder, tokenizer, [label_text(l) for l in labels], params.model.max_seq_len,
                        device=torch.device("cpu"))
    model = TextClassifier(encoder, len(labels))
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(names))
        model.head.bias.zero_()
    return model.eval()
