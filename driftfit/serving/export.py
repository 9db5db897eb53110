"""A saved classifier as ONNX: one graph from input to probabilities, run by onnxruntime without torch.

Text: token ids and attention mask in; the encoder (LoRA and IA3 are merged into its weights at training,
bottleneck adapters run inside it, a peft prompt or prefix is part of the graph), mean pooling over the
text's own tokens and the head out, as softmax probabilities. Images: pixels (0..255) in; normalisation,
network and head out. Exported with torch's dynamo exporter (dynamic batch and text length), checked against
torch on fixed inputs (refused beyond `export.tolerance`), optionally quantized to int8 weights (onnxruntime's
dynamic quantization). The labels are in export.json and in the graph's own metadata (`labels`), in the
order of the probabilities' columns. Only .onnx, .json and the tokenizer's JSON are written: nothing pickled.

`export_model(model_dir, out_dir, ...)` works on any folder a strategy saved (a candidate or a version), so
promotion can export the candidate it stages; `run(params, version)` exports a registry version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np

from driftfit.errors import DriftfitError
from driftfit.io import atomic_dir
from driftfit.serving.champion import is_image
from driftfit.serving.onnx_runner import EXPORT_FILE, FORMAT, OnnxClassifier, export_dir, file_sha256

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
RUNNER_FILE = "predict_onnx.py"
log = logging.getLogger(__name__)

# Fixed inputs the export is checked on: short, long (truncated), punctuation, digits, accents, other scripts.
CHECK_TEXTS = [
    "hi", "What is the capital of France?", "I can't believe it's already December...",
    "the quick brown fox jumps over the lazy dog " * 12, "Ünïcödé, naïve café — 東京 and Москва",
    "2 + 2 = 4; 3.14159", "OK", "Tell me a joke about computers!", "   spaced   out   words   ",
    "Why is the sky blue? Because of Rayleigh scattering of sunlight in the atmosphere.",
]


@contextlib.contextmanager
def _quiet():
    """The exporter prints its progress and warns about what does not concern this graph (torchvision ops)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "onnxscript",
                                               "onnx_ir")] + [logging.getLogger()]  # the quantizer logs on root
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ---- the graphs --------------------------------------------------------------------------------

def _text_graph(model_dir: Path, trust_remote_code: bool):
    import torch

    from driftfit.modalities.text.model import load_classifier

    model, tokenizer, labels = load_classifier(model_dir, trust_remote_code)

    class TextGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return torch.softmax(logits.float(), dim=-1)

    return TextGraph().eval(), model, tokenizer, labels


def _image_graph(model_dir: Path, trust_remote_code: bool):
    import torch

    from driftfit.modalities.image.model import load_image_classifier

    model, labels, size = load_image_classifier(model_dir, trust_remote_code)

    class ImageGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(model.image_mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(model.image_std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, pixels):
            return torch.softmax(self.model((pixels / 255.0 - self.mean) / self.std).float(), dim=-1)

    return ImageGraph().eval(), model, labels, size


def check_images(size: int, count: int = 6) -> list[np.ndarray]:
    """Seeded RGB images (gradients and noise) of size x size, uint8: the image export's check inputs."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    images = []
    for i in range(count):
        base = (ramp[None, :, None] * (i % 3 == 0) + ramp[:, None, None] * (i % 3 == 1) + 128 * (i % 3 == 2))
        noisy = base + rng.normal(0, 40 * (i / count), (size, size, 3))
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return images


def _export_graph(graph, example: tuple, names: list[str], dynamic: dict, path: Path, opset: int) -> None:
    import torch

    with _quiet(), torch.no_grad():
        torch.onnx.export(graph, example, str(path), input_names=names, output_names=["probabilities"],
                          dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False)


def _label_graph(path: Path, meta: dict) -> None:
    """Write the label order (and what the graph is) into the .onnx file's own metadata."""
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"labels": json.dumps(meta["labels"], ensure_ascii=False),
                                        "modality": meta["modality"], "version": meta.get("version") or "",
                                        "producer": "driftfit"})
    onnx.save(model, str(path))


def _quantize(src: Path, dst: Path) -> None:
    """int8 weights with one scale per output channel, activations quantized as they come (onnxruntime's dynamic
    quantization). One scale per weight matrix lost 6 points of accuracy on the default data's test split (MiniLM's
    rows differ widely in range); per channel kept it (bench/results/serving)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)


# ---- the export ----------------------------------------------------------------------------------

def export_model(model_dir: str | Path, out_dir: str | Path, *, max_seq_len: int = 64, quantize: bool = True,
                 opset: int = 20, tolerance: float = 1e-4, trust_remote_code: bool = False,
                 version: str | None = None, model_sha256: str | None = None) -> dict:
    """Export the classifier saved in `model_dir` into `out_dir` (replaced whole, or left as it was on error).

    The fp32 graph must give torch's probabilities within `tolerance` on the check inputs, else nothing is
    written; the int8 graph's difference and top-label agreement are recorded, not judged. Returns export.json.
    """
    import torch

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "classifier.json").is_file() and not (model_dir / "labels.json").is_file():
        raise DriftfitError(f"'{model_dir}': not a saved classifier (no classifier.json or labels.json)")
    image = is_image(model_dir)
    meta: dict = {"format": FORMAT, "modality": "image" if image else "text", "version": version,
                  "model_sha256": model_sha256, "model": MODEL_FILE, "int8_model": INT8_FILE if quantize else None,
                  "output": "probabilities", "opset": opset,
                  "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "software": _versions()}
    with atomic_dir(out_dir) as tmp:
        if image:
            graph, model, labels, size = _image_graph(model_dir, trust_remote_code)
            inputs = check_images(size)
            pixels = torch.from_numpy(np.stack(inputs[:2]).transpose(0, 3, 1, 2).astype(np.float32))
            batch = torch.export.Dim("batch")
            _export_graph(graph, (pixels,), ["pixels"], {"pixels": {0: batch}}, tmp / MODEL_FILE, opset)
            meta.update(labels=labels, inputs=["pixels"], image_size=size, image_mean=list(model.image_mean),
                        image_std=list(model.image_std))
            reference = _torch_image_proba(model, inputs, size)
        else:
            graph, model, tokenizer, labels = _text_graph(model_dir, trust_remote_code)
            if not getattr(tokenizer, "is_fast", False):
                raise DriftfitError(f"'{model_dir}': its tokenizer has no tokenizer.json (not a fast tokenizer), "
                                    "which onnxruntime's users need; it cannot be exported")
            example = tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
            batch, length = torch.export.Dim("batch"), torch.export.Dim("tokens")
            dynamic = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
            _export_graph(graph, (example["input_ids"], example["attention_mask"]), ["input_ids", "attention_mask"],
                          dynamic, tmp / MODEL_FILE, opset)
            (tmp / "tokenizer").mkdir()
            tokenizer.backend_tokenizer.save(str(tmp / "tokenizer" / "tokenizer.json"))
            meta.update(labels=labels, inputs=["input_ids", "attention_mask"], max_seq_len=max_seq_len,
                        tokenizer="tokenizer/tokenizer.json", pad_token_id=int(tokenizer.pad_token_id or 0))
            inputs = CHECK_TEXTS
            reference = _torch_text_proba(model, tokenizer, inputs, max_seq_len)
        _label_graph(tmp / MODEL_FILE, meta)
        if quantize:
            _quantize(tmp / MODEL_FILE, tmp / INT8_FILE)
            _label_graph(tmp / INT8_FILE, meta)
        shutil.copyfile(Path(__file__).with_name("onnx_runner.py"), tmp / RUNNER_FILE)
        files = [MODEL_FILE, RUNNER_FILE] + ([INT8_FILE] if quantize else []) + \
            ([meta["tokenizer"]] if not image else [])
        meta["files"] = {name: file_sha256(tmp / name) for name in sorted(files)}
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

        fp32 = OnnxClassifier(tmp).predict_proba(inputs)
        diff = float(np.abs(fp32 - reference).max())
        if not diff <= tolerance:
            raise DriftfitError(f"export of '{model_dir}': the ONNX graph's probabilities differ from torch's by up to "
                                f"{diff:.2e} on the check inputs, more than export.tolerance {tolerance:g}; nothing "
                                "was written")
        meta["check"] = {"inputs": len(inputs), "fp32_max_abs_diff": diff}
        if quantize:
            int8 = OnnxClassifier(tmp, int8=True).predict_proba(inputs)
            meta["check"].update(int8_max_abs_diff=float(np.abs(int8 - reference).max()),
                                 int8_same_label=float((int8.argmax(1) == reference.argmax(1)).mean()))
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s to %s (fp32 max |diff| %.1e)", model_dir, out_dir, diff)
    return meta


def _torch_text_proba(model, tokenizer, texts: list[str], max_seq_len: int) -> np.ndarray:
    import torch

    from driftfit.modalities.text.model import predict_proba

    return predict_proba(model, tokenizer, texts, max_seq_len, 64, torch.device("cpu"))


def _torch_image_proba(model, images: list[np.ndarray], size: int) -> np.ndarray:
    import torch

    from driftfit.modalities.image.model import predict_proba, to_pixels

    return predict_proba(model.cpu(), torch.stack([to_pixels(im, size) for im in images]))


def _versions() -> dict:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("torch", "onnx", "onnxruntime", "onnxscript")}


# ---- a registry version, with params.yaml's export settings --------------------------------------

def export_with_params(params, model_dir: str | Path, out_dir: str | Path, version: str | None = None,
                       model_sha256: str | None = None, max_seq_len: int | None = None) -> dict:
    """export_model with params' export.* settings (what promotion would call on the candidate it stages)."""
    cfg = params.export
    return export_model(model_dir, out_dir, max_seq_len=max_seq_len or params.model.max_seq_len,
                        quantize=cfg.quantize, opset=cfg.opset, tolerance=cfg.tolerance,
                        trust_remote_code=params.model.trust_remote_code, version=version, model_sha256=model_sha256)


def run(params, version: str | None = None, out: str | Path | None = None) -> dict:
    """`driftfit export`: a registry version (default: the champion), verified, into export.dir/<version>/."""
    from driftfit.state import registry
    from driftfit.serving.champion import max_seq_len_of, resolve, verified_folder

    root = Path(params.paths.registry)
    name, record = resolve(root, version)
    folder = verified_folder(root, name)
    out = Path(out) if out else export_dir(params.absolute(params.export.dir), name)
    meta = export_with_params(params, folder, out, name, record.get("model_sha256") or registry.model_digest(folder),
                              max_seq_len_of(record))
    return {"version": name, "folder": str(out), **{k: meta[k] for k in ("model", "int8_model", "check")}}


# ---- where a version's export lives ------------------------------------------------------------

