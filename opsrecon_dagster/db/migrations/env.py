"""Alembic environment: runs against the connection handed over by ``db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from opsrecon_dagster.db.engine import make_engine
from opsrecon_dagster.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic -x url=...` use by developers
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database URL with: alembic -x url=sqlite:///data/x.sqlite3 ...")
    with make_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
