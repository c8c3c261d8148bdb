"""The `serve` subcommand fails cleanly on bad input; the claim hook definition is complete and its
example request is answered by the claim service."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from importlib import resources

from cds97530.cli import main
from cds_hooks.store import Store


def _hookdef() -> str:
    return resources.files("cds_hooks").joinpath("hookdefs/org.cds97530.claim-sign.md").read_text("utf-8")


def test_serve_with_a_bad_clients_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "clients.yaml"
    bad.write_text("clients:\n  - iss: x\n    typo: 1\n")
    assert main(["serve", "--clients", str(bad), "--database-url", f"sqlite:///{tmp_path}/x.sqlite3"]) == 2
    err = capsys.readouterr().err
    assert "typo" in err and "Traceback" not in err


def test_hook_definition_has_the_spec_sections():
    text = _hookdef()
    for heading in ("## Workflow", "## Context", "## Change Log"):
        assert heading in text
    for field in ("specificationVersion", "hookVersion", "hookMaturity"):
        assert field in text
    rows = re.findall(r"^\| `(\w+)` \| (REQUIRED|OPTIONAL) \| (Yes|No) \|", text, re.M)
    assert {r[0]: r[1:] for r in rows} == {
        "userId": ("REQUIRED", "Yes"), "patientId": ("REQUIRED", "Yes"),
        "encounterId": ("OPTIONAL", "Yes"), "claim": ("REQUIRED", "No"),
    }


def test_hook_definition_example_is_answered(harness, schema):
    example = json.loads(re.search(r"```json\n(.*?)```", _hookdef(), re.S).group(1))
    assert example["hook"] == "org.cds97530.claim-sign"
    example["fhirServer"] = "https://ehr.test/fhir"  # a server registered for the test client
    response = harness.post("/cds-services/claim-sign-97530", example)
    assert response.status_code == 200, response.text
    schema("response", response.json())


def test_expired_jti_may_be_recorded_again(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/j.sqlite3")
    store.create_tables()
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert store.remember_jti("iss", "j", past) is True
    assert store.remember_jti("iss", "j", datetime.now(UTC) + timedelta(minutes=5)) is True
    assert store.remember_jti("iss", "j", datetime.now(UTC) + timedelta(minutes=5)) is False
    assert store.remember_jti("other-iss", "j", datetime.now(UTC) + timedelta(minutes=5)) is True


def test_slow_jwks_is_a_401_not_a_hang(make_harness, mint, fx):
    h = make_harness(jwks_timeout_seconds=0.2)
    h.ehr.delay = 2.0
    context = {"userId": "Practitioner/1", "patientId": "pat-1",
               "draftOrders": fx.bundle(fx.service_request("sr-9", code="97110"), kind="collection")}
    token = mint(h.url("/cds-services/order-sign-97530"), alg="RS384", jku=fx.JKU)
    response = h.post("/cds-services/order-sign-97530", fx.hook_request("order-sign", context), token=token)
    assert response.status_code == 401
