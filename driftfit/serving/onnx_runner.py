"""Run a driftfit ONNX export with onnxruntime alone: no torch, no transformers, no driftfit.

An export folder (written by `driftfit export`) holds:

  model.onnx        encoder (adapters and peft prompts included), mean pooling and head in one graph;
                    inputs input_ids + attention_mask (int64, batch x tokens), or pixels (float32,
                    batch x 3 x size x size, 0..255); output `probabilities` (batch x labels)
  model.int8.onnx   the same with int8 weights (dynamic quantization), when it was asked for
  tokenizer/        tokenizer.json (text)
  export.json       labels in the graph's column order, max_seq_len or the image input, each file's SHA-256
  predict_onnx.py   this file

This file is copied into every export, so whoever receives one can score with it:

  pip install onnxruntime tokenizers numpy pillow
  python predict_onnx.py EXPORT_FOLDER "first text" "second text"        # JSON, one line per input
  python -c "from predict_onnx import OnnxClassifier; print(OnnxClassifier('EXPORT_FOLDER').predict(['hi']))"

It imports only numpy, onnxruntime, and tokenizers (texts) or Pillow (images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

EXPORT_FILE = "export.json"
FORMAT = 1


class ExportError(Exception):
    """The folder is not a complete, unchanged export this runner can read."""


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_export(folder: str | Path, verify: bool = True) -> dict:
    """export.json, after checking every file it lists still has the SHA-256 recorded at export."""
    folder = Path(folder)
    meta_file = folder / EXPORT_FILE
    if not meta_file.is_file():
        raise ExportError(f"'{folder}': no {EXPORT_FILE}; expected a folder written by 'driftfit export'")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ExportError(f"'{meta_file}': format {meta.get('format')!r}, this runner reads format {FORMAT}")
    if verify:
        for name, digest in meta["files"].items():
            path = folder / name
            if not path.is_file():
                raise ExportError(f"'{folder}': {name} is missing (listed in {EXPORT_FILE})")
            if file_sha256(path) != digest:
                raise ExportError(f"'{path}': its SHA-256 differs from the one recorded at export; the file was "
                                  "changed or damaged, so it is not loaded (export the version again)")
    return meta


class OnnxClassifier:
    """A text or image classifier from an export folder; `predict` gives a label and its probability per input."""

    def __init__(self, folder: str | Path, int8: bool = False, threads: int = 0, verify: bool = True):
        import onnxruntime as ort

        self.folder = Path(folder)
        self.meta = read_export(self.folder, verify)
        self.labels: list[str] = list(self.meta["labels"])
        self.modality: str = self.meta["modality"]
        self.version: str | None = self.meta.get("version")
        name = self.meta["int8_model"] if int8 else self.meta["model"]
        if not name:
            raise ExportError(f"'{self.folder}': exported without int8 quantization (export.quantize was false)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.folder / name), options, providers=["CPUExecutionProvider"])
        if self.modality == "text":
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(self.folder / self.meta["tokenizer"]))
            self.tokenizer.no_padding()  # batches are padded here, to their own longest text
            self.tokenizer.enable_truncation(int(self.meta["max_seq_len"]))

    # ---- inputs ---------------------------------------------------------------------------------

    def _text_batch(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encoded)
        ids = np.full((len(encoded), width), int(self.meta["pad_token_id"]), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for i, e in enumerate(encoded):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def _pixels(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """RGB, resized whole to size x size (bilinear), as float 0..255; the graph normalises them."""
        from PIL import Image

        size = int(self.meta["image_size"])
        rows = []
        for image in images:
            if isinstance(image, (str, Path)):
                with Image.open(image) as opened:
                    image = opened.convert("RGB")
            elif isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            rows.append(np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)))
        return {"pixels": np.stack(rows).transpose(0, 3, 1, 2).astype(np.float32)}

    # ---- scoring --------------------------------------------------------------------------------

    def predict_proba(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Probabilities, one row per input, columns in `labels` order. Texts are scored sorted by length (little
        padding), and returned in input order."""
        items = list(items)
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        if not items:
            return out
        order = np.argsort([len(t) for t in items], kind="stable") if self.modality == "text" \
            else np.arange(len(items))
        for start in range(0, len(items), batch_size):
            picked = order[start:start + batch_size]
            chunk = [items[i] for i in picked]
            feed = self._text_batch(chunk) if self.modality == "text" else self._pixels(chunk)
            out[picked] = self.session.run(["probabilities"], feed)[0]
        return out

    def predict(self, items: Sequence[Any], batch_size: int = 64) -> list[dict]:
        """[{"label": ..., "probability": ...}, ...], one per input."""
        probs = self.predict_proba(items, batch_size)
        best = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
        return [{"label": self.labels[k], "probability": float(probs[i, k])} for i, k in enumerate(best)]


def export_dir(exports: str | Path, version: str) -> Path:
    return Path(exports) / version


def find_export(registry: str | Path, version: str, exports: str | Path, model_sha256: str | None) -> Path | None:
    """The version's export: `<registry>/<version>/onnx/` (made at promotion) or `<exports>/<version>/`, whichever
    was made from this version's model files (same digest); None when there is none."""
    for folder in (Path(registry) / version / "onnx", export_dir(exports, version)):
        meta = folder / EXPORT_FILE
        if meta.is_file():
            made_from = json.loads(meta.read_text(encoding="utf-8")).get("model_sha256")
            if model_sha256 is None or made_from == model_sha256:
                return folder
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score texts (or image files) with a driftfit ONNX export.")
    parser.add_argument("folder", help="the export folder (with export.json)")
    parser.add_argument("inputs", nargs="+", help="texts, or image paths for an image export")
    parser.add_argument("--int8", action="store_true", help="use model.int8.onnx")
    args = parser.parse_args(argv)
    try:
        classifier = OnnxClassifier(args.folder, int8=args.int8)
    except ExportError as err:
        print(f"predict_onnx: error: {err}", file=sys.stderr)
        return 2
    for item, row in zip(args.inputs, classifier.predict(args.inputs)):
        print(json.dumps({"input": item, **row}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
