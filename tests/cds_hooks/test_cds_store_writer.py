"""The store's writer thread: rows it commits read back exactly as SQLAlchemy Core writes them, a
jti raced from many threads is fresh exactly once, a bad row fails only its own call, and the
writes of concurrent calls share transactions. SQLite, and PostgreSQL when
``CDS97530_TEST_DATABASE_URL`` is set."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from cds_hooks.store import CardRow, EvaluationRow, SeenJtiRow, Store


def _record(eid: str) -> dict[str, Any]:
    return {"id": eid, "hook_instance": f"h-{eid}", "service_id": "s", "hook": "order-sign", "client": "c",
            "patient_ref": "Patient/1", "encounter_ref": "Encounter/1", "claim_ref": None,
            "order_refs": ["ServiceRequest/1"], "payer": "medicare", "unit_method": "cms", "ruleset_version": "v 1",
            "lines": [{"code": "97530", "criteria": {"goal": "met"}, "minutes": 26}], "input_issue_count": 0,
            "card_count": 1}


def _card(eid: str) -> dict[str, Any]:
    return {"uuid": f"card-{eid}", "service_id": "s", "client": "c", "indicator": "info", "rule": "97530/goal",
            "rules": ["97530/goal"], "line_ref": "ServiceRequest/1", "suggestions": {f"sug-{eid}": "units"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path}/w.sqlite3")
        s.create_tables()
        yield s
        s.dispose()
        return
    url = os.environ.get("CDS97530_TEST_DATABASE_URL", "").strip()
    if not url:
        pytest.skip("CDS97530_TEST_DATABASE_URL is not set")
    schema = f"writer_{os.getpid()}_{threading.get_ident() % 10000}"
    admin = Store(url)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    from sqlalchemy.engine import make_url

    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    s = Store(scoped)
    s.create_tables()
    try:
        yield s
    finally:
        s.dispose()
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_rows_from_the_writer_read_back_as_core_writes_them(store: Store) -> None:
    assert store._fast is not None, "SQLite and PostgreSQL use the compiled statements"
    store.save_evaluation(_record("w"), [_card("w")])
    now = datetime.now(UTC)
    with store.engine.begin() as conn:  # the same row through SQLAlchemy Core
        conn.execute(insert(EvaluationRow.__table__), [{**_record("c"), "created_at": now}])
        conn.execute(insert(CardRow.__table__), [{**_card("c"), "created_at": now, "evaluation_id": "c"}])
    by_writer, by_core = store.get_evaluation("w"), store.get_evaluation("c")
    assert by_writer is not None and by_core is not None
    for got in (by_writer, by_core):
        got.pop("createdAt")
    assert by_writer == {**by_core, "id": "w", "hookInstance": "h-w",
                         "cards": [{**by_core["cards"][0], "uuid": "card-w"}]}
    with store.session() as session:  # timestamps in the same stored form: they compare as datetimes
        created = session.scalars(select(EvaluationRow.created_at).order_by(EvaluationRow.id)).all()
    assert abs((created[0].replace(tzinfo=None) - created[1].replace(tzinfo=None)).total_seconds()) < 60
    assert store.cards_not_issued({"card-w", "card-c", "card-x"}, service_id="s", client="c") == {"card-x"}


def test_a_jti_raced_from_many_threads_is_fresh_exactly_once_and_expired_ones_come_back(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        results.append(store.remember_jti("iss", "raced", later))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    past = datetime.now(UTC) - timedelta(minutes=1)
    assert store.remember_jti("iss", "old", past) is True
    assert store.remember_jti("iss", "old", later) is True  # the earlier use had expired
    with store.session() as session:
        assert session.scalar(select(SeenJtiRow.expires_at).where(SeenJtiRow.jti == "old")) is not None


def test_a_bad_row_fails_only_its_own_call_and_concurrent_calls_share_transactions(store: Store) -> None:
    store.save_evaluation(_record("dup"), [_card("dup")])
    batches: list[int] = []
    apply = store._apply_writes

    def counting(batch: list[Any]) -> None:
        batches.append(len(batch))
        apply(batch)

    store._writer._apply = counting
    errors: dict[str, BaseException] = {}
    barrier = threading.Barrier(10)

    def save(eid: str) -> None:
        barrier.wait()
        try:
            store.save_evaluation(_record(eid), [_card(eid)])
        except IntegrityError as exc:
            errors[eid] = exc

    ids = ["dup"] + [f"ok{i}" for i in range(9)]
    threads = [threading.Thread(target=save, args=(eid,)) for eid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(errors) == {"dup"}, "only the duplicate id fails"
    assert all(store.get_evaluation(f"ok{i}") is not None for i in range(9))
    assert sum(batches) >= 10 and max(batches) > 1, f"no batch held two calls: {batches}"


def _kill_connection(store: Store, raw: Any) -> None:
    """What a database restart does to an idle connection: SQLite's handle closed, PostgreSQL's
    backend terminated from another session."""
    if store.engine.dialect.name == "sqlite":
        raw.dbapi_connection.close()
        return
    pid = raw.dbapi_connection.info.backend_pid
    with store.engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_the_writer_keeps_its_connection_and_replaces_one_that_died_while_idle(store: Store) -> None:
    fast = store._fast
    assert fast is not None
    store.save_evaluation(_record("a"), [_card("a")])
    held = fast._raw
    assert held is not None
    store.save_evaluation(_record("b"), [_card("b")])
    assert fast._raw is held, "the second batch checked out another connection"
    _kill_connection(store, held)
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert store.remember_jti("iss", "after-restart", later) is True  # no error reaches the call
    store.save_evaluation(_record("c"), [_card("c")])
    assert fast._raw is not None and fast._raw is not held
    assert all(store.get_evaluation(e) is not None for e in "abc")
    assert store.remember_jti("iss", "after-restart", later) is False
    store.dispose()
    assert fast._raw is None, "dispose gives the connection back"
