"""The `contrastive` strategy (SetFit, Tunstall et al. 2022): the sentence encoder is first tuned to place texts
of the same label close together and texts of different labels apart, on pairs drawn from the training rows
(cosine-similarity loss, sentence-transformers' trainer), then a head is fitted to convergence on the tuned
encoder's features (driftfit.training.head_fit, as the `head` strategy does). With a few rows per class the pairs
multiply what little there is (n rows give n² pairs), which a plain head on frozen features cannot use.

The model is saved as every other strategy's (encoder safetensors + head), so serving and export need nothing
new: no pickled head (SetFit's own library keeps its head with joblib).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd


def pairs(texts: list[str], labels: list[str], per_row: int, at_most: int, seed: int,
          anchors: np.ndarray | None = None) -> pd.DataFrame:
    """sentence1, sentence2, score: for each anchor row, per_row / 2 partners of its own label (score 1) and as many
    of another label (score 0), drawn at random (seeded) from every row; at most `at_most` pairs, anchors taken
    evenly. `anchors`: which rows anchor pairs (default: all); replayed memory rows are partners only, so the pairs,
    and the cost, grow with the new batch, not with the memory."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    half = max(1, per_row // 2)
    rows = rng.permutation(len(texts))
    if anchors is not None:
        rows = rows[np.asarray(anchors, dtype=bool)[rows]]
    rows = rows[: max(1, at_most // (2 * half))]  # a large batch: fewer rows, each with all its pairs
    left, right, score = [], [], []
    for i in rows:
        same, other = by_label[labels[i]], np.flatnonzero(labels != labels[i])
        same = same[same != i]
        if len(same):
            for j in rng.choice(same, size=half):
                left.append(texts[i]), right.append(texts[j]), score.append(1.0)
        if len(other):
            for j in rng.choice(other, size=half):
                left.append(texts[i]), right.append(texts[j]), score.append(0.0)
    return pd.DataFrame({"sentence1": left, "sentence2": right, "score": score})


def fit(model, tokenizer, train_df: pd.DataFrame, val_df: pd.DataFrame, label_ids: dict[str, int], params, device,
        progress=None):
    """Tune model.encoder on pairs, then fit model.head on its features; (model, the training log)."""
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer import losses, modules as models
    from transformers import TrainerCallback

    from driftfit.modalities.text.head import fit_head
    from driftfit.modalities.text.model import resolve_pretrained

    cfg = params.train
    start = time.perf_counter()
    anchors = ~train_df["replayed"].to_numpy(dtype=bool) if "replayed" in train_df else None
    table = pairs(list(train_df["text"]), list(train_df["label"]), cfg.contrastive_pairs, cfg.contrastive_max_pairs,
                  cfg.seed, anchors)
    transformer = models.Transformer(resolve_pretrained(params.model.pretrained),
                                     max_seq_length=params.model.max_seq_len)
    transformer.model = model.encoder  # train this encoder, as built (the tokenizer: the same files)
    encoder = SentenceTransformer(modules=[transformer, models.Pooling(transformer.get_embedding_dimension(),
                                                                       pooling_mode="mean")], device=device.type)

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress(state.global_step, state.max_steps, {})

    with tempfile.TemporaryDirectory(prefix="driftfit-contrastive-") as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=1, max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.contrastive_learning_rate, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
            seed=cfg.seed, data_seed=cfg.seed, report_to="none", save_strategy="no", logging_steps=50,
            disable_tqdm=True, use_cpu=device.type == "cpu")
        trainer = SentenceTransformerTrainer(model=encoder, args=args, train_dataset=Dataset.from_pandas(table),
                                             loss=losses.CosineSimilarityLoss(encoder), callbacks=[Progress()])
        result = trainer.train()
    model.encoder = encoder[0].auto_model
    contrastive_seconds = time.perf_counter() - start
    model, head = fit_head(model, tokenizer, train_df, val_df, label_ids, params, device)
    log = {"steps": int(result.global_step) + head["steps"], "train_loss": round(float(result.training_loss), 4),
           "seconds": round(time.perf_counter() - start, 2), "resumed_from": None, "head_fit": head["head_fit"],
           "contrastive": {"pairs": len(table), "same_label": int(table["score"].sum()),
                           "anchor_rows": int(len(train_df) if anchors is None else anchors.sum()),
                           "steps": int(result.global_step), "seconds": round(contrastive_seconds, 2),
                           "learning_rate": cfg.contrastive_learning_rate}}
    return model, log
