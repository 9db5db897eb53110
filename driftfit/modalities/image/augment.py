"""Image augmentation for the train split only: random resized crop, horizontal flip, colour jitter and
RandAugment, seeded; val and test only get resized and normalised.

Kornia, not torchvision transforms v2: the only torchvision for torch 2.13 on PyPI (0.28.0) is a CUDA
build whose C++ ops fail to load beside the CPU torch, and once it is installed transformers imports it
and `from transformers import Trainer` fails (see driftfit.modalities.image.model). Kornia is plain torch, works on
whole batches (in the training loop, after collation, on the model's device) and has the same four
transforms, RandAugment included.

Both transforms take a batch B x 3 x H x W (uint8 0..255 or float 0..1, as driftfit.modalities.image.model.to_pixels
makes it) and return B x 3 x size x size, normalised for the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from driftfit.errors import ConfigError
from driftfit.modalities.image.model import IMAGE_SIZE, MEAN, STD, normalize


class TrainAugment:
    """The train transform: each call draws new random parameters from (seed, call number), so two
    instances with the same seed give the same sequence of batches, whatever else uses the global RNG."""

    def __init__(self, size: int, seed: int, flip: float, crop_scale: tuple[float, float], jitter: float,
                 randaugment_n: int, randaugment_m: int, mean: Sequence[float], std: Sequence[float]):
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment

        steps = [K.RandomResizedCrop((size, size), scale=crop_scale), K.RandomHorizontalFlip(p=flip)]
        if jitter > 0:
            steps.append(K.ColorJitter(jitter, jitter, jitter, min(jitter / 4, 0.5), p=0.8))
        if randaugment_n > 0:
            steps.append(RandAugment(n=randaugment_n, m=randaugment_m))
        self.pipeline = K.AugmentationSequential(*steps)
        self.seed, self.calls, self.mean, self.std = seed, 0, mean, std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
        with torch.random.fork_rng(devices=[]):  # kornia draws from torch's global generator
            torch.manual_seed(self.seed * 1_000_003 + self.calls)
            self.calls += 1
            with torch.no_grad():
                x = self.pipeline(x).clamp(0, 1)
        return normalize(x, self.mean, self.std)


def eval_transform(size: int = IMAGE_SIZE, mean: Sequence[float] = MEAN,
                   std: Sequence[float] = STD) -> Callable[[torch.Tensor], torch.Tensor]:
    """Val/test: resize to size x size (if not already) and normalise; nothing random."""
    def transform(pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return normalize(x, mean, std)
    return transform


def image_transforms(size: int = IMAGE_SIZE, seed: int = 0,
                     flip: float = 0.5,                              # horizontal flip probability; 0: none
                     crop_scale: tuple[float, float] = (0.6, 1.0),   # area kept by the crop: lower is stronger
                     jitter: float = 0.2,                            # brightness/contrast/saturation +-; hue a quarter
                     randaugment_n: int = 2,                         # RandAugment ops per image; 0 turns it off
                     randaugment_m: int = 9,                         # their magnitude, 1..29
                     mean: Sequence[float] = MEAN, std: Sequence[float] = STD,
                     ) -> tuple[TrainAugment, Callable[[torch.Tensor], torch.Tensor]]:
    """(train transform, eval transform) for the train split and for val/test."""
    if not 0 < randaugment_m < 30:
        raise ConfigError(f"randaugment_m = {randaugment_m}: expected 1..29 (RandAugment's magnitude scale)")
    if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
        raise ConfigError(f"crop_scale = {crop_scale}: expected 0 < low <= high <= 1 (share of the area kept)")
    train = TrainAugment(size, seed, flip, crop_scale, jitter, randaugment_n, randaugment_m, mean, std)
    return train, eval_transform(size, mean, std)


# ---- the modality's augment: copies of the training images, written as PNGs --------------------------

def augment(params, train, folder: Path):
    """The training images (absolute paths), then `augment.copies` augmented copies of each as PNGs in
    folder/images/ at image.size, named by their final place under paths.augmented; and how many each method
    changed. Seeded (augment.seed): the same inputs give the same pixels."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from driftfit.modalities.image.data import load_pixels

    cfg, image = params.augment, params.image
    originals = train.assign(augmented=False, methods="")
    rows = []
    methods = "+".join(m for m, on in (("crop", True), ("flip", image.flip > 0), ("jitter", image.jitter > 0),
                                       ("randaugment", image.randaugment_n > 0)) if on)
    if cfg.enabled and cfg.copies > 0:
        (folder / "images").mkdir()
        transform, _ = image_transforms(image.size, cfg.seed, image.flip, (image.crop_min_scale, 1.0),
                                        image.jitter, image.randaugment_n, image.randaugment_m)
        mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
        for copy in range(cfg.copies):
            for start in range(0, len(train), 64):
                part = train.iloc[start:start + 64]
                pixels = load_pixels(list(part["path"]), image.size, image.max_pixels)
                out = ((transform(pixels) * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
                for i, (label, array) in enumerate(zip(part["label"], out.permute(0, 2, 3, 1).numpy())):
                    name = f"images/{start + i:06d}-{copy}.png"
                    Image.fromarray(np.ascontiguousarray(array)).save(folder / name)
                    rows.append({"path": str(Path(params.paths.augmented) / name), "label": label,
                                 "augmented": True, "methods": methods})
    added = pd.DataFrame(rows, columns=["path", "label", "augmented", "methods"])
    augmented = pd.concat([originals[["path", "label", "augmented", "methods"]], added], ignore_index=True)
    return augmented, ({m: len(added) for m in methods.split("+")} if len(added) else {})
