"""The serving subcommands of `driftfit`: predict, export, serve, summary (driftfit.cli adds them from here)."""

from __future__ import annotations

import argparse
import logging
import sys

from driftfit.serving.champion import BACKENDS

COMMANDS = ("predict", "export", "serve", "summary")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. -S serve.port=8080 (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="also show progress log lines")


def add_commands(sub) -> None:
    """Add predict, export, serve and summary to the `driftfit` parser's subcommands."""
    p = sub.add_parser("predict", help="score a file with the champion (or --version): every row, plus the label, its "
                                       "probability and the version", description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, metavar="FILE",
                   help="CSV/TSV/JSON Lines/Parquet with a text column (predict.text_column); an image champion: a "
                        "folder of images or a manifest with a path column (predict.image_column)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output file, format by extension (default: beside the input, <name>.predictions.<ext>)")
    p.add_argument("--version", default=None, metavar="vN", help="registry version (default: the champion)")
    p.add_argument("--all-probabilities", action="store_true", default=None,
                   help="also write every label's probability (p_<label> columns)")
    p.add_argument("--backend", default=None, choices=BACKENDS, help="default: predict.backend")
    p.add_argument("--column", default=None, help="the text (or image path) column; default: predict.text_column")
    _common(p)
    p = sub.add_parser("export", help="export a registry version as ONNX (+ int8) for onnxruntime, without torch")
    p.add_argument("--version", default=None, metavar="vN", help="registry version (default: the champion)")
    p.add_argument("--out", default=None, metavar="DIR", help="default: export.dir/<version>")
    _common(p)
    p = sub.add_parser("serve", help="serve the champion over HTTP (/predict, /health, /version); reloads it when "
                                     "champion.json changes")
    p.add_argument("--host", default=None, help="default: serve.host (127.0.0.1, this machine only)")
    p.add_argument("--port", default=None, type=int, help="default: serve.port")
    p.add_argument("--backend", default=None, choices=BACKENDS, help="default: serve.backend")
    _common(p)
    p = sub.add_parser("summary", help="the last run in one line: what was chosen, the new score, promoted or not, why")
    _common(p)


def run(args) -> int:
    """Run one of COMMANDS (a DriftfitError goes up to driftfit.cli, which prints it as one line)."""
    from driftfit.config import load_params, parse_override

    params = load_params(args.params, dict(parse_override(s) for s in args.set))
    if args.step == "summary":
        from driftfit.serving.registry_view import last_run

        print(f"driftfit: {last_run(params.paths.decision, params.paths.metrics, params.paths.promotion)}")
        return 0
    if args.step == "predict":
        from driftfit.serving.predict import run as predict

        result = predict(params, args.input, args.out, args.version, args.all_probabilities, args.backend,
                         args.column, progress=True)
        print(f"driftfit predict: {result['rows']:,} rows scored by {result['version']} ({result['backend']}) in "
              f"{result['seconds']:.1f} s -> {result['output']}", flush=True)
        return 0
    if args.step == "export":
        from driftfit.serving.export import run as export

        result = export(params, args.version, args.out)
        check = result["check"]
        int8 = (f"; int8 max |diff| {check['int8_max_abs_diff']:.1e}, same label {check['int8_same_label']:.0%}"
                if "int8_max_abs_diff" in check else "")
        print(f"driftfit export: {result['version']} -> {result['folder']} (fp32 max |diff| from torch "
              f"{check['fp32_max_abs_diff']:.1e} on {check['inputs']} check inputs{int8})", flush=True)
        return 0
    return _serve(params, args)


def _serve(params, args) -> int:
    import uvicorn

    from driftfit.serving.app import build

    cfg = params.serve
    host, port = args.host or cfg.host, args.port or cfg.port
    logging.getLogger("driftfit.serving").setLevel(logging.INFO)  # loads and reloads, always shown
    app, _ = build(params, args.backend)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"driftfit serve: listening on {host}: reachable from other machines, with no authentication",
              file=sys.stderr)
    print(f"driftfit serve: http://{host}:{port} (/predict, /health, /version); champion from "
          f"{params.paths.registry}, reloaded when champion.json changes", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info" if args.verbose else "warning", access_log=False)
    return 0


def print_registry(rows: list[dict], as_json: bool) -> None:
    from driftfit.serving.registry_view import registry_json, registry_table

    print(registry_json(rows) if as_json else registry_table(rows))

