"""The SMART page judges with the configured ruleset and names the rule behind each piece of
evidence (issue 10: "a wrong card must be traceable to the rule that made it").

The page runs the real engine here (no evaluator stub) on the fake FHIR server's visit, once with
the packaged rules and once with an edited copy (SmartSettings.rules_dir, which ``serve`` fills from
``--rules`` / ``CDS97530_RULES_DIR``); the copy's MUE limit for 97530 must show up as a finding."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from plugin import evaluate_note, load_ruleset
from plugin.ruleset import packaged_dir
from sandbox.authserver import DemoClient, LaunchContext, SmartAuthServer, auth_router
from smart_app.app import create_app
from smart_app.sessions import SessionStore
from smart_app.settings import SmartSettings
from smart_app.view import line_views

APP_BASE = "http://127.0.0.1:8000/smart"
NOTE = (
    "Ther act 25 min: sit-to-stand transfers from low chair x10 and lifting 10 lb box floor to counter x8 "
    "with VC for hip hinge and CGA; pt needed fewer cues by set 3.\n"
    "LTG: independent transfers at home.\n"
)


def test_each_quote_carries_the_rule_ids_that_produced_it() -> None:
    rs = load_ruleset()
    evaluation = evaluate_note(NOTE, units=2, payer="medicare")
    (view,) = line_views(evaluation)
    by_key = {c.key: c for c in view.criteria}
    activity = by_key["dynamic-activity"]
    assert activity.met and activity.evidence
    assert [q.text for q in activity.evidence] == list(activity.quotes)
    ids = {r for q in activity.evidence for r in q.rules}
    assert ids and all(r.startswith("ta.") for r in ids), ids
    for rule_id in ids:  # every id names an entry of the lexicon the page evaluated with
        assert rs.lexicon.rule(rule_id).id == rule_id
    assert any(q.rules for q in by_key["skilled-intervention"].evidence)


def test_a_recode_lists_the_quotes_and_rules_that_read_as_the_other_code() -> None:
    evaluation = evaluate_note("Gait training 25 min: ambulated 300 ft with rolling walker, VC for step length; "
                               "stair training 4 steps with rail and CGA.\nLTG: community ambulation.\n",
                               units=2, payer="medicare")
    (view,) = line_views(evaluation)
    assert view.line.suggested_code == "97116"
    # the quotes that decided the recode are listed (with rule ids where the engine gives them: the
    # documented-service evidence of classify.py carries none today, headings never do)
    assert [q.text for q in view.documented_evidence] == ["Gait training 25 min", "stair training 4 steps with rail and CGA."]
    assert all(q.rules == tuple(dict.fromkeys(r for ev in view.line.documented.evidence for r in ev.rules
                                              if ev.text in q.text)) for q in view.documented_evidence)


class _Routed(httpx.AsyncBaseTransport):
    """Token exchange over real HTTP to the live authorization server; FHIR reads to the fake."""

    def __init__(self, auth_origin: str, fhir: httpx.AsyncBaseTransport) -> None:
        self._auth_origin = auth_origin
        self._real = httpx.AsyncHTTPTransport()
        self._fhir = fhir

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self._auth_origin + "/"):
            return await self._real.handle_async_request(request)
        return await self._fhir.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest.fixture
def page_with(live_server: Any, asgi_client: Any, smart_kit: Any):
    """``page_with(rules_dir)``: the evaluation page's HTML after an EHR launch, evaluated by the engine."""

    def render(rules_dir: Path | None) -> str:
        auth = SmartAuthServer(fhir_base=smart_kit.FAKE_ISS, public_base="http://placeholder",
                               clients=[DemoClient("cds97530-smart", (f"{APP_BASE}/callback",))])
        auth_app = FastAPI()
        auth_app.include_router(auth_router(auth), prefix="/auth")
        live = live_server(auth_app)
        auth.public_base = live.url + "/auth"
        fake = smart_kit.FakeFhir(well_known=auth.smart_configuration())
        auth.set_token_sink(lambda token, _, __: setattr(fake, "token", token))
        http = httpx.AsyncClient(transport=_Routed(live.url, httpx.MockTransport(fake)))
        app = asgi_client(create_app(
            SmartSettings(base_url=APP_BASE, allowed_issuers=[smart_kit.FAKE_ISS], rules_dir=rules_dir),
            http, sessions=SessionStore(),
        ), base_url="http://127.0.0.1:8000")
        first = app.get("/launch", params={"iss": smart_kit.FAKE_ISS,
                                           "launch": auth.register_launch(LaunchContext("p1", "e1"))})
        assert first.status_code == 302, first.text
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            authorize = browser.get(first.headers["location"])
        assert authorize.status_code == 302, authorize.text
        back = app.get("/callback?" + httpx.URL(authorize.headers["location"]).query.decode())
        assert back.status_code == 303, back.text
        page = app.get("/evaluation")
        app._loop.run_until_complete(http.aclose())  # its pool holds a connection to the live auth server
        assert page.status_code == 200, page.text
        return page.text

    return render


def test_the_page_evaluates_with_the_configured_ruleset_and_shows_rule_ids(page_with, tmp_path) -> None:
    packaged = page_with(None)
    assert 'data-rule="mue-exceeded"' not in packaged
    # rule ids beside the quotes they produced (data-rules on each quote, shown as text)
    rules = set(re.findall(r'<li data-rules="([^"]+)">', packaged))
    assert rules and any(r.startswith("ta.") for ids in rules for r in ids.split()), rules

    copy = tmp_path / "rules"
    shutil.copytree(packaged_dir(), copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    mue = copy / "mue.yaml"
    text = mue.read_text(encoding="utf-8")
    assert '{code: "97530", units: 6,' in text
    mue.write_text(text.replace('{code: "97530", units: 6,', '{code: "97530", units: 1,'), encoding="utf-8")
    edited = page_with(copy)
    assert 'data-rule="mue-exceeded"' in edited and "2 billed &gt; MUE 1" in edited


def test_serve_gives_the_page_the_services_ruleset(tmp_path) -> None:
    from cds97530.service_commands import smart_settings_for
    from cds_hooks.settings import CdsSettings

    service = CdsSettings(public_url="http://127.0.0.1:9", rules_dir=tmp_path)
    assert smart_settings_for(service, SmartSettings()).rules_dir == tmp_path
    assert smart_settings_for(CdsSettings(public_url="http://127.0.0.1:9"), SmartSettings()).rules_dir is None
    own = tmp_path / "page-rules"  # SMART_RULES_DIR set on purpose wins
    assert smart_settings_for(service, SmartSettings(rules_dir=own)).rules_dir == own
