"""The champion in use: load it in Python, score files (`driftfit predict`), export it (`driftfit export`) and
serve it over HTTP (`driftfit serve`).

    from driftfit.serving import load
    clf = load("models/registry")                 # the champion; load("models/registry", version="v2")
    clf.predict(["who wrote hamlet?"])            # [{"label": "literature", "probability": 0.99}]

Modules: champion (load, verify, score), predict (files in chunks), export (ONNX), onnx_runner (an export
run by onnxruntime alone), app (the HTTP endpoint), registry_view (what people read about the registry), cli.
"""

from driftfit.serving.champion import Champion, load

__all__ = ["Champion", "load", "usage"]


def usage(version: str | None = None, registry: str = "models/registry", modality: str = "text") -> str:
    """The three lines that score with a registry version, as the README and each model card show them."""
    which = (f'load("{registry}", version="{version}")  # this version; load("{registry}") is the champion'
             if version else f'load("{registry}")  # the champion; load("{registry}", version="v2") for another')
    from driftfit.modalities import serving_parts

    call, shown = serving_parts(modality).EXAMPLE
    return "\n".join(["from driftfit.serving import load", "", f"clf = {which}",
                      f"print(clf.version, clf.predict({call}))", f"# prints e.g.: {version or 'v1'} {shown}"])
