"""What a flow run's parameters may do: anyone who may start a deployment run can set them in the UI.

`flow_params` reads the params file a run names and applies the run's overrides, refusing what would widen what
the run may touch: a params file outside the flow's working directory (the project) or inside the data roots
(its own, or those of the project's params.yaml: a file that came with the data is not a config), and overrides of protected keys (driftfit.config.PROTECTED: paths, data roots, the
pretrained model, remote code, ...) unless the file's flow.allow_overrides names them. Data files a run names
must lie in the file's data.roots, links followed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftfit.config import Params, check_run_overrides, load_params
from driftfit.errors import ConfigError


def flow_params(params_path: str, overrides: dict[str, Any] | None = None,
                names: dict[str, str] | None = None) -> Params:
    """The run's Params, or a ConfigError naming the parameter that would widen what it may touch."""
    path = Path(params_path)
    real, here = path.resolve(), Path.cwd().resolve()
    if not real.is_relative_to(here):
        raise ConfigError(f"params_path = '{params_path}': outside the flow's working directory {here} (the "
                          "project); a run reads the params file of the project it runs in")
    base = load_params(path)
    roots = list(base.data.roots)
    if (here / "params.yaml").is_file() and real != (here / "params.yaml").resolve():
        roots += load_params(here / "params.yaml").data.roots  # the project's own data roots
    if any(real.is_relative_to(Path(root).resolve()) for root in roots):
        raise ConfigError(f"params_path = '{params_path}': inside the data roots ({', '.join(map(str, roots))}); "
                          "a file that came with the data is not a params file")
    params = load_params(path, overrides) if overrides else base  # a bad value fails here, before any work
    check_run_overrides(base, params, names)
    return params
