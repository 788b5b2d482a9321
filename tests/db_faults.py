"""Real database faults for the tests and the fault benchmark, on SQLite and PostgreSQL.

- `TcpProxy`: 127.0.0.1:<port> in front of a server; `cut()` closes every connection and
  refuses new ones, `restore()` listens again on the same port. To a client that is what
  a PostgreSQL restart (or a network cut) looks like; the shared server is never touched.
- `SqliteWriteLock`: a second connection holding a write transaction (`BEGIN IMMEDIATE`):
  every other writer gets `database is locked` once its busy timeout passes.
- `sqlite_full(path, extra_pages)`: SQLite's own SQLITE_FULL ("database or disk is
  full"), by `PRAGMA max_page_count` on every connection to the file.
- `pg_full(url, after)`: PostgreSQL's own `disk_full` error (SQLSTATE 53100), raised by a
  trigger in the test's schema once `after` samples are stored.
"""
from __future__ import annotations

import socket
import sqlite3
import threading
from contextlib import contextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url


class TcpProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    @classmethod
    def in_front_of(cls, database_url: str) -> "TcpProxy":
        u = make_url(database_url)
        return cls(u.host or "127.0.0.1", u.port or 5432)

    def url(self, database_url: str) -> str:
        """`database_url` pointed at this proxy."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-proxy").start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True, name="tcp-proxy-pipe").start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SqliteWriteLock:
    """Hold (or release) a write transaction on a SQLite file from a connection of our own."""

    def __init__(self, path: str):
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def hold(self) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None


@contextmanager
def sqlite_full(path: str, extra_pages: int = 0, engine=Engine):
    """Every connection of `engine` (default: of every engine, so of a command's own) may grow
    the SQLite file by `extra_pages` pages at most, until exit; after a VACUUM, so that no free
    page is left to fill first."""
    if isinstance(engine, Engine):
        engine.dispose()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("VACUUM")
    limit = raw.execute("PRAGMA page_count").fetchone()[0] + extra_pages
    raw.close()

    def cap(dbapi_conn, _record):
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.execute(f"PRAGMA max_page_count={limit}")
    event.listen(engine, "connect", cap)
    try:
        yield
    finally:
        event.remove(engine, "connect", cap)
        if isinstance(engine, Engine):
            engine.dispose()


@contextmanager
def pg_full(url: str, after: int):
    """Inserting the `after`-th sample (and any later) fails with PostgreSQL's disk_full, until exit."""
    from canary.store import make_engine
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE FUNCTION canary_test_disk_full() RETURNS trigger AS $$ BEGIN "
            f"IF (SELECT count(*) FROM samples) >= {after} THEN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
        conn.execute(text("CREATE TRIGGER canary_test_disk_full BEFORE INSERT ON samples "
                          "FOR EACH ROW EXECUTE FUNCTION canary_test_disk_full()"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER canary_test_disk_full ON samples"))
            conn.execute(text("DROP FUNCTION canary_test_disk_full()"))
        engine.dispose()
