"""The champion registry: numbered versions under `paths.registry` and a pointer file.

`champion.json` names the current version. It is replaced with os.replace (atomic on POSIX), so a
reader sees the old champion or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

POINTER = "champion.json"


def champion_dir(registry: str | Path) -> Path | None:
    """Folder of the current champion, or None when nothing was promoted yet."""
    pointer = Path(registry) / POINTER
    if not pointer.is_file():
        return None
    version = json.loads(pointer.read_text(encoding="utf-8"))["version"]
    path = Path(registry) / version
    return path if path.is_dir() else None


def champion_info(registry: str | Path) -> dict | None:
    pointer = Path(registry) / POINTER
    return json.loads(pointer.read_text(encoding="utf-8")) if pointer.is_file() else None


def versions(registry: str | Path) -> list[str]:
    root = Path(registry)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v")),
                  key=lambda n: int(n[1:]) if n[1:].isdigit() else -1)


def add_version(registry: str | Path, model_dir: Path) -> str:
    """Copy a model folder in as the next version (copied under a temp name, then renamed)."""
    root = Path(registry)
    root.mkdir(parents=True, exist_ok=True)
    existing = [int(v[1:]) for v in versions(root) if v[1:].isdigit()]
    name = f"v{max(existing, default=0) + 1}"
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
    os.replace(tmp, root / name)
    return name


def set_champion(registry: str | Path, version: str, record: dict) -> None:
    """Atomically point the registry at `version`."""
    root = Path(registry)
    if not (root / version).is_dir():
        raise FileNotFoundError(f"registry version {version} does not exist under {root}")
    fd, tmp = tempfile.mkstemp(prefix=".champion-", suffix=".json", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": version, **record}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / POINTER)
