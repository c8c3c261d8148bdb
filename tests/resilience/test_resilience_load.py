"""Short load and a crashed replica: no errors, no 5xx, no feedback row lost or doubled.

The short version of ``benchmarks/load_cds.py`` (same driver, a few seconds per mode): concurrent
order-sign calls with full prefetch and with FHIR fallback against the real FHIR server, spread
over two replicas, with feedback sent through the other replica. Then a third replica is SIGKILLed
mid-load: the survivor keeps answering and every acknowledged feedback item is stored exactly once.
No timing is asserted (speed lives in the benchmark, not in tests that flake).
"""
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("mode", ["full", "fallback"])
def test_short_load_has_no_errors_and_no_5xx(cluster: Any, load_harness: Any, mode: str) -> None:
    ledger = load_harness.FeedbackLedger()
    # Fallback calls make six FHIR reads each against one Node process: 2 clients keep the FHIR
    # server (not the service) from being the thing under test on a 2-core CI machine.
    result = asyncio.run(load_harness.drive(cluster, mode, seconds=4.0, concurrency=4 if mode == "full" else 2,
                                            feedback_every=3, ledger=ledger))
    summary = result.summary()
    print(summary)
    assert result.ok >= 4, summary
    assert result.errors == 0 and result.server_errors == 0, summary
    assert set(result.by_replica) == {r.name for r in cluster.replicas}, "the balancer must use every replica"
    assert result.empty < result.ok, "most synthetic visits need a card; all-empty means the work was skipped"
    check = ledger.check(cluster.database_url)
    assert check["sent"] > 0 and not check["lost"] and not check["doubled"], check


def test_killing_a_replica_mid_load_loses_nothing(cluster: Any, load_harness: Any) -> None:
    victim = cluster.add_replica(log_level="info")
    cluster.replicas.remove(victim)  # private to this test: the session's two replicas stay as they are
    survivor = cluster.replicas[0]
    ledger = load_harness.FeedbackLedger()
    try:
        result = asyncio.run(load_harness.drive(cluster, "full", seconds=6.0, concurrency=6, feedback_every=2,
                                                ledger=ledger, kill_after=2.0, replicas=[victim, survivor]))
    finally:
        victim.stop()
    summary = result.summary()
    print(summary, dict(result.answered_after_kill))
    assert not victim.alive, "the victim must have been killed"
    assert result.failovers > 0, "no request met the dead replica: the kill did not happen mid-load"
    assert result.errors == 0 and result.server_errors == 0, summary
    assert result.answered_after_kill.get(f"127.0.0.1:{survivor.port}", 0) > 0, "the survivor must keep answering"
    assert result.by_replica[victim.name] > 0, "the victim must have served before it died"
    check = ledger.check(cluster.database_url)
    print(check)
    assert check["acknowledged"] == check["sent"] > 0, check
    assert not check["lost"] and not check["doubled"], check


def test_with_the_database_down_no_card_is_given_without_the_replay_check(cluster: Any, load_harness: Any) -> None:
    """A replica whose database is unreachable cannot record a ``jti``: it must not evaluate (that
    would accept replays), must not 5xx or hang on hook calls (the EHR gets 200 with no cards), and
    must not acknowledge feedback it could not store (so the EHR sends it again)."""
    dead_port = load_harness.free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{dead_port}/test?connect_timeout=2"
    replica = load_harness.start_replica("replica-nodb", database_url=url, clients_file=cluster.clients_file,
                                         log_dir=cluster.workdir)
    path = "/cds-services/order-sign-97530"
    try:
        # a visit labelled as not supported, so a healthy replica has a card for it (bodies follow data.visits())
        index = next(i for i, v in enumerate(cluster.data.visits()) if v.case.verdict != "supported")
        body = dict(load_harness.build_bodies(cluster, "full")[index], hookInstance="db-down-check")
        for _ in range(3):
            response = httpx.post(replica.base_url + path, json=body, timeout=30,
                                  headers={"Authorization": f"Bearer {cluster.jwt(path)}"})
            assert response.status_code == 200 and response.json() == {"cards": []}, response.text[:200]
        item = {"card": "db-down", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
        response = httpx.post(replica.base_url + path + "/feedback", json={"feedback": [item]}, timeout=30,
                              headers={"Authorization": f"Bearer {cluster.jwt(path + '/feedback')}"})
        assert response.status_code != 200, "feedback acknowledged although it could not be stored"
        # The same body at a healthy replica gets its card: the empty answers above were the outage.
        healthy = httpx.post(cluster.replicas[0].base_url + path, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {cluster.jwt(path)}"})
        assert healthy.status_code == 200 and healthy.json()["cards"]
    finally:
        replica.stop()
