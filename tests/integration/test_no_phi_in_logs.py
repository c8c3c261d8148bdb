"""No note text, patient name or token in any log line, nor in the service's database.

Every log record of the session is captured at DEBUG (see conftest). This test first drives the
paths most likely to leak: every hook with full and absent prefetch, FHIR errors whose bodies echo
requests (expired token, 500, malformed JSON), a bad JWT, and override feedback whose free-text
comment names the patient. Then it searches the captured text, the Node FHIR server's stderr and
the SQLite store for every patient name, distinctive note sentences, FHIR access tokens and JWTs.
"""
from __future__ import annotations

import sqlite3
from typing import Any

HOOKS = ("order-sign", "org.cds97530.claim-sign", "patient-view")




def _drive(env: Any) -> None:
    for visit in env.data.visits(group="formats") + env.data.visits(payer="wsi")[:2]:
        for hook in HOOKS:
            for prefetch in ("full", "absent"):
                result = env.ehr.fire(env.service_base, hook, env.ehr.context_for(hook, env.data, visit), prefetch=prefetch)
                assert result.status in (200, 412)
                for card in result.cards[:1]:
                    patient = env.data.patient(visit.patient_id)
                    env.ehr.send_feedback(env.service_base, result.service_id, card,
                                          comment=f"{patient.name} says: {visit.note_text[:80]}")
    if env.local:
        visit = env.data.visit("medicaid2-1")
        for fault in ({"mode": "status500"}, {"mode": "malformed"}, {"mode": "huge-binary"}):
            token = env.new_token(fault=fault, expires_in=300)
            env.ehr.fire(env.service_base, "patient-view", env.ehr.context_for("patient-view", env.data, visit),
                         prefetch="absent", fhir_token=token)
        expired = env.new_token(expires_in=300)
        env.fhir.expire_token(expired)
        env.ehr.fire(env.service_base, "org.cds97530.claim-sign", env.ehr.context_for("org.cds97530.claim-sign", env.data, visit),
                     prefetch="absent", fhir_token=expired)
    # A JWT the service must refuse (wrong audience): its rejection is logged, the token must not be.
    service = env.ehr.service("patient-view")
    visit = env.data.visit("medicare1-1")
    bad = env.ehr.sign_jwt(env.service_base + "/cds-services/elsewhere")
    body = env.ehr.build_request(service, env.ehr.context_for("patient-view", env.data, visit), prefetch="absent")
    assert env.ehr.post_hook(env.service_base, service, body, jwt_override=bad).status == 401


def _forbidden(env: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in env.data.secrets_for_log_check():
        out[text] = "patient name or note text"
    for token in env.tokens_seen:
        out[token] = "FHIR access token"
    for token in env.ehr.issued_jwts:
        header_payload, _, signature = token.rpartition(".")
        out[header_payload.split(".")[1]] = "JWT payload"
        out[signature] = "JWT signature"
    return out


def test_no_phi_or_token_in_logs_or_store(env: Any) -> None:
    _drive(env)
    logs = env.logs.text()
    assert "cds97530" in logs, "log capture saw nothing from the service: the check would be empty"
    node_stderr = "".join(getattr(env.fhir, "_stderr_tail", []) or []) if env.fhir else ""
    db_path = env.service.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as db:
        dump = "\n".join(db.iterdump())
    leaks = []
    for needle, what in _forbidden(env).items():
        for where, text in (("logs", logs), ("FHIR server stderr", node_stderr), ("service store", dump)):
            if needle and needle in text:
                leaks.append(f"{what} found in {where}: {needle[:12]}...")
    assert not leaks, "\n".join(sorted(set(leaks)))
