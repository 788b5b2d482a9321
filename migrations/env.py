"""Alembic environment: runs on the connection canary hands over, or on the URL in alembic.ini."""
from alembic import context
from sqlalchemy import create_engine

from canary.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    import os
    url = os.environ.get("CANARY_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as conn:
        run(conn)
