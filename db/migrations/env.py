"""Alembic environment: runs on the connection :mod:`db.migrate` gives, or on ``CACTUS_DB_URL``."""

from __future__ import annotations

from alembic import context

from db.models import Base


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    # The alembic command line (developers): use the same engine setup as the app.
    from db.session import create_store_engine, database_url

    url = context.config.get_main_option("sqlalchemy.url") or database_url()
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            _configure_and_run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
