"""Errors a user can act on. Each message says what, where, and what was expected."""


class DriftfitError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(DriftfitError):
    """A value in params.yaml (or an override) is wrong."""


class DataError(DriftfitError):
    """An input data file is missing, unreadable or malformed."""


class ValidationFailed(DriftfitError):
    """The data-quality suite found errors; the run stops before training."""


class BadRequest(DriftfitError):
    """A request to the endpoint is wrong: answered with `status` (4xx) and the message, never a 500."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message
