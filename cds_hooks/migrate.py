"""Bring the store's database to the latest schema (Alembic, ``migrations/``): ``cds97530 db upgrade``.

    from cds_hooks.migrate import upgrade_database
    upgrade_database("postgresql+psycopg://cds@db.internal/cds97530")
"""
from __future__ import annotations

from importlib import resources


def upgrade_database(url: str) -> None:
    """Run the Alembic migrations; a database made by ``create_tables`` is stamped, not rebuilt."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from cds_hooks.store import _make_engine

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("cds_hooks").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = _make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if "evaluations" in tables and "alembic_version" not in tables:
        command.stamp(cfg, "0001")
    command.upgrade(cfg, "head")
