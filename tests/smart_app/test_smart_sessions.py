"""SMART sessions in the database: shared by replicas, keyed by a hash of the cookie, expiring;
the Alembic migration (`cds97530 db upgrade`) and the table the app creates agree."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from required_parts import need_database_url

from smart_app.sessions import SMART_SESSIONS, SqlSessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_two_replicas_share_a_session_and_it_expires(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    clock = Clock()
    a, b = SqlSessionStore(url, 60, clock=clock), SqlSessionStore(url, 60, clock=clock)
    sid = a.create({"fhir_state": {"state": "s"}, "iss": "https://ehr.example/fhir"})
    assert b.get(sid) == {"fhir_state": {"state": "s"}, "iss": "https://ehr.example/fhir"}
    b.update(sid, fhir_state=None, access_token="tok")
    assert a.get(sid)["access_token"] == "tok" and a.get(sid)["fhir_state"] is None
    with sa.create_engine(url).connect() as conn:
        (key, data), = conn.execute(sa.select(SMART_SESSIONS.c.id, SMART_SESSIONS.c.data)).all()
    assert key != sid and sid not in data  # the cookie value opens nothing from a copy of the table
    clock.now += 61
    assert a.get(sid) is None and b.get(sid) is None
    assert a.get("not-a-session") is None and a.get("x" * 500) is None


def test_migration_and_created_table_agree(tmp_path: Any) -> None:
    from cds_hooks.migrate import upgrade_database

    migrated = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    upgrade_database(migrated)
    created = f"sqlite:///{tmp_path / 'created.sqlite3'}"
    SqlSessionStore(created).dispose()
    columns = [{(c["name"], c["nullable"], str(c["type"])) for c in sa.inspect(sa.create_engine(u)).get_columns("smart_sessions")}
               for u in (migrated, created)]
    assert columns[0] == columns[1]
    # a database whose tables `serve` made (create_tables) is upgraded without a clash
    upgrade_database(created)
    sid = SqlSessionStore(migrated, create_tables=False).create({"x": 1})
    assert SqlSessionStore(migrated, create_tables=False).get(sid) == {"x": 1}


@pytest.mark.postgres
def test_sessions_on_postgresql() -> None:
    url = need_database_url()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)
                              if url.startswith("postgresql://") else url)
    schema = f"smart_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = engine.execution_options(schema_translate_map={None: schema})
    try:
        a, b = SqlSessionStore(scoped, 60), SqlSessionStore(scoped, 60)
        sid = a.create({"iss": "https://ehr.example/fhir"})
        b.update(sid, access_token="tok")
        assert a.get(sid) == {"iss": "https://ehr.example/fhir", "access_token": "tok"}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.parametrize(("secure", "framed", "expect", "absent"), [
    (True, True, ["samesite=none", "secure", "partitioned", "httponly"], ["samesite=lax"]),
    (True, False, ["samesite=lax", "secure", "httponly"], ["partitioned"]),
    (False, True, ["samesite=lax", "httponly"], ["secure", "samesite=none"]),  # None needs Secure: loopback dev
])
def test_session_cookie_comes_back_from_inside_an_ehr_frame(secure: bool, framed: bool, expect: list[str],
                                                             absent: list[str]) -> None:
    from starlette.responses import Response

    from smart_app.sessions import set_session_cookie

    response = Response()
    set_session_cookie(response, "sid", secure=secure, max_age=60, framed=framed)
    cookie = response.headers["set-cookie"].lower()
    assert all(part in cookie for part in expect) and not any(part in cookie for part in absent), cookie
