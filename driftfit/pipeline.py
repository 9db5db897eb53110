"""The pipeline, declared once: its steps in order. The CLI's subcommands (`driftfit <step>`), the Prefect flow's
tasks and the stages of both dvc.yaml files follow this list (tests/test_pipeline.py checks each against it, and
that every stage depends on exactly the code its step imports).

Each step is the module driftfit/steps/<name>.py, whose `run(params)` holds the modality-free skeleton; a step's
module is imported only when it runs, so `driftfit prepare` never pays for torch.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from driftfit.errors import ConfigError, DriftfitError


@dataclass(frozen=True)
class Step:
    name: str                  # `driftfit <name>`; the dvc stage and the module are its snake_case form
    help: str                  # one line, for the CLI's help
    uses: tuple[str, ...] = () # the parts of the modality (driftfit.modalities.Modality) its skeleton calls

    @property
    def stage(self) -> str:
        return self.name.replace("-", "_")

    @property
    def module(self) -> str:
        return f"driftfit.steps.{self.stage}"


STEPS = (
    Step("default-data", "write the embedded default data to paths.default_data (text: chatterbot-corpus English; "
                         "image: animal-mnist silhouettes)", ("write_default_data",)),
    Step("prepare", "load reference + incoming data, split (stratified, seeded), record hashes",
         ("check_sources", "load", "stored", "restored", "source_digest", "validate")),
    Step("validate", "run the Great Expectations suite; stop on errors", ("restored", "validate")),
    Step("remember", "add the validated batch to the data memory (once per batch; memory.keep decides what stays)"),
    Step("augment", "augment the training split (seeded; val/test untouched)", ("restored", "augment", "stored")),
    Step("measure-shift", "tokenizer fit, embedding shift, label shift, frozen-feature probe", ("restored", "measure")),
    Step("select-strategy", "choose how to adapt the model and say why (strategies: see --strategy)",
         ("restored", "train", "classifier")),  # probe mode trains briefly
    Step("tune", "hyperparameter search with Optuna (when search.enabled; otherwise records that it is off)",
         ("restored", "train")),
    Step("train", "train the candidate with the chosen strategy (and the tuned params, if any)", ("restored", "train")),
    Step("evaluate", "score candidate and champion on new and reference test splits",
         ("restored", "classifier", "baseline", "evaluation_extras")),
    Step("promote", "make the candidate champion if it passes the gate; write the model card",
         ("restored", "classifier", "describe_input")),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def step(name: str) -> Step:
    for s in STEPS:
        if s.name == name or s.stage == name:
            return s
    raise ConfigError(f"unknown step '{name}'; the steps: {', '.join(STEP_NAMES)}")


def runner(name: str) -> Callable:
    """The step's `run(params, ...)`, imported now. A file it may not read or write (a read-only registry or
    memory) is a one-line error naming the file."""
    run = importlib.import_module(step(name).module).run

    @functools.wraps(run)
    def permitted(params, *args, **kwargs):
        try:
            return run(params, *args, **kwargs)
        except PermissionError as err:
            where = err.filename or "a file it needs"
            raise DriftfitError(f"step '{step(name).name}': permission denied on '{where}' ({err.strerror}); give "
                                "the user running driftfit access to it and run the step again (its outputs are "
                                "written whole or not at all)") from None
    return permitted


# ---- the code a stage runs: its dvc.yaml deps ------------------------------------------------------

def _module_file(root: Path, module: str) -> Path | None:
    path = root / Path(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(root: Path, path: Path) -> set[str]:
    """The driftfit modules a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "driftfit":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(root, f"{node.module}.{a.name}")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "driftfit"}
    return found


def code_deps(name: str, modality: str) -> list[str]:
    """Every file of the driftfit package that step `name` runs for `modality`, relative to the folder holding
    the package: the step's module and what it imports, the modality's registration and the parts of it the
    step uses (Step.uses), and what those import. Other modalities' folders never count. A dvc.yaml stage
    lists exactly these (tests/test_pipeline.py checks both dvc.yaml files)."""
    from driftfit import modalities

    root = Path(__file__).resolve().parents[1]
    chosen = modalities.get(modality)
    others = tuple(f"driftfit.modalities.{m}" for m in modalities.available() if m != modality)
    todo = [step(name).module, f"driftfit.modalities.{modality}"]
    for part in step(name).uses:
        target = getattr(getattr(chosen, part), "target", None)
        todo.append(target[0] if target else f"driftfit.modalities.{modality}")
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module == "driftfit" or module.startswith(others):
            continue
        path = _module_file(root, module)
        if path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # the packages it sits in
        todo += list(_imports(root, path))
    return sorted(_module_file(root, m).relative_to(root).as_posix() for m in seen)


if __name__ == "__main__":  # python -m driftfit.pipeline [text|image]: each stage's code deps, for dvc.yaml
    import sys

    for s in STEPS:
        print(f"{s.stage}:", *code_deps(s.name, sys.argv[1] if len(sys.argv) > 1 else "text"), sep="\n  - ")
