"""Feedback is stored idempotently and reported per rule; the store keeps no note text, names or
tokens; migrations and create_tables agree; the SMART page can read an evaluation's metadata."""
from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
from required_parts import need_database_url
from sqlalchemy import inspect

from cds97530.cli import main
from cds_hooks.migrate import upgrade_database
from cds_hooks.store import Base, Store

OS = "/cds-services/order-sign-97530"
FB = OS + "/feedback"


def _card(harness, fx, note=None):
    note = note or fx.NOTE_EXERCISE_ONLY
    response = harness.post(OS, fx.order_sign_request(note))
    (card,) = response.json()["cards"]
    return card


def test_feedback_round_trip_and_idempotent(harness, fx, schema):
    card = _card(harness, fx)
    item = {"card": card["uuid"], "outcome": "accepted",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            "outcomeTimestamp": "2026-11-20T10:01:02.5Z"}
    body = {"feedback": [item]}
    schema("feedbackRequest", body)
    first = harness.post(FB, body)
    assert first.status_code == 200 and first.json() == {"stored": 1, "duplicates": 0}
    again = harness.post(FB, body)  # the EHR re-sends the batch
    assert again.json() == {"stored": 0, "duplicates": 1}
    rates = {r.rule: r for r in harness.store.feedback_rates()}
    assert rates["97530/recode"].accepted == 1 and rates["97530/recode"].cards == 1


def test_override_reason_stored_without_the_free_text_comment(harness, fx):
    card = _card(harness, fx)
    reason = card["overrideReasons"][0]
    comment = f"patient {fx.SECRET_PHRASE} refused"
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": reason, "userComment": comment},
                          "outcomeTimestamp": "2026-11-20T10:05:00Z"}]}
    assert harness.post(FB, body).json()["stored"] == 1
    db = harness.settings.database_url.removeprefix("sqlite:///")
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert reason["code"] in dump
    assert "refused" not in dump and fx.SECRET_PHRASE.split()[1] not in dump


def test_feedback_is_validated(harness):
    bad = {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-11-20T10:05:00Z"}]}
    response = harness.post(FB, bad)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
    assert harness.post(FB, {"feedback": []}).status_code == 400


def test_store_keeps_no_note_text_names_or_tokens(harness, fx):
    note = fx.NOTE_EXERCISE_ONLY + f"\nSigned {fx.SECRET_PHRASE}, PT"
    body = fx.order_sign_request(note)
    token = harness.mint(harness.url(OS))
    harness.post(OS, body, token=token)
    db = harness.settings.database_url.removeprefix("sqlite:///")
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert "ServiceRequest/sr-1" in dump and "97110" in dump  # metadata is there
    for secret in ("knee extension", "Quillfeather", "Zyxwvut", fx.ACCESS_TOKEN, token.split(".")[2]):
        assert secret not in dump


def _signed_get(harness, path, **mint_kw):
    return harness.client.get(path, headers={"Authorization": f"Bearer {harness.mint(harness.url(path), **mint_kw)}"})


def test_evaluation_read_for_the_smart_page(harness, fx):
    card = _card(harness, fx)
    smart = next(link for link in card["links"] if link["type"] == "smart")
    eval_id = json.loads(smart["appContext"])["evaluationId"]
    assert harness.client.get(f"/evaluations/{eval_id}").status_code == 401  # no credential, nothing shown
    response = _signed_get(harness, f"/evaluations/{eval_id}")  # the client the card was issued to
    assert response.status_code == 200
    data = response.json()
    assert data["serviceId"] == "order-sign-97530" and data["encounter"] == "Encounter/enc-1"
    assert data["orders"] == ["ServiceRequest/sr-1"]
    (line,) = data["lines"]
    assert line["verdict"] == "recode" and line["suggestedCode"] == "97110"
    assert data["cards"][0]["uuid"] == card["uuid"]
    assert "knee" not in response.text and "pat-1" not in response.text
    assert _signed_get(harness, f"/evaluations/{uuid.uuid4()}").status_code == 404
    # another registered EHR with a valid token does not see this client's evaluation
    assert _signed_get(harness, f"/evaluations/{eval_id}", iss="https://epic.test").status_code == 404


def test_evaluation_read_can_require_a_token(make_harness, fx):
    h = make_harness(evaluations_token="s3cret")
    assert h.client.get("/evaluations/x").status_code == 401
    assert h.client.get("/evaluations/x", headers={"Authorization": "Bearer s3cret"}).status_code == 404


def test_feedback_report_cli(harness, fx, capsys):
    for outcome in ("accepted", "overridden", None):
        card = _card(harness, fx)
        if outcome is None:
            continue
        item = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": "2026-11-20T10:05:00Z"}
        if outcome == "accepted":
            item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
        harness.post(FB, {"feedback": [item]})
    assert main(["feedback", "report", "--database-url", harness.settings.database_url]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("97530/recode"))
    # three firings for the same visit and line are one card; its latest answer (the override) decides
    assert row.split()[1:6] == ["1", "0", "1", "0%", "100%"]
    assert "overridden 1x: no reason given" in out
    assert main(["feedback", "report", "--database-url", harness.settings.database_url, "--format", "json"]) == 0
    data = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert data["97530/recode"]["overrideRate"] == 1.0 and data["97530/recode"]["shown"] == 3
    assert data["97530/recode"]["overrideReasons"] == [{"reason": "no reason given", "count": 1}]


def test_feedback_report_by_visit_cli(harness, fx, capsys):
    """Each visit's card once, with how often it was shown and the latest answer (issue 14)."""
    for outcome in ("accepted", "overridden"):
        card = _card(harness, fx)
        item = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": f"2026-11-20T10:0{5 if outcome == 'accepted' else 6}:00Z"}
        if outcome == "accepted":
            item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
        harness.post(FB, {"feedback": [item]})
    assert main(["feedback", "report", "--by", "visit", "--format", "json", "--database-url", harness.settings.database_url]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["rule"] == "97530/recode"]
    assert len(rows) == 1  # two firings for one visit and line are one card
    assert rows[0]["shown"] == 2 and rows[0]["outcome"] == "overridden"
    assert main(["feedback", "report", "--by", "visit", "--database-url", harness.settings.database_url]) == 0
    text = capsys.readouterr().out
    assert "97530/recode" in text and "overridden" in text


def test_latest_feedback_wins_for_a_card(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.sqlite3")
    store.create_tables()
    store.save_evaluation(
        {"id": "e1", "hook_instance": "h", "service_id": "s", "hook": "order-sign", "client": "c", "patient_ref": None,
         "encounter_ref": None, "claim_ref": None, "order_refs": [], "payer": None, "unit_method": None,
         "ruleset_version": None, "lines": [], "input_issue_count": 0, "card_count": 1},
        [{"uuid": "c1", "service_id": "s", "client": "c", "indicator": "warning", "rule": "r", "rules": ["r", "q"],
          "line_ref": None, "suggestions": {}}],
    )
    store.save_feedback([{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}], service_id="s", client="c")
    store.save_feedback([{"card": "c1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}],
                          "outcomeTimestamp": "2026-11-20T11:00:00Z"}], service_id="s", client="c")
    rates = {r.rule: (r.cards, r.accepted, r.overridden) for r in store.feedback_rates()}
    assert rates == {"q": (1, 1, 0), "r": (1, 1, 0)}


def test_db_upgrade_on_fresh_and_on_create_tables_database(tmp_path, capsys):
    fresh = f"sqlite:///{tmp_path}/fresh.sqlite3"
    assert main(["db", "upgrade", "--database-url", fresh]) == 0
    store = Store(fresh)
    assert set(inspect(store.engine).get_table_names()) >= {"evaluations", "cards", "feedback", "seen_jti", "alembic_version"}
    _same_columns(store, Store(f"sqlite:///{tmp_path}/orm.sqlite3"))
    made = f"sqlite:///{tmp_path}/made.sqlite3"
    Store(made).create_tables()
    upgrade_database(made)  # stamped, not rebuilt
    upgrade_database(made)  # and idempotent
    assert "alembic_version" in inspect(Store(made).engine).get_table_names()


def _same_columns(migrated: Store, orm: Store) -> None:
    orm.create_tables()
    a, b = inspect(migrated.engine), inspect(orm.engine)
    for table in Base.metadata.tables:
        cols_a = {(c["name"], c["nullable"]) for c in a.get_columns(table)}
        cols_b = {(c["name"], c["nullable"]) for c in b.get_columns(table)}
        assert cols_a == cols_b, table


@pytest.mark.postgres
def test_postgres_store_and_migrations():
    """Runs in a schema of its own, so tables other tests keep in the same database are untouched."""
    url = need_database_url()
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    schema = f"cds_test_{uuid.uuid4().hex[:10]}"
    admin = Store(url)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    scoped_url = scoped.render_as_string(hide_password=False)
    stores: list[Store] = []
    try:
        upgrade_database(scoped_url)
        store, replica = Store(scoped_url), Store(scoped_url)
        stores += [store, replica]
        assert {"evaluations", "cards", "feedback", "seen_jti", "alembic_version"} <= set(
            inspect(store.engine).get_table_names())
        exp = datetime.now(UTC) + timedelta(minutes=5)
        assert store.remember_jti("iss", "j1", exp) is True
        assert replica.remember_jti("iss", "j1", exp) is False  # a second replica sees it
        item = {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
        assert store.save_feedback([item], service_id="s", client="c") == (1, 0)
        assert replica.save_feedback([item], service_id="s", client="c") == (0, 1)
    finally:
        for opened in stores:  # an undisposed engine leaves its connections to the garbage collector
            opened.dispose()
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_feedback_timestamp_must_be_rfc3339(harness, fx):
    bad = {"feedback": [{"card": _card(harness, fx)["uuid"], "outcome": "overridden", "outcomeTimestamp": "yesterday"}]}
    response = harness.post(FB, bad)
    assert response.status_code == 400 and "outcomeTimestamp" in response.json()["issue"][0]["diagnostics"]


def test_resent_item_with_an_impossible_date_is_still_stored_once(harness, fx):
    item = {"card": _card(harness, fx)["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-13-40T99:99:99Z"}
    assert harness.post(FB, {"feedback": [item]}).json() == {"stored": 1, "duplicates": 0}
    assert harness.post(FB, {"feedback": [item]}).json() == {"stored": 0, "duplicates": 1}


@pytest.mark.parametrize("path", [OS, FB])
def test_deeply_nested_json_is_400(harness, path):
    nested = b'{"hook":"order-sign","hookInstance":"x","context":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = harness.post(path, nested)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


def _eval_row(eid: str, encounter: str | None) -> dict:
    return {"id": eid, "hook_instance": eid, "service_id": "s", "hook": "org.cds97530.claim-sign", "client": "c",
            "patient_ref": None, "encounter_ref": encounter, "claim_ref": None, "order_refs": [], "payer": None,
            "unit_method": None, "ruleset_version": None, "lines": [], "input_issue_count": 0, "card_count": 1}


def _card_row(uuid_: str, rules: list[str], line: str = "Claim/c1") -> dict:
    return {"uuid": uuid_, "service_id": "s", "client": "c", "indicator": "warning", "rule": rules[0], "rules": rules,
            "line_ref": line, "suggestions": {}}


def test_report_counts_each_card_once_per_visit_with_override_reasons(tmp_path):
    """Five visits; visit 1's hook fired three times (three cards for the same line and rule), visit
    2's twice. One accept on visit 1 is one accepted card of five, not 100% of three firings."""
    store = Store(f"sqlite:///{tmp_path}/v.sqlite3")
    store.create_tables()
    n = 0
    for visit, firings in (("Encounter/v1", 3), ("Encounter/v2", 2), ("Encounter/v3", 1), ("Encounter/v4", 1),
                           ("Encounter/v5", 1)):
        for _ in range(firings):
            n += 1
            store.save_evaluation(_eval_row(f"e{n}", visit), [_card_row(f"c{n}", ["97530/units-over-billed"])])
    fb = [
        {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
         "overrideReason": {"reason": {"code": "documented-elsewhere", "display": "Documented in another note"}}},
        {"card": "c3", "outcome": "accepted", "outcomeTimestamp": "2026-11-20T11:00:00Z"},  # visit 1, later: accepted
        {"card": "c4", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
         "overrideReason": {"reason": {"code": "clinician-judgment", "display": "Therapeutic activities as billed"}}},
        {"card": "c6", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z",
         "overrideReason": {"reason": {"code": "clinician-judgment", "display": "Therapeutic activities as billed"}}},
    ]
    store.save_feedback(fb, service_id="s", client="c")
    (rate,) = store.feedback_rates()
    assert (rate.cards, rate.shown, rate.accepted, rate.overridden) == (5, 8, 1, 2)
    assert rate.accept_rate == pytest.approx(1 / 3)
    assert rate.reasons == (("Therapeutic activities as billed", 2),)
    visits = {(r["visit"], r["outcome"]) for r in store.feedback_by_visit()}
    assert visits == {("Encounter/v1", "accepted"), ("Encounter/v2", "overridden"), ("Encounter/v3", "overridden"),
                      ("Encounter/v4", None), ("Encounter/v5", None)}
    by_visit = {r["visit"]: r for r in store.feedback_by_visit()}
    assert by_visit["Encounter/v1"]["shown"] == 3 and by_visit["Encounter/v2"]["reason"] == "Therapeutic activities as billed"


def test_feedback_for_a_card_never_issued_is_404_and_nothing_is_stored(harness, fx):
    card = _card(harness, fx)
    invented = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    real = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    response = harness.post(FB, {"feedback": [real, invented]})
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"
    assert harness.store.feedback_rates() == [] or all(r.overridden == 0 for r in harness.store.feedback_rates())
    assert harness.post(FB, {"feedback": [real]}).json() == {"stored": 1, "duplicates": 0}


def test_feedback_for_a_card_issued_to_another_client_is_404(harness, fx):
    card = _card(harness, fx)  # issued to test-ehr
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    token = harness.mint(harness.url(FB), iss="https://epic.test")
    response = harness.post(FB, {"feedback": [item]}, token=token)
    assert response.status_code == 404
    assert all(r.overridden == 0 for r in harness.store.feedback_rates())


def test_feedback_for_a_card_of_another_service_is_404(harness, fx):
    card = _card(harness, fx)  # issued by order-sign-97530
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T10:00:00Z"}
    other = "/cds-services/patient-view-97530/feedback"
    assert harness.post(other, {"feedback": [item]}).status_code == 404
