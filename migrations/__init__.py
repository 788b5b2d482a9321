"""Alembic migrations of canary's database; shipped inside the package as canary.migrations."""
