"""Every third-party module that driftfit/, tasks/ and flows/ import is declared in pyproject.toml."""

import ast
import importlib.metadata as md
import fnmatch
import re
import sys
import tomllib

from tests.conftest import ROOT

OURS = {"driftfit", "tasks", "flows", "__future__"}


def imported_modules() -> dict[str, str]:
    """Top-level module -> one file importing it, over the installed packages' sources."""
    found = {}
    for folder in ("driftfit", "tasks", "flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return {m: f for m, f in found.items() if m not in OURS and m not in sys.stdlib_module_names}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {canonical(re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    owners = md.packages_distributions()
    missing = []
    for module, where in sorted(imported_modules().items()):
        dists = {canonical(d) for d in owners.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} (imported by {where}; distribution {sorted(dists)})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)
    assert len(imported_modules()) > 10  # the scan really saw the imports


def test_the_readme_layout_names_every_module():
    """The README's Layout block names every module and sub-package of the library, and the flows."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Tests")]
    named = set(re.findall(r"[\w*]+\.py|[\w]+/", layout))
    missing = [p.name for p in sorted((ROOT / "driftfit").glob("*.py")) if p.name != "__init__.py"
               and not any(fnmatch.fnmatch(p.name, n) for n in named)]
    missing += [f"{p.name}/" for p in sorted((ROOT / "driftfit").iterdir())
                if (p / "__init__.py").is_file() and f"{p.name}/" not in named]
    missing += [f"modalities/{p.name}/" for p in sorted((ROOT / "driftfit" / "modalities").iterdir())
                if (p / "__init__.py").is_file() and f"{p.name}/" not in named]
    missing += [p.stem for p in sorted((ROOT / "flows").glob("*.py"))
                if p.stem != "__init__" and not re.search(rf"\b{p.stem}\b", layout)]
    assert missing == [], f"README's layout lacks {missing}"
