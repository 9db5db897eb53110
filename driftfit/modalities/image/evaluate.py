"""Image models as scorers (driftfit.modalities.Scorer): a saved classifier, or the untrained baseline (the
pretrained network with a new, untrained head, seeded: images have no label names, so there is no zero-shot
answer; it scores at about chance, and `promote.beat_baseline` then asks only that training bought something).
The evaluation also gets `test_images.png`: a grid of test images with their true and predicted labels (the
candidate's, or the champion's when nothing was trained).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params
from driftfit.evaluation.scoring import time_per_example

GRID_FILE = "test_images.png"
GRID_MAX = 40  # test images shown in the grid: as many of each label, the first ones in split order


class ImageScorer:
    def __init__(self, model, labels: list[str], size: int, folder: Path | None, params: Params):
        self.model, self.labels, self.size, self.folder = model, labels, size, folder
        self.batch_size, self.max_pixels = params.evaluate.batch_size, params.image.max_pixels

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        from driftfit.modalities.image.data import load_pixels
        from driftfit.modalities.image.model import predict_proba

        return predict_proba(self.model, load_pixels(list(rows["path"]), self.size, self.max_pixels), self.batch_size)

    def runtime(self) -> dict:
        return {"device": "cpu", "torch_threads": torch.get_num_threads()}

    def latency(self, rows: pd.DataFrame, examples: int) -> dict:
        """Milliseconds per image, normalising included, decoding not (the first `examples` rows' images)."""
        from driftfit.modalities.image.data import load_pixels
        from driftfit.modalities.image.model import predict_proba

        pixels = load_pixels(list(rows["path"][:examples]), self.size)
        pool = pixels[torch.arange(max(examples, 32)) % len(pixels)]
        return time_per_example(lambda idx: predict_proba(self.model, pool[torch.as_tensor(idx)], len(idx)), examples)


def classifier(params: Params, folder: Path) -> ImageScorer:
    from driftfit.modalities.image.model import load_image_classifier

    model, labels, size = load_image_classifier(folder, params.model.trust_remote_code)
    return ImageScorer(model, labels, size, Path(folder), params)


def baseline(params: Params, labels: list[str]) -> ImageScorer:
    from driftfit.modalities.image.model import pretrained_classifier

    model = pretrained_classifier(params, len(labels), params.train.seed).eval()
    return ImageScorer(model, labels, model.image_size, None, params)


def plot_grid(paths: list[str], truth: list[str], predicted: list[str], title: str, path: Path) -> None:
    """A grid of images, each titled 'true / predicted' (green when right, red when wrong)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from driftfit.modalities.image.data import open_image

    n = min(len(paths), GRID_MAX)
    cols = min(8, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        with open_image(paths[i]) as image:
            ax.imshow(np.asarray(image.convert("RGB")))
        right = truth[i] == predicted[i]
        ax.set_title(f"{truth[i]} / {predicted[i]}", fontsize=7, color="green" if right else "red")
    fig.suptitle(f"{title} (true / predicted)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)



def evaluation_extras(params: Params, folder: Path, splits: dict, answers: dict) -> None:
    """test_images.png: up to GRID_MAX test images, as many of each label, with the shown model's answers
    (`answers`: model -> split -> predicted labels)."""
    if "test" not in splits:
        return
    shown = next((n for n in ("candidate", "champion") if n in answers), "baseline")
    test = splits["test"].assign(predicted=answers[shown]["test"])
    test = test.groupby("label", sort=True).head(max(1, GRID_MAX // max(test["label"].nunique(), 1)))
    plot_grid(list(test["path"]), list(test["label"].astype(str)), list(test["predicted"]),
              f"{shown} on the new test split", folder / GRID_FILE)
