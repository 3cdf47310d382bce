"""Errors a user can cause and fix: the CLI prints them as one line, never a traceback."""


class CharRNNError(Exception):
    """Bad input, a bad file or a bad checkpoint: exit status 1."""

    exit_code = 1


class ConfigError(CharRNNError):
    """An option value out of range: a usage error, exit status 2."""

    exit_code = 2


class CheckpointError(CharRNNError):
    """A checkpoint that is missing, corrupted, foreign or does not match its config."""
