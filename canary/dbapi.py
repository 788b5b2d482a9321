"""The database through its driver alone (the standard library's sqlite3, or psycopg), for
the read commands (`status`, `history`, `report`, `failures`, `alerts`): `Reader` serves the
reads of `reads.SeriesReads` without importing SQLAlchemy, whose import costs those commands
more than a year of their reads.

It serves only a database already at the current schema: `open_reader` returns None for one
that is behind or new (the Store then migrates it) and for a URL it does not read itself.
It also knows the head revision of migrations/ from the scripts' text, so that neither
this check nor the Store's imports alembic when there is nothing to apply.
"""
from __future__ import annotations

import re
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .errors import StorageError
from .redact import hide_password
from .reads import SeriesReads, driver_sql

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a write waits for another connection's lock
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([^'\"\s]*)['\"]?", re.M)
_POSTGRES = ("postgresql+psycopg://", "postgresql://", "postgres://")  # the short forms mean psycopg 3 here


def head_revisions() -> set[str]:
    """The head revision(s) of migrations/, read from the scripts' text without importing alembic."""
    revisions, parents = set(), set()
    for script in (resources.files("canary.migrations") / "versions").iterdir():
        if script.name.endswith(".py") and not script.name.startswith("_"):
            for key, value in _REVISION.findall(script.read_text(encoding="utf-8")):
                (revisions if key == "revision" else parents).add(value)
    return revisions - parents


class Reader(SeriesReads):
    """A DB-API connection serving SeriesReads; a driver's error becomes a StorageError (exit 5)."""

    refusals = (StorageError,)

    def __init__(self, conn, dialect: str, url: str, errors: type[Exception]):
        self.conn, self.dialect, self.safe_url, self._errors = conn, dialect, hide_password(url), errors

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        try:
            cur = self.conn.cursor()
            cur.execute(driver_sql(sql, self.dialect), params or {})
            return cur.fetchall()
        except self._errors as exc:
            raise self._failed(exc) from None

    def _execute(self, sql: str, params: list[dict[str, Any]]) -> None:
        # one transaction: psycopg's, or sqlite3's connection as a context (commit, or roll back)
        try:
            with self.conn.transaction() if self.dialect == "postgresql" else self.conn:
                self.conn.cursor().executemany(driver_sql(sql, self.dialect), params)
        except self._errors as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> StorageError:
        lines = str(exc).strip().splitlines()
        return StorageError(f"the database {self.safe_url} failed: {lines[0].strip() if lines else type(exc).__name__}")

    def current(self) -> bool:
        """Whether the database is at the head revision (a new one has no alembic_version)."""
        try:
            return {r[0] for r in self._rows("SELECT version_num FROM alembic_version")} == head_revisions()
        except StorageError:
            return False

    def close(self) -> None:
        self.conn.close()


def open_reader(url: str) -> Reader | None:
    """A Reader on the database at `url` if it is at the current schema, else None."""
    reader = _connect(url)
    if reader is None:
        return None
    if not reader.current():
        reader.close()
        return None
    return reader


def _connect(url: str) -> Reader | None:
    if url.startswith(("sqlite:///", "sqlite+pysqlite:///")):
        import sqlite3
        parts = urlsplit(url)
        path = parts.path[1:]
        if not path or path == ":memory:" or "%" in path or "#" in url:  # left to the Store: its URL rules
            return None
        query = parse_qs(parts.query)
        try:
            timeout = float(query.pop("timeout", [SQLITE_BUSY_TIMEOUT])[0])
        except ValueError:
            return None
        if query:  # other options: the Store reads them
            return None
        try:
            # mode=rw: never create the file (a new database is the Store's to make and migrate)
            conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=timeout, check_same_thread=False)
        except sqlite3.Error:
            return None
        return Reader(conn, "sqlite", url, sqlite3.Error)
    for prefix in _POSTGRES:
        if url.startswith(prefix):
            import psycopg
            try:
                # autocommit: a read is never left idle in a transaction, holding its locks
                conn = psycopg.connect("postgresql://" + url[len(prefix):], autocommit=True)
            except psycopg.Error:
                return None  # the Store says why, in its words
            return Reader(conn, "postgresql", url, psycopg.Error)
    return None
