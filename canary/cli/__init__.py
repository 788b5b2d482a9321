"""The `canary` command: a group whose subcommands load on demand, each a thin wrapper.

A subcommand's module is imported only when that subcommand runs, and every heavy library
(SQLAlchemy, the SDKs, numpy, alembic) is imported inside the functions that use it, so
`canary --version` costs about what importing click does. Exit codes are in `common`.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import sys

import click

from .. import logs
from ..errors import CanaryError, ConfigError, StorageError
from .common import EXIT_DATABASE, EXIT_USAGE

GC_YOUNG = 50_000  # allocations between two collections of the youngest generation (Python's default: 700)

# name -> "module:function" inside this package; the module is imported when the command runs
COMMANDS = {
    "init": "project:init", "validate": "project:validate", "db": "project:db", "demo": "project:demo",
    "sim": "project:sim", "run": "run:run", "daemon": "run:daemon", "status": "read:status",
    "history": "read:history", "alerts": "read:alerts_", "ack": "read:ack", "report": "read:report",
    "compare": "compare:compare", "export": "transfer:export_", "import": "transfer:import_",
    "fingerprint": "fingerprint:fingerprint",
    "failures": "failures:failures",
    "calibrate": "calibrate:calibrate",
}


class LazyGroup(click.Group):
    """Finds a subcommand by name in COMMANDS and imports its module only then. Turns canary's
    own errors, and a database that fails, into a message and an exit code, never a traceback."""

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                _say(problem)
            sys.exit(EXIT_USAGE)
        except StorageError as exc:
            _say(f"canary: {exc}")
            sys.exit(EXIT_DATABASE)
        except CanaryError as exc:
            _say(f"canary: {exc}")
            sys.exit(EXIT_USAGE)
        except Exception as exc:  # SQLAlchemy's errors: the database failed under a command
            from ..store import failure_text, is_database_failure
            if not is_database_failure(exc):
                raise
            _say(f"canary: the database failed: {failure_text(exc)}")
            sys.exit(EXIT_DATABASE)


def _say(line: str) -> None:
    """One line on stderr, as written (rich is loaded only when there is something to say)."""
    from .. import render
    render.errors.print(line, markup=False, highlight=False)


@click.group(cls=LazyGroup)
@click.version_option(package_name="canary")
def main():
    """canary: daily known-answer canaries for hosted LLMs."""
    # warnings on stderr, any value of a secret-looking environment variable redacted;
    # `canary daemon` sets up its own logging
    logs.setup_logging("human", level=logging.WARNING, secret_envs=logs.secret_looking_envs())


def entry() -> None:
    """The `canary` executable: `main`, then the process ends without tearing the interpreter
    down. A command has closed its database and its threads by the time it returns; what is
    left is freeing a few hundred thousand objects one by one (SQLAlchemy's, pydantic's, the
    SDK's), a quarter of a second of CPU for nothing. The streams and the log handlers are
    flushed first; an unexpected exception still ends the usual way, with its traceback.

    The cyclic garbage collector runs every GC_YOUNG allocations instead of every 700: a
    command builds tens of thousands of objects (imports, a year of points) that live until
    it ends, and with the default it rescans them again and again (about a fifth of the
    CPU of `canary report`). Collections still run, so memory stays flat in a long import
    or in the daemon."""
    gc.set_threshold(GC_YOUNG)
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # sys.exit("message"): said on stderr, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `canary export | head`: the reader is gone, nothing left to say
        pass
    logging.shutdown()
    os._exit(code if isinstance(code, int) else 0)
