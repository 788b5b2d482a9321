"""The exceptions canary raises on purpose; only the CLI turns them into exit codes."""
from __future__ import annotations


class CanaryError(Exception):
    """Base of every error canary reports to a user (never with a traceback)."""


class ConfigError(CanaryError):
    """canary.yaml or a suite file is wrong. `problems` lists each as `path:line: message`."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(CanaryError):
    """A command was asked for something that does not exist (an unknown model or suite)."""


class StorageError(CanaryError):
    """The database failed: unreachable, read-only, full (the CLI exits 5). A bad database URL
    is a ConfigError."""
