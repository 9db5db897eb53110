"""Images: the packaged EfficientNet-Lite0 read safely and converted once to safetensors, its ImageNet
predictions on scikit-image's photos, the restricted unpickler, folder and manifest tables, every bad image's
error, duplicates and leakage, augmentation, and one real training step on animal silhouettes.

Real weights and real images throughout, small: a handful of 224 x 224 images per forward pass.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from driftfit.modalities.image import model as im
from driftfit.errors import ConfigError, DataError, ValidationFailed
from driftfit.modalities.image.augment import image_transforms
from driftfit.modalities.image.data import (ANIMAL_CLASSES, NumpyOnlyUnpickler, distinct_images, open_image,
                                 read_animal_mnist, read_digits, read_image_folder, read_manifest, read_numpy_pickle,
                                 skimage_photos, write_animal_silhouettes)
from driftfit.modalities.image.checks import (ImageRules, find_image_duplicates, perceptual_hash, profile_images,
                                     raise_if_failed, validate_images)
from tests.conftest import ROOT

BAD = ROOT / "tests" / "data" / "bad" / "images"

# What the photos show, as classes of ImageNet-1k's published list (the index order every ImageNet model shares):
# chelsea is a cat (281 tabby .. 285 Egyptian cat), coffee a cup of coffee (504 coffee mug, 967 espresso, 968 cup),
# camera a camera on a tripod (732 Polaroid camera, 759 reflex camera, 872 tripod). astronaut and rocket show
# nothing ImageNet has a class for: they only take part in the checks that hold for any image.
CATS, COFFEE, CAMERA = {281, 282, 283, 284, 285}, {504, 967, 968}, {732, 759, 872}
PHOTOS = ["chelsea", "coffee", "camera", "astronaut", "rocket"]

# EfficientNet-Lite0 as TensorFlow's efficientnet_lite_builder.py defines it, written here from that definition:
# stem 3x3 stride 2 to 32 channels; seven stages of inverted-residual blocks (repeats, kernel, first stride,
# expansion, out channels); head 1x1 to 1280; ReLU6; batch norm eps 1e-3; no squeeze-excitation; TensorFlow's
# "SAME" padding (an odd pad's extra pixel after: right, bottom); a residual where a block keeps its shape.
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _tf_same_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
    import torch.nn.functional as F

    k, pads = weight.shape[-1], []
    for size in x.shape[-2:]:
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=stride, groups=groups)


def lite0_by_hand(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """ImageNet logits of EfficientNet-Lite0 from weights under timm's names, with torch's functional ops only."""
    import torch.nn.functional as F

    def bn(t, name):
        return F.batch_norm(t, w[f"{name}.running_mean"], w[f"{name}.running_var"], w[f"{name}.weight"],
                            w[f"{name}.bias"], training=False, eps=1e-3)

    x = F.relu6(bn(_tf_same_conv(x, w["conv_stem.weight"], 2), "bn1"))
    for stage, (repeats, _, stride, expand, out) in enumerate(LITE0_STAGES):
        for i in range(repeats):
            b, inp, s = f"blocks.{stage}.{i}", x, stride if i == 0 else 1
            if expand == 1:
                x = F.relu6(bn(_tf_same_conv(x, w[f"{b}.conv_dw.weight"], s, groups=x.shape[1]), f"{b}.bn1"))
                x = bn(F.conv2d(x, w[f"{b}.conv_pw.weight"]), f"{b}.bn2")
            else:
                x = F.relu6(bn(F.conv2d(x, w[f"{b}.conv_pw.weight"]), f"{b}.bn1"))
                x = F.relu6(bn(_tf_same_conv(x, w[f"{b}.conv_dw.weight"], s, groups=x.shape[1]), f"{b}.bn2"))
                x = bn(F.conv2d(x, w[f"{b}.conv_pwl.weight"]), f"{b}.bn3")
            assert x.shape[1] == out
            if x.shape == inp.shape:
                x = x + inp
    x = F.relu6(bn(F.conv2d(x, w["conv_head.weight"]), "bn2"))
    return F.linear(x.mean((2, 3)), w["classifier.weight"], w["classifier.bias"])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The safetensors cache, converted once for this module."""
    folder = tmp_path_factory.mktemp("pretrained") / "efficientnet_lite0"
    im.convert_to_safetensors(im.packaged_weights_file(), folder)
    return folder


@pytest.fixture(scope="module")
def silhouettes(tmp_path_factory) -> pd.DataFrame:
    """3 silhouettes of each of the 10 animals as PNGs (the embedded example, shrunk)."""
    return write_animal_silhouettes(tmp_path_factory.mktemp("animals") / "images", per_class=3, seed=0)


# ---- the pretrained model ---------------------------------------------------------------------

def test_weights_are_converted_once_then_read_from_safetensors_only(cache, monkeypatch):
    source = im.packaged_weights_file()
    with safe_open(str(cache / im.WEIGHTS_FILE), "pt") as f:
        assert f.metadata()["source"] == source.name
        assert len(list(f.keys())) == 296
    original = torch.load(source, map_location="cpu", weights_only=True)

    def no_pickles(*args, **kwargs):
        raise AssertionError("torch.load called after the conversion")

    monkeypatch.setattr(torch, "load", no_pickles)
    weights = im.pretrained_weights(cache)
    assert weights.keys() == original.keys()
    assert all(torch.equal(weights[k], original[k]) for k in original)
    assert not list(cache.parent.glob(".*tmp*"))  # written whole: no temp folder left


def test_a_pickle_with_code_is_refused_by_the_conversion(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(1), "extra": Payload()}, bad)
    with pytest.raises(DataError, match=r"bad\.pth.*weights_only=True.*expected a file of tensors"):
        im.convert_to_safetensors(bad, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_imagenet_predictions_on_scikit_image_photos(cache):
    """The cat is a cat, the coffee a coffee, the camera a camera or its tripod; each photo scored alone gets what
    it gets in a batch; the mirrored cat is still a cat."""
    photos = skimage_photos(PHOTOS)
    model = im.imagenet_model(im.pretrained_weights(cache))
    with torch.no_grad():
        probs = model(im.preprocess(list(photos.values()))).softmax(-1)
        alone = torch.cat([model(im.preprocess([photo])).softmax(-1) for photo in photos.values()])
        mirrored = model(im.preprocess([np.ascontiguousarray(np.asarray(photos["chelsea"])[:, ::-1])])).softmax(-1)
    top = {name: int(p.argmax()) for name, p in zip(photos, probs)}
    assert top["chelsea"] in CATS and top["coffee"] in COFFEE and top["camera"] in CAMERA, top
    assert float(probs[0, sorted(CATS)].sum()) > 0.5  # most of its belief on cats, not just a lead among 1000
    assert int(mirrored.argmax()) in CATS
    assert torch.allclose(alone, probs, atol=1e-5)


def test_the_input_is_the_whole_photo_in_rgb_scaled_as_tensorflow_lite_scales_it():
    """What the model is fed, computed here with PIL and numpy: the whole photo resized (bilinear) to 224 x 224,
    RGB channels in that order, (pixel - 127) / 128 as TensorFlow's EfficientNet-Lite was trained on (within the
    0.5/255 that separates that from the 0.5 mean and std used)."""
    photo = np.asarray(skimage_photos(["chelsea"])["chelsea"])
    resized = np.asarray(Image.fromarray(photo).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR))
    by_hand = (resized.astype(np.float32) - 127.0) / 128.0
    fed = im.preprocess([photo])
    assert fed.shape == (1, 3, 224, 224)
    assert np.abs(fed[0].permute(1, 2, 0).numpy() - by_hand).max() < 0.01


def test_the_packaged_network_is_efficientnet_lite0_as_published(cache):
    """The companion package's network, with the packaged weights, computes what EfficientNet-Lite0 written here
    from TensorFlow's definition computes with the same weights under timm's names (timm itself cannot be
    installed beside this torch: its torchvision is a CUDA build, see driftfit.image_model)."""
    weights = im.pretrained_weights(cache)
    mapped = im.timm_state_dict(weights, stage_depths=[repeats for repeats, *_ in LITE0_STAGES])
    assert len(mapped) == len(weights) == 296
    assert {"conv_stem.weight", "blocks.0.0.conv_dw.weight", "blocks.1.0.conv_pwl.weight",
            "blocks.5.3.bn3.running_var", "blocks.6.0.conv_pw.weight", "conv_head.weight",
            "classifier.bias"} <= mapped.keys()
    for stage, (repeats, kernel, *_) in enumerate(LITE0_STAGES):
        assert all(mapped[f"blocks.{stage}.{i}.conv_dw.weight"].shape[-1] == kernel for i in range(repeats))
    x = im.preprocess(list(skimage_photos(PHOTOS).values()))
    with torch.no_grad():
        reference, packaged = lite0_by_hand(mapped, x), im.imagenet_model(weights)(x)
    assert (packaged - reference).abs().max() < 1e-4


def test_features_and_layer_groups(cache):
    model = im.image_classifier(4, cache, seed=0)
    x = im.preprocess(list(skimage_photos(["chelsea", "coffee"]).values()))
    feats = im.features(model, x)
    assert feats.shape == (2, im.NUM_FEATURES) and torch.isfinite(feats).all()
    groups = im.layer_groups(model)
    assert list(groups) == ["stem", "early", "late", "top", "head"]
    assert len(groups["early"]) + len(groups["late"]) == 16
    owned = [p for ms in groups.values() for m in ms for p in m.parameters()]
    assert len({id(p) for p in owned}) == len(list(model.parameters()))  # every weight in exactly one group
    with pytest.raises(ConfigError, match="expected some of"):
        im.freeze(model, ["stem", "middle"])
    same = im.image_classifier(4, cache, seed=0)
    assert torch.equal(same.backbone._fc.weight, model.backbone._fc.weight)  # the head's init is seeded


def test_scratch_classifier_is_seeded_and_untrained():
    he, again = im.scratch_classifier(3, "he", seed=1), im.scratch_classifier(3, "he", seed=1)
    xavier = im.scratch_classifier(3, "xavier", seed=1)
    w = he.backbone._conv_stem.weight
    assert torch.equal(w, again.backbone._conv_stem.weight) and not torch.equal(w, xavier.backbone._conv_stem.weight)
    with pytest.raises(ConfigError, match="expected 'he' or 'xavier'"):
        im.scratch_classifier(3, "zeros")


def test_one_training_step_on_silhouettes_with_a_new_10_class_head(cache, silhouettes):
    labels = sorted(silhouettes["label"].unique())
    assert labels == sorted(ANIMAL_CLASSES)
    batch = silhouettes.groupby("label").head(1)  # one of each animal
    pixels = torch.stack([im.to_pixels(open_image(p)) for p in batch["path"]])
    target = torch.tensor([labels.index(x) for x in batch["label"]])
    train_tf, _ = image_transforms(seed=0)

    model = im.image_classifier(len(labels), cache, seed=0)
    frozen = im.freeze(model, ["stem", "early"])  # the "partial" strategy
    assert frozen > 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert not model.backbone._bn0.training and model.backbone._bn1.training  # frozen batch norm stays put
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = torch.nn.functional.cross_entropy(model(train_tf(pixels)), target)
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss) and 1.0 < loss.item() < 6.0  # about ln(10) for a new head
    after = model.state_dict()
    assert not torch.equal(before["backbone._fc.weight"], after["backbone._fc.weight"])
    assert not torch.equal(before["backbone._conv_head.weight"], after["backbone._conv_head.weight"])
    assert torch.equal(before["backbone._conv_stem.weight"], after["backbone._conv_stem.weight"])
    assert torch.equal(before["backbone._bn0.running_mean"], after["backbone._bn0.running_mean"])
    assert torch.equal(before["backbone._blocks.4._bn2.running_mean"], after["backbone._blocks.4._bn2.running_mean"])


def test_lora_wraps_the_pointwise_convolutions(cache):
    from peft import LoraConfig, get_peft_model

    model = im.image_classifier(3, cache)
    targets = im.lora_target_modules(model)
    assert len(targets) == 32 and all(t.endswith(("_expand_conv", "_project_conv", "_conv_head")) for t in targets)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=targets,
                                                  modules_to_save=["backbone._fc"]))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert 0 < trainable < total / 10
    out = peft_model(torch.zeros(1, 3, 96, 96))
    out.sum().backward()
    assert out.shape == (1, 3)


def test_a_local_hugging_face_image_model_folder(tmp_path):
    """No image model from the hub is on this machine, so a tiny ViT is made and saved here."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=37, num_labels=7)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    model, processor = im.hf_image_classifier(tmp_path / "vit", num_labels=3)
    x = torch.zeros(2, 3, 32, 32)
    assert model(x).shape == (2, 3) and model.features(x).shape == (2, 32)
    assert processor == {"size": im.IMAGE_SIZE, "mean": list(im.MEAN), "std": list(im.STD)}  # none saved
    with pytest.raises(ConfigError, match="no model folder there"):
        im.hf_image_classifier(tmp_path, num_labels=3)
    pickled = tmp_path / "pickled"
    config.save_pretrained(pickled)
    torch.save(model.model.state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="pickled'.*no file named model.safetensors.*pickled weights are not loaded"):
        im.hf_image_classifier(pickled, num_labels=3)


def test_a_hugging_face_classifier_freezes_by_layer_and_reloads_identically_without_its_folder(tmp_path):
    """A tiny real ViT (24 x 24, its own mean and std): a seeded new head, layer groups that cover every weight,
    partial's cap, LoRA targets, a seeded scratch copy, and a save that reloads to the same probabilities with
    the original folder gone."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=24, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=3)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    (tmp_path / "vit" / "preprocessor_config.json").write_text(
        f'{{"size": {{"height": 24, "width": 24}}, "image_mean": {mean}, "image_std": {std}}}')
    model, processor = im.hf_image_classifier(tmp_path / "vit", num_labels=4, seed=3)
    assert processor == {"size": 24, "mean": mean, "std": std}
    assert (model.image_size, list(model.image_mean), list(model.image_std)) == (24, mean, std)
    again, _ = im.hf_image_classifier(tmp_path / "vit", num_labels=4, seed=3)
    other, _ = im.hf_image_classifier(tmp_path / "vit", num_labels=4, seed=4)
    assert model.head_name == "model.classifier" and model.head.out_features == 4
    assert torch.equal(model.head.weight, again.head.weight) and not torch.equal(model.head.weight, other.head.weight)

    groups = im.layer_groups(model)
    assert {k: len(v) for k, v in groups.items()} == {"stem": 1, "early": 1, "late": 1, "top": 1, "head": 1}
    owned = [p for ms in groups.values() for m in ms for p in m.parameters()]
    assert len(owned) == len({id(p) for p in owned}) == len(list(model.parameters()))  # each weight in one group
    assert im.freeze(again, ("stem", "early"), early_layers=9) > 0 and again.early_layers == 1  # one layer learns
    layer0, layer1 = (again.model.get_submodule(f"vit.layers.{i}") for i in (0, 1))
    assert not any(p.requires_grad for p in layer0.parameters()) and all(p.requires_grad for p in layer1.parameters())
    again.train()
    assert not layer0.training and layer1.training  # frozen layers keep dropout off, as frozen batch norm
    targets = im.lora_target_modules(model)
    assert "model.classifier" not in targets and "model.vit.embeddings.patch_embeddings.projection" in targets
    assert len(targets) == 1 + 2 * 6  # the patch embedding; per layer q, k, v, o and the two MLP Linears

    scratch = im.hf_scratch_classifier(tmp_path / "vit", 4, "he", seed=1)
    assert torch.equal(scratch.head.weight, im.hf_scratch_classifier(tmp_path / "vit", 4, "he", seed=1).head.weight)
    patch = "model.vit.embeddings.patch_embeddings.projection.weight"
    assert not torch.equal(scratch.state_dict()[patch], model.state_dict()[patch])

    out = tmp_path / "saved"
    out.mkdir()
    im.save_image_classifier(model, list("abcd"), model.image_size, out)
    assert sorted(p.name for p in out.iterdir()) == ["classifier.json", "config.json", "model.safetensors"]
    shutil.rmtree(tmp_path / "vit")  # the saved model does not need the folder it came from
    reloaded, labels, size = im.load_image_classifier(out)
    assert (labels, size, list(reloaded.image_mean), list(reloaded.image_std)) == (list("abcd"), 24, mean, std)
    pixels = torch.randint(0, 256, (5, 3, 24, 24), dtype=torch.uint8)
    assert np.array_equal(im.predict_proba(model, pixels), im.predict_proba(reloaded, pixels))


# ---- data -------------------------------------------------------------------------------------------

class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_the_restricted_unpickler_refuses_a_malicious_pickle(tmp_path):
    bad = tmp_path / "animal_data.gz"
    bad.write_bytes(gzip.compress(pickle.dumps([np.zeros(3, dtype=np.uint8), _RunsCode()])))
    with pytest.raises(DataError, match=r"animal_data\.gz': refused to load 'posix\.system': only numpy arrays"):
        read_numpy_pickle(bad)
    objects = tmp_path / "objects.pkl"
    objects.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(DataError, match="holds a array of object, expected a numeric numpy array"):
        read_numpy_pickle(objects)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        NumpyOnlyUnpickler(__import__("io").BytesIO(pickle.dumps(pd.DataFrame()))).load()


def test_animal_mnist_and_digits_are_real_and_complete():
    images, labels = read_animal_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    distinct = distinct_images(images)
    assert len(distinct) == 10_000 - 284  # pixel-identical repeats, each within one animal; never sampled
    profile = pd.DataFrame({"path": [f"{i}" for i in range(len(images))], "sha256": "-",
                            "phash": [perceptual_hash(Image.fromarray(a)) for a in images]})
    assert find_image_duplicates(profile, max_distance=0)["count"] == 290  # the 284 and 6 near-identical
    digits, digit_labels, names = read_digits()
    assert digits.shape == (1797, 8, 8) and digits.max() == 255 and names[3] == "3"


def test_image_folder_and_manifests(silhouettes, tmp_path):
    assert len(silhouettes) == 30 and silhouettes["label"].value_counts().eq(3).all()
    root = Path(silhouettes["path"][0]).parents[1]
    assert read_image_folder(root).equals(silhouettes)
    again = write_animal_silhouettes(tmp_path / "again", per_class=3, seed=0)
    assert [Path(p).name for p in again["path"]] == [Path(p).name for p in silhouettes["path"]]  # seeded

    manifest = pd.DataFrame({"path": [str(Path(p).relative_to(root)) for p in silhouettes["path"]],
                             "label": silhouettes["label"]})
    manifest.to_csv(root / "manifest.csv", index=False)
    manifest.to_parquet(root / "manifest.parquet")
    assert read_manifest(root / "manifest.csv").equals(silhouettes)
    assert read_manifest(root / "manifest.parquet").equals(silhouettes)

    manifest.rename(columns={"label": "class"}).to_csv(tmp_path / "no_label.csv", index=False)
    with pytest.raises(DataError, match=r"no_label\.csv': column\(s\) \['label'\] missing.*expected path,label"):
        read_manifest(tmp_path / "no_label.csv")
    pd.DataFrame({"path": ["cat/missing.png"], "label": ["cat"]}).to_csv(tmp_path / "gone.csv", index=False)
    with pytest.raises(DataError, match=r"gone\.csv': 1 listed file\(s\) do not exist.*missing\.png"):
        read_manifest(tmp_path / "gone.csv")
    with pytest.raises(DataError, match="no image files in its sub-folders"):
        read_image_folder(tmp_path / "again" / "cat")  # images, but no class sub-folders


# ---- validation --------------------------------------------------------------------------------

BAD_IMAGES = {  # file -> what its error must say (besides naming the file)
    "truncated.png": r"PNG image 32 x 32 does not decode \(image file is truncated; 51 bytes, likely truncated",
    "truncated.jpg": r"does not open as an image \(Truncated File Read; 402 bytes, likely truncated or corrupt",
    "empty.png": r"empty file \(0 bytes\): expected a complete image file",
    "not_an_image.jpg": r"not an image \(57 bytes in a format PIL cannot identify\) although named '\.jpg': expected a "
                        "complete image",
    "huge_header.png": r"too large to decode \(Image size \(900000000 pixels\).*expected at most 40,000,000 pixels "
                       r"\(max_pixels, a decompression-bomb guard\); not decoded",
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_each_bad_image_gets_a_clear_error_naming_the_file(name):
    assert (BAD / name).stat().st_size < 1000  # small on disk, whatever its header claims
    with pytest.raises(DataError, match=f"'{BAD / name}': {BAD_IMAGES[name]}"):
        open_image(BAD / name)


def test_max_pixels_is_checked_before_decoding(silhouettes):
    path = silhouettes["path"][0]
    with pytest.raises(DataError, match=r"28 x 28 = 784 pixels: expected at most 500 \(max_pixels"):
        open_image(path, max_pixels=500)


def test_validation_names_every_bad_image(silhouettes, tmp_path):
    train = pd.concat([silhouettes, pd.DataFrame({"path": [str(BAD / n) for n in BAD_IMAGES],
                                                  "label": "cat"})], ignore_index=True)
    val = silhouettes.iloc[:0]
    summary = validate_images({"train": train, "val": val})
    assert not summary["success"]
    decode_error = next(e for e in summary["errors"] if "image rule decodable" in e)
    for name, expected in BAD_IMAGES.items():
        assert f"train: '{BAD / name}'" in decode_error
    with pytest.raises(ValidationFailed, match=r"image validation failed: .*empty\.png"):
        raise_if_failed(summary)
    profile = profile_images({"train": train})
    bad = profile[~profile["decodable"]]
    assert sorted(Path(p).name for p in bad["path"]) == sorted(BAD_IMAGES)
    good = profile[profile["decodable"]].iloc[0]
    assert (good["width"], good["height"], good["mode"], good["channels"]) == (28, 28, "L", 1)
    assert len(good["phash"]) == 64 and len(good["sha256"]) == 64 and good["bytes"] > 0


def test_clean_splits_pass_and_report_class_counts(silhouettes):
    train = silhouettes.groupby("label").head(2)
    val = silhouettes.groupby("label").tail(1)
    summary = validate_images({"train": train, "val": val}, ImageRules(labels={"min_rows_per_class": 2}))
    assert summary["success"], summary["errors"]
    assert summary["class_counts"]["train"] == {c: 2 for c in sorted(ANIMAL_CLASSES)}
    few = validate_images({"train": train}, ImageRules(labels={"min_rows_per_class": 3}))
    assert any("has 2 training images: expected at least 3 training rows per label" in e for e in few["errors"])


def test_duplicates_within_a_split_and_leakage_across_splits(silhouettes, tmp_path):
    first, second = Path(silhouettes["path"][0]), Path(silhouettes["path"][3])
    copy = tmp_path / "copy.png"
    shutil.copy(first, copy)  # the same bytes
    cat, smaller = tmp_path / "cat.png", tmp_path / "cat_half.jpg"
    photo = Image.fromarray(skimage_photos(["chelsea"])["chelsea"])
    photo.save(cat)
    photo.resize((photo.width // 2, photo.height // 2)).save(smaller, quality=75)  # same picture, new bytes
    extra = pd.DataFrame({"path": [str(copy), str(cat), str(smaller)], "label": ["bear", "cat", "cat"]})
    train = pd.concat([silhouettes, extra], ignore_index=True)
    val = pd.DataFrame({"path": [str(second)], "label": ["bear"]})
    summary = validate_images({"train": train, "val": val}, ImageRules(labels={"min_rows_per_class": 1}))
    dup = summary["duplicates"]["train"]
    assert dup["count"] == 2 and dup["exact"] == 1
    assert {(e["path"], e["same_as"]) for e in dup["examples"]} == {(str(copy), str(first)), (str(smaller), str(cat))}
    assert any("train: 2 of 33 images (6.1%) repeat an earlier one (1 byte for byte" in w for w in summary["warnings"])
    leak = next(e for e in summary["errors"] if "also in train" in e)
    assert f"val: 1 image(s) also in train: '{second}' = train '{second}' (by content (sha256))" in leak
    assert summary["leakage"]["train->val"]["count"] == 1


# ---- augmentation -----------------------------------------------------------------------------

def test_augmentation_shapes_and_determinism_with_a_seed():
    pixels = torch.stack([im.to_pixels(a, size=64) for a in skimage_photos(["chelsea", "coffee"]).values()])
    train_a, eval_tf = image_transforms(size=48, seed=7)
    train_b, _ = image_transforms(size=48, seed=7)
    train_c, _ = image_transforms(size=48, seed=8)
    first, second = train_a(pixels), train_a(pixels)
    assert first.shape == (2, 3, 48, 48) and first.dtype == torch.float32
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(train_b(pixels), first) and torch.equal(train_b(pixels), second)
    assert not torch.equal(first, second) and not torch.equal(train_c(pixels), first)
    evaluated = eval_tf(pixels)
    assert evaluated.shape == (2, 3, 48, 48) and torch.equal(evaluated, eval_tf(pixels))
    assert evaluated.min() >= -1 and evaluated.max() <= 1  # mean 0.5, std 0.5
    with pytest.raises(ConfigError, match="randaugment_m = 30: expected 1..29"):
        image_transforms(randaugment_m=30)
