"""What every command starts from: the config, the good suites, the problems, the store;
and `FileWatch`, which tells the daemon when those files changed and settled.

Problems (a file that does not load, a reference that fails its asserts) make `validate`
and `run` exit 2; warnings (a turn without a reference, a regex too slow for a long reply)
are printed and exit 0, unless `canary validate --strict`.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import redact
from .config import Config, load_config
from .errors import ConfigError
from .fingerprint import SUITE as FINGERPRINT
from .suites import Suite, load_suites, reference_problems, reference_warnings, regex_warnings

if TYPE_CHECKING:
    from .reads import SeriesReads
    from .store import Store


@dataclass
class Workspace:
    config: Config
    suites: dict[str, Suite]
    problems: list[str] = field(default_factory=list)
    sim: bool = False  # the simulated model's own database, never the real one
    warnings: list[str] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return self.config.sim_database_url if self.sim else self.config.database_url

    @property
    def store_path_hint(self) -> str:
        return self.database_url.removeprefix("sqlite:///")

    def store(self) -> Store:
        """The database, migrated to the current schema."""
        from .store import Store
        return Store(self.database_url)

    def reader(self) -> SeriesReads:
        """The database for the read commands (status, history, report, failures, alerts,
        fingerprint status): through its driver alone (dbapi.py, no SQLAlchemy to import) when
        it is at the current schema; else the Store, which migrates it first."""
        from .dbapi import open_reader
        return open_reader(self.database_url) or self.store()


def open_workspace(config_path: str | os.PathLike | None = None, *, thorough: bool = False,
                   sim: bool = False, reading: bool = False) -> Workspace:
    """Load canary.yaml and every suite; a bad suite is a problem, the good ones stay usable.

    `thorough` (validate) also scores each reference against its own asserts and times each
    case regex on long synthetic replies. `reading` (the commands that only read what is
    stored) checks the suites' JSON Schemas for their shape, not against the metaschema
    (suites.load_suite). The secrets the config names are registered with the redaction from
    here on."""
    config = load_config(config_path)
    redact.remember_config(config)
    suites, problems = load_suites(config.prompts_dir, schemas=not reading)
    if FINGERPRINT in suites:  # the name of every model's fingerprint series
        problems.append(f"{suites.pop(FINGERPRINT).where(('suite',))}: the suite name '{FINGERPRINT}' is reserved "
                        "for the fingerprint series; rename the suite")
    for i, model in enumerate(config.models):
        for name in model.suites or []:
            if name not in suites and not any(f"suite '{name}'" in p for p in problems):
                problems.append(f"{config.path}: model {model.name} names suite '{name}', "
                                f"which is not in {config.prompts_dir}")
    warnings = [w for suite in suites.values() for w in reference_warnings(suite)]
    if thorough:
        for suite in suites.values():
            problems += reference_problems(suite)
            warnings += regex_warnings(suite)
    return Workspace(config, suites, problems, sim, warnings)


class FileWatch:
    """(path, mtime, size) of canary.yaml, the prompts directory and each suite file: `settled()`
    is true when they changed and then stayed the same for one poll (an editor's save is not
    read half-written)."""

    def __init__(self, config_path: Path | None, prompts_dir: Path):
        self.config_path = config_path  # None: the suite files alone (`canary sim`)
        self.applied = self.seen = self.snapshot(prompts_dir)

    def snapshot(self, folder: Path) -> tuple:
        watched = [self.config_path, folder] if self.config_path else [folder]
        try:
            paths = [*watched, *sorted(folder.glob("*.y*ml"))]
        except OSError:
            paths = watched
        out = []
        for path in paths:
            try:
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), None, None))
        return tuple(out)

    def settled(self, prompts_dir: Path) -> bool:
        files = self.snapshot(prompts_dir)
        if files != self.seen:
            self.seen = files
            return False
        return files != self.applied

    def applied_now(self, prompts_dir: Path) -> None:
        self.applied = self.seen = self.snapshot(prompts_dir)


def init_project(directory: Path) -> list[Path]:
    """Write a starter canary.yaml and the starter suites into `directory` (never overwriting)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    targets = [(resources.files("canary.starter") / "canary.yaml", directory / "canary.yaml")]
    prompts = resources.files("canary.prompts")
    targets += [(f, directory / "prompts" / f.name) for f in prompts.iterdir() if f.name.endswith(".yaml")]
    existing = [str(dst) for _src, dst in targets if dst.exists()]
    if existing:
        raise ConfigError([f"{p}:1: already exists; canary init never overwrites" for p in existing])
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(src) as path:
            shutil.copyfile(path, dst)
        written.append(dst)
    return written
