"""Which samples to keep, by their copies of the training text: the copy checks' settings.

No numpy here: the CLI reads the defaults at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from charrnn.errors import ConfigError

DEFAULT_MIN_COPY = 20  # copies at least this long count in a sample's copied share
DEFAULT_TRIES = 20  # samples drawn at most per sample asked for, when filtering


@dataclass
class CopyFilter:
    """Which samples to keep: ``max_copy`` (longest copy at most this long), ``novel``
    (the whole text never occurs in the corpus); neither: keep all, just report."""

    min_copy: int = DEFAULT_MIN_COPY
    max_copy: int | None = None
    novel: bool = False
    tries: int = DEFAULT_TRIES

    def __post_init__(self) -> None:
        if not isinstance(self.min_copy, int) or self.min_copy < 1:
            raise ConfigError(f"min-copy must be >= 1, got {self.min_copy!r}")
        if self.max_copy is not None and (not isinstance(self.max_copy, int)
                                          or self.max_copy < 0):
            raise ConfigError(f"max-copy must be >= 0, got {self.max_copy!r}")
        if not isinstance(self.tries, int) or self.tries < 1:
            raise ConfigError(f"tries must be >= 1, got {self.tries!r}")

    @property
    def filters(self) -> bool:
        return self.novel or self.max_copy is not None

    def describe(self) -> str:
        parts = (["--novel"] if self.novel else []) + (
            [] if self.max_copy is None else [f"--max-copy {self.max_copy}"])
        return " and ".join(parts)
