"""The champion in use: load it in Python, score files (`driftfit predict`), export it (`driftfit export`) and
serve it over HTTP (`driftfit serve`).

    from driftfit.serving import load
    clf = load("models/registry")                 # the champion; load("models/registry", version="v2")
    clf.predict(["where can I eat pizza?"])       # [{"label": "food", "probability": 0.91}]

Modules: champion (load, verify, score), predict (files in chunks), export (ONNX), onnx_runner (an export
run by onnxruntime alone), app (the HTTP endpoint), registry_view (what people read about the registry), cli.
"""

from driftfit.serving.champion import Champion, load

__all__ = ["Champion", "load", "usage"]


def usage(version: str | None = None, registry: str = "models/registry") -> str:
    """The three lines that score texts with a registry version, as the README and each model card show them."""
    which = (f'load("{registry}", version="{version}")  # this version; load("{registry}") is the champion'
             if version else f'load("{registry}")  # the champion; load("{registry}", version="v2") for another')
    return "\n".join(["from driftfit.serving import load", "", f"clf = {which}",
                      'print(clf.version, clf.predict(["where can I eat pizza?", "what is a neural network?"]))',
                      "# prints e.g.: v3 [{'label': 'food', 'probability': 0.93}, {'label': 'computers', 'probability': 0.88}]"])
