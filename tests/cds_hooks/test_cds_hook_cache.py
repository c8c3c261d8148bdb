"""The hook-outcome cache: a hook fired again on identical inputs is answered with the same cards
under new ids (each answer stored, feedback on each accepted); any change to the inputs misses."""
from __future__ import annotations

import copy
import json

import anyio

from cds_hooks.cards import BuiltCard
from cds_hooks.hook_cache import HookCache
from cds_hooks.hook_job import HookOutcome

OS = "/cds-services/order-sign-97530"
FB = OS + "/feedback"


def _without_ids(card: dict, ids: set[str]) -> str:
    text = json.dumps(card, sort_keys=True)
    for old in ids:
        text = text.replace(old, "ID")
    return text


def test_a_re_fired_hook_gets_the_same_cards_with_new_ids_and_both_are_stored(harness, fx, schema):
    body = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    first = harness.post(OS, body)
    again = harness.post(OS, dict(copy.deepcopy(body), hookInstance="refired-1"))  # new jti too
    cache = harness.client.app.state.cds.cache
    assert cache.hits == 1 and cache.misses == 1
    (a,), (b,) = first.json()["cards"], again.json()["cards"]
    schema("response", again.json())
    assert a["uuid"] != b["uuid"]
    assert {s["uuid"] for s in a["suggestions"]}.isdisjoint({s["uuid"] for s in b["suggestions"]})
    eval_a, eval_b = (json.loads(c["links"][0]["appContext"])["evaluationId"] for c in (a, b))
    assert eval_a != eval_b  # the SMART link names each answer's own evaluation
    ids_a = {a["uuid"], eval_a, *(s["uuid"] for s in a["suggestions"])}
    ids_b = {b["uuid"], eval_b, *(s["uuid"] for s in b["suggestions"])}
    assert _without_ids(a, ids_a) == _without_ids(b, ids_b)  # the same advice, word for word
    for card in (a, b):  # each answer's card was stored: feedback on either is accepted
        item = {"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-20T10:01:02Z"}
        assert harness.post(FB, {"feedback": [item]}).json() == {"stored": 1, "duplicates": 0}


def test_a_different_note_or_order_is_not_answered_from_the_cache(harness, fx):
    harness.post(OS, fx.order_sign_request(fx.NOTE_EXERCISE_ONLY))
    other_note = harness.post(OS, fx.order_sign_request(fx.NOTE_SUPPORTED))
    other_units = harness.post(OS, fx.order_sign_request(fx.NOTE_EXERCISE_ONLY, units=3))
    cache = harness.client.app.state.cds.cache
    assert cache.hits == 0 and cache.misses == 3
    assert other_note.json()["cards"] == []  # the supported note's own answer, not the first one's card
    assert other_units.status_code == 200


def test_the_cache_can_be_turned_off(make_harness, fx):
    harness = make_harness(evaluation_cache_size=0)
    body = fx.order_sign_request(fx.NOTE_EXERCISE_ONLY)
    harness.post(OS, body)
    harness.post(OS, dict(body, hookInstance="again"))
    runtime = harness.client.app.state.cds
    assert runtime.cache is not None and runtime.cache.hits == 0 and runtime.cache.misses == 0


def _outcome(tag: str) -> HookOutcome:
    card = {"uuid": f"{tag}-card", "summary": "s", "detail": f"quote {tag}",
            "suggestions": [{"uuid": f"{tag}-sug", "label": "x"}],
            "links": [{"appContext": json.dumps({"evaluationId": f"{tag}-eval"})}]}
    return HookOutcome(cards=[BuiltCard(card=card, rule="r", rules=("r",), indicator="info", line_ref=None,
                                        suggestions={f"{tag}-sug": "units"})], summary={"lines": []})


def test_the_cache_is_bounded_least_recently_used_first_and_reissues_every_id():
    cache = HookCache(2)
    keys = [cache.key({"n": i}, {"evaluation_id": "ignored"}, "v1") for i in range(3)]
    assert keys[0] == cache.key({"n": 0}, {"evaluation_id": "other"}, "v1")  # the call's own id is not an input
    assert keys[0] != cache.key({"n": 0}, {"evaluation_id": "x"}, "v2")  # a new ruleset version misses
    for i, key in enumerate(keys[:2]):
        cache.put(key, _outcome(f"e{i}"), f"e{i}-eval")
    assert cache.get(keys[0], "new-eval") is not None  # e0 used: e1 is now the least recent
    cache.put(keys[2], _outcome("e2"), "e2-eval")
    assert cache.get(keys[1], "x") is None and cache.get(keys[2], "x") is not None
    got = cache.get(keys[0], "fresh-eval")
    (built,) = got.cards
    text = json.dumps(built.card)
    assert "e0-card" not in text and "e0-sug" not in text and "e0-eval" not in text and "fresh-eval" in text
    assert list(built.suggestions) == [built.card["suggestions"][0]["uuid"]]
    assert built.card["detail"] == "quote e0"
    built.card["detail"] = "changed by the caller"  # a caller's change does not reach the cache
    assert cache.get(keys[0], "y").cards[0].card["detail"] == "quote e0"
    assert HookCache(0).key({"n": 0}, {}, "v1") is None


def test_the_key_from_the_event_loop_is_the_same_key_small_or_large():
    cache = HookCache(4)
    small = {"n": 1}
    large = {"note": "x" * 600_000}  # hashed in a thread
    for bundle in (small, large):
        sync = cache.key(bundle, {"evaluation_id": "a"}, "v1")
        assert sync is not None and anyio.run(cache.key_async, bundle, {"evaluation_id": "b"}, "v1") == sync
    assert anyio.run(cache.key_async, large, {}, "v2") != cache.key(large, {}, "v1")
    assert anyio.run(HookCache(0).key_async, small, {}, "v1") is None
