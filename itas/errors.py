"""Typed errors. The library raises these; the CLI turns them into one-line messages in one place.

Exit codes (see DESIGN.md): 0 success, 1 a failure while running, 2 bad input.
"""

from __future__ import annotations


class ItasError(Exception):
    """Base of every error itas raises on purpose."""

    exit_code = 1


class InputError(ItasError):
    """Bad input: usage, configuration, data. Exit code 2."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file (YAML) is invalid. The message names the file and the key path."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ""
        if source and key:
            where = f"{source}: {key}: "
        elif source:
            where = f"{source}: "
        elif key:
            where = f"{key}: "
        super().__init__(where + message)


class DataError(InputError):
    """Benchmark data is missing or malformed."""


class ServingError(ItasError):
    """A managed model server could not be started, or stopped answering."""


class CallError(ItasError):
    """A model call failed after its retries. Carries the endpoint and the last cause."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None):
        self.endpoint = endpoint
        self.status = status
        super().__init__(message if endpoint is None else f"{endpoint}: {message}")


class CallRefusedError(CallError):
    """The server refused the request in a way a retry cannot fix (4xx other than 408/409/429)."""
