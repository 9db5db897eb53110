"""The house's shape: the pipeline is declared once (driftfit.pipeline) and the CLI, the Prefect flow and both
dvc.yaml files follow it; every stage depends on exactly the code its step runs; the import graph of driftfit/
has no cycle and no lower layer importing a higher one; no step imports another step."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from driftfit import cli, pipeline

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "driftfit"

# Layers, lowest first: a module may import its own layer or lower ones, never higher (function-level imports
# count). The modality registry (driftfit/modalities/__init__.py) is low; the modalities' implementations high.
LAYERS = [
    ("errors", "io", "lock"),
    ("modalities", "strategies", "config"),
    ("data", "evaluation.gate", "report"),
    ("state", "measures", "training", "evaluation.scoring"),
    ("policy",),
    ("modalities.text", "modalities.image"),
    ("steps", "serving"),
    ("pipeline",),
    ("cli",),
]


def layer(module: str) -> int:
    """The layer of a driftfit module (its longest matching prefix in LAYERS)."""
    name = module.removeprefix("driftfit").lstrip(".")
    best = None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best[0]


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def graph() -> dict[str, set[str]]:
    """module -> the driftfit modules it imports (anywhere in the file), resolved to known modules."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "driftfit":
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                           for a in node.names]
                found |= {t for t in targets if t in known}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in known}
        edges[name] = found - {name, "driftfit"}
    return edges


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert len(edges) > 40  # the scan saw the package


def test_no_module_imports_a_higher_layer_and_no_step_another_step():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert upward == []
    steps = [f"{a} imports {b}" for a, targets in graph().items() for b in targets
             if a.startswith("driftfit.steps.") and b.startswith("driftfit.steps.")]
    assert steps == []
    text, image = "driftfit.modalities.text", "driftfit.modalities.image"
    crossing = [f"{a} imports {b}" for a, targets in graph().items() for b in targets
                if (a.startswith(text) and b.startswith(image)) or (a.startswith(image) and b.startswith(text))]
    assert crossing == []  # a modality is one folder: neither reaches into the other


def test_each_step_is_one_module_named_as_the_step():
    on_disk = sorted(p.stem for p in (PACKAGE / "steps").glob("*.py") if p.stem != "__init__")
    assert on_disk == sorted(s.stage for s in pipeline.STEPS)
    for s in pipeline.STEPS:
        assert callable(pipeline.runner(s.name))


def test_the_cli_and_the_flow_follow_the_step_list():
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    assert [n for n in choices if n in pipeline.STEP_NAMES] == list(pipeline.STEP_NAMES)
    flow = (ROOT / "flows" / "retrain.py").read_text()
    body = flow[flow.index("def _retrain("):]
    called = re.findall(r"^\s+(?:\w+ = )?(\w+)\(params\)", body, re.M)
    tasks = {"make_default_data": "default-data", "prepare": "prepare", "validate": "validate",
             "remember": "remember", "augment": "augment", "measure_shift": "measure-shift",
             "select_strategy": "select-strategy", "tune": "tune", "record_search_off": "tune", "train": "train",
             "evaluate": "evaluate", "promote": "promote"}
    order = list(dict.fromkeys(tasks[c] for c in called if c in tasks))
    assert order == list(pipeline.STEP_NAMES)


@pytest.mark.parametrize("dvc_file, modality, prefix", [("dvc.yaml", "text", ""),
                                                         ("examples/image/dvc.yaml", "image", "../../")])
def test_every_stage_depends_on_exactly_the_code_its_step_runs(dvc_file, modality, prefix):
    stages = yaml.safe_load((ROOT / dvc_file).read_text())["stages"]
    assert list(stages) == [s.stage for s in pipeline.STEPS]
    for s in pipeline.STEPS:
        cmd = stages[s.stage]["cmd"]
        assert cmd == f"driftfit {s.name}", cmd
        listed = sorted(d.removeprefix(prefix) for d in stages[s.stage]["deps"]
                        if isinstance(d, str) and d.removeprefix(prefix).startswith("driftfit/"))
        expected = pipeline.code_deps(s.name, modality)
        assert listed == expected, (f"{dvc_file} stage {s.stage}: deps should list exactly (python -m "
                                    f"driftfit.pipeline {modality}):\n" + "\n".join(expected))
