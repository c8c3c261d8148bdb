"""A bounded cache of hook outcomes (cards and stored summary) for a hook fired again on the same
inputs: EHRs re-fire order-sign on every sign attempt and patient-view on every chart open.

The key is a SHA-256 of everything the outcome depends on: the bundle the evaluation reads, the
lines it judges, the card options and the resources the suggestions change, the rules directory
and the ruleset's version. A hit is answered without a worker; its cards get fresh card and
suggestion uuids and the new evaluation id (so feedback and the store still see one card per
answer). Entries hold card text (which quotes the note) in this process's memory only, at most
``size`` of them (least recently used dropped first); ``size=0`` turns the cache off.

    cache = HookCache(256)
    key = cache.key(bundle, job, ruleset_version)
    outcome = cache.get(key, evaluation_id) or compute()
    cache.put(key, outcome, evaluation_id)
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio

from cds_hooks.cards import BuiltCard
from cds_hooks.hook_job import HookOutcome


@dataclass(frozen=True, slots=True)
class _Entry:
    cards_json: str  # the cards as answered, ids included (a copy: the caller may change its cards)
    meta: tuple[tuple[str, str, tuple[str, ...], str, str | None, tuple[tuple[str, str], ...]], ...]
    """Per card: uuid, rule, rules, indicator, line reference, (suggestion uuid, kind) pairs."""
    summary_json: str
    encounter_ref: str | None
    evaluation_id: str


_HASH_IN_THREAD = 256 * 1024
"""Pickled inputs at least this large are hashed off the event loop (a thread hop costs ~0.1 ms)."""


class HookCache:
    def __init__(self, size: int) -> None:
        self.size = max(0, int(size))
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, bundle: dict[str, Any], job: dict[str, Any], ruleset_version: str) -> bytes | None:
        """The inputs' digest (the call's own evaluation id left out), or None when off."""
        data = self._inputs(bundle, job, ruleset_version)
        return None if data is None else hashlib.sha256(data).digest()

    async def key_async(self, bundle: dict[str, Any], job: dict[str, Any], ruleset_version: str) -> bytes | None:
        """``key`` from the event loop: a large input (a note of megabytes) is hashed in a thread,
        which hashlib runs without the interpreter lock, so the loop goes on answering meanwhile
        (SHA-256 of a 7 MB bundle is ~7 ms)."""
        data = self._inputs(bundle, job, ruleset_version)
        if data is None:
            return None
        if len(data) < _HASH_IN_THREAD:
            return hashlib.sha256(data).digest()
        return await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).digest())

    def _inputs(self, bundle: dict[str, Any], job: dict[str, Any], ruleset_version: str) -> bytes | None:
        if self.size <= 0:
            return None
        inputs = (bundle, {k: v for k, v in job.items() if k != "evaluation_id"}, ruleset_version)
        try:
            return pickle.dumps(inputs, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None

    def get(self, key: bytes | None, evaluation_id: str) -> HookOutcome | None:
        if key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return _reissue(entry, evaluation_id)

    def put(self, key: bytes | None, outcome: HookOutcome, evaluation_id: str) -> None:
        if key is None:
            return
        entry = _Entry(
            cards_json=json.dumps([c.card for c in outcome.cards]),
            meta=tuple((c.card["uuid"], c.rule, tuple(c.rules), c.indicator, c.line_ref,
                        tuple(c.suggestions.items())) for c in outcome.cards),
            summary_json=json.dumps(outcome.summary),
            encounter_ref=outcome.encounter_ref,
            evaluation_id=evaluation_id,
        )
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def _reissue(entry: _Entry, evaluation_id: str) -> HookOutcome:
    """The cached cards with new ids: the evaluation id and every card and suggestion uuid
    (random 122-bit strings, so a note cannot contain one by chance) replaced throughout."""
    ids = {entry.evaluation_id: evaluation_id}
    for card_uuid, *_, suggestions in entry.meta:
        ids[card_uuid] = str(uuid.uuid4())
        for sid, _kind in suggestions:
            ids[sid] = str(uuid.uuid4())
    pattern = re.compile("|".join(re.escape(old) for old in sorted(ids, key=len, reverse=True)))
    cards = json.loads(pattern.sub(lambda m: ids[m.group(0)], entry.cards_json))
    built = [
        BuiltCard(card=card, rule=rule, rules=rules, indicator=indicator, line_ref=line_ref,
                  suggestions={ids[sid]: kind for sid, kind in suggestions})
        for card, (_, rule, rules, indicator, line_ref, suggestions) in zip(cards, entry.meta, strict=True)
    ]
    return HookOutcome(cards=built, summary=json.loads(entry.summary_json), encounter_ref=entry.encounter_ref)
