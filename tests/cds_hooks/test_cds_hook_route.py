"""The service call answered as plain ASGI (``cds_hooks.hook_route``) answers exactly what FastAPI's
own route answers: status, content type, challenge and body, for every status a call can get; and
the NUL/surrogate check that ``parse_json`` now skips on clean bytes still refuses every way a body
can carry one."""
from __future__ import annotations

import json
import re

import pytest

from cds_hooks.errors import BadRequestError
from cds_hooks.hook_route import HookRoute
from cds_hooks.routes import get_runtime, parse_json

OS = "/cds-services/order-sign-97530"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _no_fastapi_route() -> None:
    raise AssertionError("a hook call reached FastAPI's route: the lean route did not answer it")


def _answer(response):
    """What a client sees, with the random card, suggestion and evaluation ids made equal."""
    return (response.status_code, response.headers.get("content-type"), response.headers.get("www-authenticate"),
            UUID.sub("ID", response.content.decode()))


@pytest.fixture
def pair(make_harness):
    """(lean, fastapi): the service as it runs, and the same service without the lean route."""
    lean = make_harness()
    lean.client.app.dependency_overrides[get_runtime] = _no_fastapi_route  # any hook call FastAPI routes fails
    plain = make_harness()
    app = plain.client.app
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HookRoute]
    assert len(app.user_middleware) == len(lean.client.app.user_middleware) - 1
    return lean, plain


def _cases(fx, mint, url):
    cards = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    unfetchable = fx.order_sign_request(full_prefetch=False)
    unfetchable["fhirServer"] = "https://not-registered.test/fhir"
    return {
        "200 with a card": (OS, cards, "auto"),
        "200 without a card": (OS, fx.order_sign_request(), "auto"),
        "400 not JSON": (OS, b"{not json", "auto"),
        "400 a lone surrogate": (OS, b'{"hook": "order-sign", "hookInstance": "\\ud800"}', "auto"),
        "400 a field missing": (OS, {"hook": "order-sign", "context": {}}, "auto"),
        "401 no token": (OS, cards, None),
        "401 token for another URL": (OS, cards, mint(url("/cds-services/claim-sign-97530"))),
        "404 unknown service": ("/cds-services/nope", cards, "auto"),
        "412 data not fetchable": (OS, unfetchable, "auto"),
    }


def test_the_lean_route_answers_what_the_fastapi_route_answers(pair, fx, mint):
    lean, plain = pair
    for name, (path, body, token) in _cases(fx, mint, lean.url).items():
        a = _answer(lean.post(path, body, token=token))
        b = _answer(plain.post(path, body, token=token))
        assert a == b, name
        assert a[0] == int(name[:3]), name


def test_other_calls_still_go_through_fastapi(pair, fx):
    lean, _ = pair
    del lean.client.app.dependency_overrides[get_runtime]
    assert lean.client.get(OS).status_code == 405  # only POST is the hook call
    assert lean.post(OS + "/feedback", {"feedback": []}).status_code == 400  # FastAPI's feedback route
    assert lean.client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("body", [
    b'{"a": "\\u0000"}',
    b'{"\\u0000": 1}',
    b'{"a": "\\ud800"}',
    b'{"a": "x\\uDFFF"}',
    '{"a": "\ud800"}'.encode("utf-8", "surrogatepass"),  # raw bytes json.loads decodes with surrogatepass
    '{"a": "\ud800"}'.encode("utf-16-le", "surrogatepass"),
    '{"a": "\\u0000"}'.encode("utf-32"),  # the escape's bytes interleaved with NULs
], ids=["nul-escape", "nul-in-key", "high-escape", "low-escape-upper-hex", "utf8-surrogate-bytes",
        "utf16-lone-surrogate", "utf32-nul-escape"])
def test_every_way_a_body_carries_a_nul_or_lone_surrogate_is_refused(body):
    with pytest.raises(BadRequestError, match="NUL characters and lone surrogates"):
        parse_json(body)


@pytest.mark.parametrize(("body", "value"), [
    (b'{"a": "\\ud83d\\ude00"}', "\U0001f600"),  # a valid pair is one character
    (b'{"a": "\\\\u0000"}', "\\u0000"),  # an escaped backslash, then text
    ('{"a": "\ud55c"}'.encode(), "\ud55c"),  # Hangul: UTF-8 lead byte 0xED, not a surrogate
], ids=["surrogate-pair", "escaped-backslash", "hangul"])
def test_text_that_only_looks_suspect_is_accepted(body, value):
    assert parse_json(body) == {"a": value}
    assert json.loads(body) == {"a": value}
