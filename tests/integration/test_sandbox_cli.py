"""``cds97530 sandbox``: the rehearsal an EHR admin runs, end to end, as a user would call it."""
from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cds97530.cli import main


def test_sandbox_fires_the_hooks_and_applies_a_suggestion(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    env.require_local()  # starts its own local FHIR server: needs node, not an external one
    assert main(["sandbox", "--visits", "4", "--payer", "commercial", "--apply"]) == 0
    out = capsys.readouterr().out
    assert "clients entry" in out and "/.well-known/jwks.json" in out
    for hook in ("order-sign", "claim", "patient-view"):
        assert out.count(f" {hook} ") >= 4, out
    assert "HTTP 200" in out and "HTTP 500" not in out
    assert "applied '" in out and "feedback HTTP 200" in out


def test_sandbox_against_an_external_fhir_server_cleans_up(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """--fhir-base-url: the data goes in under a fresh tag and nothing with that tag is left after."""
    token = env.ehr_token or ""
    args = ["sandbox", "--visits", "1", "--hooks", "patient-view", "--prefetch", "partial", "--json",
            "--fhir-base-url", env.fhir_base]
    if token:
        args += ["--fhir-token", token]
    assert main(args) == 0
    out = capsys.readouterr().out
    tag = next(line.split(" tag ")[1].strip() for line in out.splitlines() if line.startswith("synthetic data"))
    calls = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert calls and all(c["status"] == 200 for c in calls)
    headers = {"Accept": "application/fhir+json", **({"Authorization": f"Bearer {token}"} if token else {})}
    for rtype in ("Patient", "Claim", "DocumentReference", "Procedure", "Encounter"):
        left = httpx.get(f"{env.fhir_base}/{rtype}", params={"_tag": tag}, headers=headers, timeout=30).json()
        assert not left.get("entry"), f"{rtype} with tag {tag} left behind"


def test_sandbox_rejects_unknown_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--hooks", "order-select"]) == 2
    assert "unknown hook" in capsys.readouterr().err
