"""`driftfit <step>`: one subcommand per pipeline step; the DVC stages call these.

Each subcommand parses params.yaml once (plus `-S key=value` overrides), then calls the step's
`run(params)`. A DriftfitError prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from driftfit import strategies
from driftfit.config import parse_override
from driftfit.errors import DriftfitError
from driftfit.lock import project_lock
from driftfit.pipeline import STEP_NAMES, STEPS, runner

# `driftfit <step>` for each step of the pipeline (driftfit.pipeline), and `run` for all of them in order.
STEP_HELP = {**{s.name: s.help for s in STEPS}, "run": "all of the above, in order, in this process"}

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftfit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, help_text in STEP_HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a param, e.g. -S train.epochs=1 (repeatable)")
        p.add_argument("-v", "--verbose", action="store_true", help="also show each step's progress log lines")
        if name in ("select-strategy", "run"):
            p.add_argument("--strategy", default=None, choices=strategies.names(), metavar="NAME",
                           help="force a strategy (same as -S strategy.force=...); one of: "
                                + strategies.help_text())
    bench = sub.add_parser("bench", help="benchmarks in the project's bench/ folder (decision: the strategy "
                                         "selector vs training every strategy; stream: driftfit's policy vs fixed "
                                         "retraining schedules over a stream of batches); arguments go to the "
                                         "benchmark",
                           add_help=False)
    bench.add_argument("which", choices=["decision", "stream"], help="which benchmark")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own arguments (see its --help)")
    from driftfit.serving import cli as serving_cli  # predict, export, serve, summary

    serving_cli.add_commands(sub)
    rollback = sub.add_parser("rollback", help="make an earlier registry version champion again")
    rollback.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    rollback.add_argument("--to", dest="version", default=None, metavar="vN",
                          help="version to return to (default: the one the current champion replaced)")
    reg = sub.add_parser("registry", help="the champion registry: list its versions, or repair its pointer")
    reg.add_argument("action", choices=["list", "repair"],
                     help="list: a table of the versions (--json for scripts); repair: rebuild a missing or broken "
                          "champion.json")
    reg.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    reg.add_argument("--registry", default=None, metavar="DIR", help="registry folder (default: paths.registry)")
    reg.add_argument("--json", action="store_true", help="list: the rows as JSON, for scripts")
    reg.add_argument("--to", dest="version", default=None, metavar="vN",
                     help="repair: the version that serves (default: the newest version with a record)")
    mem = sub.add_parser("memory", help="the data memory: list its batches, or rebuild a missing or broken "
                                         "memory.json from the batch folders")
    mem.add_argument("action", choices=["list", "repair"],
                     help="list: one line per remembered batch; repair: rebuild memory.json (a sound one is left alone)")
    mem.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser

def _memory(args) -> int:
    from driftfit.state import memory
    from driftfit.state import registry
    from driftfit.config import load_params

    params = load_params(args.params)
    root = params.paths.memory
    if args.action == "repair":
        with project_lock(params.project, "driftfit memory repair"):
            recorded = [(registry.version_record(params.paths.registry, v).get("memory") or {}).get("version") or 0
                        for v in registry.versions(params.paths.registry)
                        if (Path(params.paths.registry) / v / registry.RECORD).is_file()]
            print(json.dumps(memory.repair(root, params.memory, recorded)))
        return 0
    current = memory.state(root)
    for batch in current["batches"]:
        record = memory.batch_record(root, batch, current)
        print(json.dumps({"batch": batch, "added_at": record.get("added_at"), "rows": record.get("rows"),
                          "labels": record.get("labels"), "source": (record.get("source") or {}).get("path")}))
    return 0

def _registry(args) -> int:
    from driftfit.state import registry

    folder = args.registry
    if folder is None:
        from driftfit.config import load_params

        folder = load_params(args.params).paths.registry
    if args.action == "repair":
        print(json.dumps(registry.repair(folder, args.version)))
    else:
        from driftfit.serving.cli import print_registry

        print_registry(registry.list_versions(folder), args.json)
    return 0

def _bench(args) -> int:
    """Benchmarks live outside the library, in the project's bench/ folder: run one from there."""
    import subprocess
    from pathlib import Path

    script = Path("bench") / f"{args.which}.py"
    if not script.is_file():
        raise DriftfitError(f"{script} not found: run 'driftfit bench' from the project folder (benchmarks are "
                            "not part of the installed library)")
    return subprocess.run([sys.executable, "-m", f"bench.{args.which}", *args.rest]).returncode

def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One line per step on stdout; our own progress lines (driftfit.*) on stderr with -v, warnings always.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("driftfit")
    root.setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    if not root.handlers:
        root.addHandler(handler)
    _quiet_libraries()
    try:
        if args.step == "bench":
            return _bench(args)
        from driftfit.serving import cli as serving_cli

        if args.step in serving_cli.COMMANDS:
            return serving_cli.run(args)
        if args.step == "registry":
            return _registry(args)
        if args.step == "memory":
            return _memory(args)
        if args.step == "rollback":
            from driftfit.config import load_params
            from driftfit.state.registry import rollback

            print(json.dumps(rollback(load_params(args.params), args.version), default=str))
            return 0
        from driftfit.config import load_params

        overrides = dict(parse_override(s) for s in args.set)
        if getattr(args, "strategy", None):
            overrides["strategy.force"] = args.strategy
        params = load_params(args.params, overrides)
        names = [args.step]
        if args.step == "run":  # every step; the default data only when params point at it
            names = [n for n in STEP_NAMES if n != "default-data" or params.uses_default_data()]
        with project_lock(params.project, f"driftfit {args.step}"):  # one run at a time in a project
            _run_steps(names, params)
    except DriftfitError as err:
        print(f"driftfit {args.step}: error: {err}", file=sys.stderr)
        return 2
    return 0

def _run_steps(names: list[str], params) -> None:
    """Each step in turn, one line each on stdout."""
    for name in names:
        step_params, extra = params, {}
        if name == "train":  # the search's best train.* values, when the search is on
            from driftfit.training.search import best_params

            step_params, extra = best_params(params), {"progress": _progress_line(name)}
        result = runner(name)(step_params, **extra)
        print(f"driftfit {name}: {_brief(result)}", flush=True)

def _quiet_libraries() -> None:
    """No progress bars from the libraries (transformers' weight loading reads the hub's switch when it is
    imported), so a step prints one line. Set before any of them is imported; importing them here would
    make `driftfit prepare` pay for torch."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

def _brief(result: Any) -> str:
    """The step's headline values on one line; the full result is in its output file."""
    if not isinstance(result, dict):
        return str(result)
    shown = []
    for name, part in (result.get("splits") or {}).items():  # prepare's manifest: rows per split
        if isinstance(part, dict) and "rows" in part:
            shown.append(f"{name}={part['rows']}")
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)) or len(str(value)) > 60:
            continue
        shown.append(f"{key}={value}")
    return " ".join(shown[:8]) or "done"

def _progress_line(name: str) -> Callable | None:
    """On a terminal, one line that counts the steps in place; elsewhere (logs, CI) nothing until done."""
    if not sys.stderr.isatty():
        return None

    def show(step: int, total: int, logs: dict) -> None:
        loss = f", loss {logs['loss']:.3f}" if isinstance(logs.get("loss"), float) else ""
        retry = f" (retry {logs['retry']})" if logs.get("retry") else ""
        end = "\n" if total and step >= total and not set(logs) - {"retry"} else ""
        print(f"\rdriftfit {name}: step {step}/{total}{loss}{retry}   ", end=end, file=sys.stderr, flush=True)

    return show

if __name__ == "__main__":
    sys.exit(main())
