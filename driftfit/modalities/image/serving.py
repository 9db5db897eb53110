"""Serving an image classifier: what a request holds, how a saved folder scores with torch, its ONNX graph.

driftfit.serving (load, predict, export, serve) asks the version's modality for these parts, never its name.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from driftfit.errors import BadRequest

REQUEST_KEY = "images"                                 # the list /predict takes (base64 PNG or JPEG files)
REQUEST_EXAMPLE = '{"images": ["<base64 PNG>", ...]}'
INPUT_COLUMN = "image_column"                          # predict.<this>: a manifest's column of image paths
ITEMS_ARE_FILES = True                                 # a predict input is a folder of images or a manifest
EXAMPLE = ('["photos/cat.png", "photos/dog.jpg"]', "[{'label': 'cat', 'probability': 0.91}, ...]")


def check_items(items: list) -> None:
    """Paths, PIL images and H x W x 3 uint8 arrays are all read (open_item)."""


def open_item(item: Any):
    """A path is opened safely (open_image: a size guard, errors naming the file); PIL images and arrays pass."""
    if isinstance(item, (str, Path)):
        from driftfit.modalities.image.data import open_image

        return open_image(item)
    return item


def decode_request_item(data: str, index: int, max_pixels: int):
    """A base64 image from a request, decoded only after its header says it is small enough (a decompression-bomb
    guard); a BadRequest (4xx) says what is wrong."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(422, f"images[{index}] is not base64; expected a base64-encoded PNG or JPEG file") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            if image.width * image.height > max_pixels:
                raise BadRequest(413, f"images[{index}] has {image.width} x {image.height} pixels; at most "
                                      f"{max_pixels:,}")
            return image.convert("RGB")
    except BadRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise BadRequest(422, f"images[{index}] does not decode as an image ({len(raw):,} bytes); expected a "
                              "complete PNG or JPEG file") from None


def saved_scorer(folder: Path, record: dict, device, batch_size: int,
                 trust_remote_code: bool) -> tuple[list[str], Callable[[list], np.ndarray]]:
    """(labels, images -> probabilities) for the saved classifier in `folder`, at the input size it recorded."""
    import torch

    from driftfit.modalities.image.model import load_image_classifier, predict_proba, to_pixels

    model, labels, size = load_image_classifier(folder, trust_remote_code)
    model = model.to(device)

    def proba(images: list) -> np.ndarray:
        return predict_proba(model, torch.stack([to_pixels(open_item(x), size) for x in images]), batch_size)

    return labels, proba


def check_images(size: int, count: int = 6) -> list[np.ndarray]:
    """Seeded RGB images (gradients and noise) of size x size, uint8: an export's check inputs."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    images = []
    for i in range(count):
        base = (ramp[None, :, None] * (i % 3 == 0) + ramp[:, None, None] * (i % 3 == 1) + 128 * (i % 3 == 2))
        noisy = base + rng.normal(0, 40 * (i / count), (size, size, 3))
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return images


def export_graph(folder: Path, trust_remote_code: bool, max_seq_len: int) -> dict:
    """What driftfit.serving.export needs to write and check one ONNX graph from pixels (0..255) to
    probabilities: normalisation, network and head (see the text modality's export_graph for the fields)."""
    import torch

    from driftfit.modalities.image.model import load_image_classifier, predict_proba, to_pixels

    model, labels, size = load_image_classifier(folder, trust_remote_code)

    class ImageGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(model.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(model.image_std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, pixels):
            return torch.softmax(self.model((pixels / 255.0 - self.mean) / self.std).float(), dim=-1)

    inputs = check_images(size)
    pixels = torch.from_numpy(np.stack(inputs[:2]).transpose(0, 3, 1, 2).astype(np.float32))
    reference = predict_proba(model.cpu(), torch.stack([to_pixels(im, size) for im in inputs]))
    return {"graph": ImageGraph().eval(), "example": (pixels,), "names": ["pixels"],
            "dynamic": {"pixels": {0: torch.export.Dim("batch")}},
            "meta": {"labels": labels, "inputs": ["pixels"], "image_size": size,
                     "image_mean": list(model.image_mean), "image_std": list(model.image_std)},
            "write_files": lambda out: [], "check_inputs": inputs, "reference": reference}

