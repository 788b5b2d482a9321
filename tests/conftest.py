"""Shared fixtures: one database fixture that runs a test on SQLite and on PostgreSQL.

PostgreSQL runs when $CANARY_TEST_POSTGRES_URL is set (`.ci/run` sets it and checks those
tests ran); each test gets a schema of its own, dropped afterwards.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("CANARY_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'canary.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need $CANARY_TEST_POSTGRES_URL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(db_url):
    from canary.store import Store
    s = Store(db_url)
    yield s
    s.close()
