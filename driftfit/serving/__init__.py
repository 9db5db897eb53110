"""The champion in use: load it in Python, score files (`driftfit predict`), export it (`driftfit export`) and
serve it over HTTP (`driftfit serve`).

    from driftfit.serving import load
    clf = load("models/registry")                 # the champion; load("models/registry", version="v2")
    clf.predict(["where can I eat pizza?"])       # [{"label": "food", "probability": 0.91}]

Modules: champion (load, verify, score), predict (files in chunks), export (ONNX), onnx_runner (an export
run by onnxruntime alone), app (the HTTP endpoint), registry_view (what people read about the registry), cli.
"""

from driftfit.serving.champion import Champion, load

__all__ = ["Champion", "load"]
