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
from driftfit.modalities import serving_parts
from driftfit.serving.champion import modality_of
from driftfit.serving.onnx_runner import EXPORT_FILE, FORMAT, OnnxClassifier, export_dir, file_sha256

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
RUNNER_FILE = "predict_onnx.py"
log = logging.getLogger(__name__)



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


# ---- the graph ---------------------------------------------------------------------------------

def _export_graph(graph, example: tuple, names: list[str], dynamic: dict, path: Path, opset: int) -> None:
    import torch

    with _quiet(), torch.no_grad():
        torch.onnx.export(graph, example, str(path), input_names=names, output_names=["probabilities"],
                          dynamic_shapes=dynamic, opset_version=opset, dynamo=True, external_data=False)


def _fuse(path: Path, unfused: Path) -> dict:
    """Rewrite the graph's attention, GELU and layer-norm patterns into onnxruntime's fused operators
    (onnxscript's ORT fusions): faster on CPU, fp32 and int8 alike, and then runnable by onnxruntime only.
    Returns how many of each pattern were fused; when any were, the plain graph is moved to `unfused` (a graph
    with none, e.g. a CNN, is left as it was)."""
    from onnxscript import ir
    from onnxscript.rewriter import ort_fusions

    with _quiet():
        model, counts = ort_fusions.optimize_for_ort(ir.load(str(path)))
        fused = {name: int(n) for name, n in counts.items() if n}
        if fused:
            path.replace(unfused)
            ir.save(model, str(path))
    return fused


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
        # DefaultTensorType: shape inference cannot type the outputs of fused (onnxruntime-only) operators
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": 1})  # 1 = float32


# ---- the export ----------------------------------------------------------------------------------

def export_model(model_dir: str | Path, out_dir: str | Path, *, max_seq_len: int = 64, quantize: bool = True,
                 fuse: bool = True, opset: int = 20, tolerance: float = 1e-4, trust_remote_code: bool = False,
                 version: str | None = None, model_sha256: str | None = None, modality: str | None = None) -> dict:
    """Export the classifier saved in `model_dir` into `out_dir` (replaced whole, or left as it was on error).

    The fp32 graph must give torch's probabilities within `tolerance` on the check inputs, else nothing is
    written; the int8 graph's difference and top-label agreement are recorded, not judged. Returns export.json.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "classifier.json").is_file() and not (model_dir / "labels.json").is_file():
        raise DriftfitError(f"'{model_dir}': not a saved classifier (no classifier.json or labels.json)")
    modality = modality or modality_of(model_dir, {})
    meta: dict = {"format": FORMAT, "modality": modality, "version": version,
                  "model_sha256": model_sha256, "model": MODEL_FILE, "int8_model": INT8_FILE if quantize else None,
                  "output": "probabilities", "opset": opset,
                  "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "software": _versions()}
    graph_of = getattr(serving_parts(modality), "export_graph", None)
    if graph_of is None:
        raise DriftfitError(f"'{model_dir}': the {modality} modality has no ONNX export; score it with the torch "
                            "backend")
    with atomic_dir(out_dir) as tmp:
        parts = graph_of(model_dir, trust_remote_code, max_seq_len)
        _export_graph(parts["graph"], parts["example"], parts["names"], parts["dynamic"], tmp / MODEL_FILE, opset)
        meta.update(parts["meta"])
        extra_files = parts["write_files"](tmp)
        inputs, reference = parts["check_inputs"], parts["reference"]
        unfused = tmp.parent / f".{tmp.name}.unfused.onnx"  # beside the staging folder, never in the export
        try:
            meta["fused"] = _fuse(tmp / MODEL_FILE, unfused) if fuse else {}
            diff = _finish(tmp, meta, quantize, extra_files, inputs, reference)
            if meta["fused"] and not diff <= tolerance:
                # a fusion pattern that changed the maths (seen with a peft prefix's cached keys): the plain graph
                log.warning("export of '%s': the fused graph differs from torch by %.1e; exporting it unfused",
                            model_dir, diff)
                unfused.replace(tmp / MODEL_FILE)
                meta["fused"], meta["fusion_refused_max_abs_diff"] = {}, diff
                diff = _finish(tmp, meta, quantize, extra_files, inputs, reference)
        finally:
            unfused.unlink(missing_ok=True)
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


def _finish(tmp: Path, meta: dict, quantize: bool, extra_files: list[str], inputs, reference) -> float:
    """Label the fp32 graph, quantize it, write the runner and export.json; returns the fp32 graph's largest
    difference from torch's probabilities on the check inputs."""
    _label_graph(tmp / MODEL_FILE, meta)
    if quantize:
        _quantize(tmp / MODEL_FILE, tmp / INT8_FILE)
        _label_graph(tmp / INT8_FILE, meta)
    shutil.copyfile(Path(__file__).with_name("onnx_runner.py"), tmp / RUNNER_FILE)
    files = [MODEL_FILE, RUNNER_FILE] + ([INT8_FILE] if quantize else []) + extra_files
    meta["files"] = {name: file_sha256(tmp / name) for name in sorted(files)}
    (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return float(np.abs(OnnxClassifier(tmp).predict_proba(inputs) - reference).max())


def _versions() -> dict:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("torch", "onnx", "onnxruntime", "onnxscript")}


# ---- a registry version, with params.yaml's export settings --------------------------------------

def export_with_params(params, model_dir: str | Path, out_dir: str | Path, version: str | None = None,
                       model_sha256: str | None = None, max_seq_len: int | None = None,
                       modality: str | None = None) -> dict:
    """export_model with params' export.* settings (what promotion would call on the candidate it stages)."""
    cfg = params.export
    return export_model(model_dir, out_dir, max_seq_len=max_seq_len or params.model.max_seq_len,
                        quantize=cfg.quantize, fuse=cfg.fuse, opset=cfg.opset, tolerance=cfg.tolerance,
                        trust_remote_code=params.model.trust_remote_code, version=version, model_sha256=model_sha256,
                        modality=modality or params.task.modality)


def run(params, version: str | None = None, out: str | Path | None = None) -> dict:
    """`driftfit export`: a registry version (default: the champion), verified, into export.dir/<version>/."""
    from driftfit.config import ModelConfig
    from driftfit.state import registry
    from driftfit.serving.champion import modality_of, resolve, verified_folder

    root = Path(params.paths.registry)
    name, record = resolve(root, version)
    folder = verified_folder(root, name)
    out = Path(out) if out else export_dir(params.absolute(params.export.dir), name)
    meta = export_with_params(params, folder, out, name, record.get("model_sha256") or registry.model_digest(folder),
                              # a record without params was trained with the schema's default, as the scorer reads it
                              int(registry.recorded(record, "model.max_seq_len",
                                                    ModelConfig.model_fields["max_seq_len"].default)),
                              modality_of(folder, record))
    return {"version": name, "folder": str(out), **{k: meta[k] for k in ("model", "int8_model", "check")}}


# ---- where a version's export lives ------------------------------------------------------------

