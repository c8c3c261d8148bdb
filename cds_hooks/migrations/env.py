"""Alembic environment for the CDS store (``cds97530 db upgrade``)."""
from __future__ import annotations

from alembic import context

from cds_hooks.settings import CdsSettings
from cds_hooks.store import Base, _make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or CdsSettings().database_url
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = _make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
