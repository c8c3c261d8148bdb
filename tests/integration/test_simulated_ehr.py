"""The simulated EHR on its own: the JWTs it signs, the JWKS it serves, the prefetch it builds."""
from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from sandbox.ehr import EhrKeys, JwksServer, SimulatedEhr, render_template


@pytest.fixture(scope="module")
def ehr_alone() -> Any:
    keys = EhrKeys()
    with JwksServer(keys) as jwks:
        ehr = SimulatedEhr(keys=keys, jku=jwks.url, iss=jwks.origin, fhir_base="http://127.0.0.1:9/fhir")
        yield ehr, jwks
        ehr.close()


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_jwt_verifies_with_the_served_jwks_and_has_the_cds_hooks_claims(ehr_alone: Any, alg: str) -> None:
    ehr, jwks = ehr_alone
    aud = "http://127.0.0.1:8530/cds-services/order-sign-97530"
    token = ehr.sign_jwt(aud, alg=alg)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["typ"] == "JWT" and header["jku"] == jwks.url and header["kid"]
    served = httpx.get(jwks.url, timeout=10).json()
    jwk = next(k for k in served["keys"] if k["kid"] == header["kid"])
    assert "d" not in jwk and "p" not in jwk, "private key material in the JWKS"
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=[alg], audience=aud, issuer=ehr.iss)
    assert set(claims) == {"iss", "aud", "exp", "iat", "jti"}  # no `sub` since CDS Hooks 1.0
    assert 0 < claims["exp"] - time.time() <= 300
    assert ehr.sign_jwt(aud, alg=alg) != token  # fresh jti each call


def test_each_ehr_instance_has_its_own_keys() -> None:
    a, b = EhrKeys().jwks(), EhrKeys().jwks()
    assert {k["kid"] for k in a["keys"]}.isdisjoint({k["kid"] for k in b["keys"]})
    assert {k["alg"] for k in a["keys"]} == {"ES384", "RS384"}


def test_prefetch_templates_are_rendered_like_an_ehr_does() -> None:
    context = {"patientId": "p-1", "encounterId": "e 1", "userId": "PractitionerRole/r-9", "draftOrders": {}}
    assert render_template("Procedure?patient={{context.patientId}}", context) == "Procedure?patient=p-1"
    assert render_template("Encounter/{{context.encounterId}}", context) == "Encounter/e%201"
    assert render_template("PractitionerRole/{{userPractitionerRoleId}}", context) == "PractitionerRole/r-9"
    assert render_template("Practitioner/{{userPractitionerId}}", context) is None
    assert render_template("X?y={{context.draftOrders}}", context) is None


def test_prefetch_modes_have_the_shapes_cds_hooks_allows(env: Any) -> None:
    visit = env.data.visit("medicaid2-2")
    service = env.ehr.service("patient-view")
    context = env.ehr.patient_view_context(visit)
    keys = sorted(service["prefetch"])
    full = env.ehr.build_prefetch(service, context, "full")
    assert sorted(full) == keys
    assert full["patient"]["id"] == visit.patient_id
    partial = env.ehr.build_prefetch(service, context, "partial")
    assert sorted(partial) == keys[::2] and len(partial) < len(keys)
    assert env.ehr.build_prefetch(service, context, "empty") == {}
    assert env.ehr.build_prefetch(service, context, "absent") is None
    oo = env.ehr.build_prefetch(service, context, "operation-outcome")
    assert {v["resourceType"] for v in oo.values()} == {"OperationOutcome"}
    epic = env.ehr.build_prefetch(service, context, "epic-no-results")
    searches = [k for k in keys if "?" in service["prefetch"][k]]
    assert searches and all(epic[k]["entry"][0]["search"]["mode"] == "outcome" for k in searches)
    no_encounter = {k: v for k, v in context.items() if k != "encounterId"}
    rendered = env.ehr.build_prefetch(service, no_encounter, "full")
    assert all("{{context.encounterId}}" not in service["prefetch"][k] for k in rendered)
