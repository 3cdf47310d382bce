"""Errors a user can cause and fix: the CLI prints them as one line, never a traceback."""

from __future__ import annotations


class CharRNNError(Exception):
    """Bad input, a bad file or a bad checkpoint: exit status 1."""

    exit_code = 1


class ConfigError(CharRNNError):
    """An option value out of range: a usage error, exit status 2. ``field`` names the
    setting when one is to blame (the server reports it as the bad parameter)."""

    exit_code = 2

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CheckpointError(CharRNNError):
    """A checkpoint that is missing, corrupted, foreign or does not match its config."""
