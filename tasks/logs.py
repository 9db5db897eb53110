"""Our errors in Prefect's logs: one line each, no traceback.

A DriftfitError already says what, where and what was expected; the traceback Prefect's engines attach to
a failed task and flow (twice, about 180 lines) only buries it. Other exceptions keep their tracebacks.
"""

from __future__ import annotations

import logging

from driftfit.errors import DriftfitError


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DriftfitError):
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Filter Prefect's task- and flow-run loggers (idempotent)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineErrors) for f in logger.filters):
            logger.addFilter(OneLineErrors())
