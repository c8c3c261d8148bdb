"""The demo EHR shows the reason behind a 412 (issue 14: "failures look like silence").

A real demo stack (Node FHIR server, CDS service, demo EHR) on loopback, except that the clients
file the service trusts does not list the demo's FHIR server: the service may not contact it, the
EHR leaves prefetch to the service, so every hook call is answered 412 with an OperationOutcome.
Chromium opens a visit and must show, in plain words, that the visit was not checked, why, and
the service's own diagnostics; never "No cards: nothing to flag"."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from browser_stack import ARTIFACTS, chromium, demo_stack


def _trust_another_fhir_server(env: Any) -> None:
    """The clients file the service will trust names some other EHR's FHIR server, not the demo's."""
    clients = yaml.safe_load(env.clients_file.read_text(encoding="utf-8"))
    assert clients["clients"][0]["fhir_servers"] == [env.fhir_base]
    clients["clients"][0]["fhir_servers"] = ["https://fhir.another-ehr.example/r4"]  # not the demo's server
    env.clients_file.write_text(yaml.safe_dump(clients), encoding="utf-8")


@pytest.fixture(scope="module")
def refusing_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with demo_stack(tmp_path_factory.mktemp("demo-412"), prepare=_trust_another_fhir_server) as started:
        yield started


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_shows_why_the_service_answered_412(refusing_stack) -> None:
    env = refusing_stack["env"]
    visit = env.dataset.visits(verdict="needs-documentation")[0]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 400, "height": 900})
        page.goto(f"{refusing_stack['url']}/demo/ehr/visit/{visit.encounter_id}")
        alert = page.locator("p.notice[role=alert]")
        alert.wait_for()
        text = " ".join(alert.all_inner_texts())
        assert "The visit was not checked" in text
        assert "could not get the records it needs" in text and "(HTTP 412)" in text
        # the service's own reason (its OperationOutcome diagnostics), not only the status number
        assert "The service said: FHIR data needed and neither prefetched nor fetchable" in text
        assert page.locator("article.card").count() == 0
        assert page.locator("p.no-cards").count() == 0  # a refusal is never "nothing to flag"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo-ehr-412-400px.png"), full_page=True)
