"""Several replicas on one PostgreSQL: the JWT replay cache and the feedback store are shared.

Two real ``cds97530 serve`` processes (started by the ``cluster`` fixture, tables from
``cds97530 db upgrade`` only) answer behind one public URL, as behind a load balancer. A JWT used at
one is refused at the other, also when both receive it at the same instant; feedback sent through
both (each item twice, concurrently) is in the database once per item.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

pytestmark = [pytest.mark.postgres]

PATH = "/cds-services/order-sign-97530"


def _post(url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def _hook_body(cluster: Any, harness: Any, i: int = 0) -> dict[str, Any]:
    bodies = harness.build_bodies(cluster, "full")
    return dict(bodies[i % len(bodies)], hookInstance=str(uuid.uuid4()))


def test_db_upgrade_builds_the_schema_on_postgres_and_is_idempotent(pg_base_url: str, load_harness: Any) -> None:
    from cds_hooks.store import Base
    from smart_app.sessions import SMART_SESSIONS

    tables = dict(Base.metadata.tables) | {SMART_SESSIONS.name: SMART_SESSIONS}  # migrations 0001 + 0002
    with load_harness.isolated_schema(pg_base_url, purpose="migrate") as url:
        for _ in range(2):  # a second upgrade (every replica's deploy step) changes nothing
            done = subprocess.run([load_harness.cli_bin(), "db", "upgrade", "--database-url", url],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
        engine = create_engine(url)
        try:
            insp = inspect(engine)
            assert set(insp.get_table_names()) == set(tables) | {"alembic_version"}
            for name, table in tables.items():
                assert {c["name"] for c in insp.get_columns(name)} == set(table.columns.keys()), name
            with engine.connect() as conn:
                assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
                schema = conn.execute(text("SELECT current_schema()")).scalar()
            assert schema.startswith("cds97530_migrate_"), "the run must not touch the public schema"
        finally:
            engine.dispose()


def test_a_jti_used_at_one_replica_is_refused_at_the_other(pg_cluster: Any, load_harness: Any) -> None:
    first, second = pg_cluster.replicas[:2]
    for a, b in ((first, second), (second, first)):
        token = pg_cluster.jwt(PATH)
        assert _post(a.base_url + PATH, token, _hook_body(pg_cluster, load_harness)).status_code == 200
        assert _post(b.base_url + PATH, token, _hook_body(pg_cluster, load_harness)).status_code == 401
        assert _post(a.base_url + PATH, token, _hook_body(pg_cluster, load_harness)).status_code == 401
    # A fresh token still works at both (the refusals above were about the jti, nothing else).
    for replica in (first, second):
        assert _post(replica.base_url + PATH, pg_cluster.jwt(PATH), _hook_body(pg_cluster, load_harness)).status_code == 200


def test_the_same_jti_raced_at_both_replicas_wins_exactly_once(pg_cluster: Any, load_harness: Any) -> None:
    """Eight copies of each token hit both replicas at once: the single-statement insert lets one win."""
    replicas = pg_cluster.replicas[:2]
    body = _hook_body(pg_cluster, load_harness)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            token = pg_cluster.jwt(PATH)
            statuses = list(pool.map(lambda i, token=token: _post(replicas[i % 2].base_url + PATH, token, body).status_code, range(8)))
            assert sorted(statuses) == [200] + [401] * 7, statuses


@pytest.fixture(scope="module")
def workers_replica(pg_cluster: Any, load_harness: Any) -> Iterator[Any]:
    """``cds97530 serve --workers 2``: two processes behind one port."""
    replica = load_harness.start_replica("replica-workers", database_url=pg_cluster.database_url,
                                         clients_file=pg_cluster.clients_file, log_dir=pg_cluster.workdir, workers=2)
    try:
        yield replica
    finally:
        replica.stop()
    assert not replica.alive


def test_serve_with_several_workers_shares_the_replay_cache(pg_cluster: Any, load_harness: Any,
                                                            workers_replica: Any) -> None:
    body = _hook_body(pg_cluster, load_harness)
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            token = pg_cluster.jwt(PATH)
            statuses = list(pool.map(lambda _, token=token: _post(workers_replica.base_url + PATH, token, body).status_code, range(8)))
            assert sorted(statuses) == [200] + [401] * 7, statuses
    token = pg_cluster.jwt(PATH)
    assert _post(workers_replica.base_url + PATH, token, body).status_code == 200
    assert _post(pg_cluster.replicas[0].base_url + PATH, token, body).status_code == 401


def test_serve_with_several_workers_still_logs_every_call(pg_cluster: Any, load_harness: Any,
                                                          workers_replica: Any) -> None:
    """The operator's audit trail (answered calls, refused JWTs) must not vanish with --workers."""
    assert _post(workers_replica.base_url + PATH, pg_cluster.jwt(PATH), _hook_body(pg_cluster, load_harness)).status_code == 200
    assert _post(workers_replica.base_url + PATH, "not.a.jwt", _hook_body(pg_cluster, load_harness)).status_code == 401
    time.sleep(0.5)  # log lines are flushed per record; give the worker a moment
    log = workers_replica.log_text()
    assert '"hook answered"' in log and '"jwt rejected"' in log, \
        "worker processes write no service log lines (logging is configured in the parent only)"


def _feedback_item(card_uuid: str, n: int) -> dict[str, Any]:
    return {
        "card": card_uuid, "outcome": "overridden" if n % 2 else "accepted",
        **({"acceptedSuggestions": []} if n % 2 == 0 else
           {"overrideReason": {"reason": {"system": "https://cds97530.example/override", "code": "replica-test",
                                          "display": "Replica test"}}}),
        "outcomeTimestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def test_feedback_written_through_both_replicas_is_all_there_once(pg_cluster: Any, load_harness: Any) -> None:
    replicas = pg_cluster.replicas[:2]
    cards: list[str] = []
    for i in range(8):  # cards made by both replicas
        replica = replicas[i % 2]
        response = _post(replica.base_url + PATH, pg_cluster.jwt(PATH), _hook_body(pg_cluster, load_harness, i))
        assert response.status_code == 200
        cards += [c["uuid"] for c in response.json()["cards"]]
    assert len(cards) >= 4, "the synthetic visits should yield cards to give feedback on"
    items = [_feedback_item(card, n) for n, card in enumerate(cards)]
    fb_path = PATH + "/feedback"

    def send(job: tuple[int, dict[str, Any]]) -> dict[str, int]:
        idx, item = job
        replica = replicas[idx % 2]
        response = _post(replica.base_url + fb_path, pg_cluster.jwt(fb_path), {"feedback": [item]})
        assert response.status_code == 200, response.text
        return dict(response.json())

    # Every item goes to BOTH replicas, all at the same time: the racing duplicate must be dropped.
    jobs = [(i, item) for item in items for i in (0, 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, jobs))
    assert sum(a["stored"] for a in answers) == len(items)
    assert sum(a["duplicates"] for a in answers) == len(items)
    counts = load_harness.feedback_counts(pg_cluster.database_url)
    assert {c: counts[c] for c in cards} == {c: 1 for c in cards}

    # A batch with all items again, through the other replica: nothing new.
    again = _post(replicas[1].base_url + fb_path, pg_cluster.jwt(fb_path), {"feedback": items})
    assert again.json() == {"stored": 0, "duplicates": len(items)}

    # The feedback report (read-only CLI) sees the cards of both replicas with their outcomes.
    done = subprocess.run([load_harness.cli_bin(), "feedback", "report", "--format", "json",
                           "--database-url", pg_cluster.database_url],
                          capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(done.stdout)
    assert sum(r["accepted"] + r["overridden"] for r in report) >= len(items)
