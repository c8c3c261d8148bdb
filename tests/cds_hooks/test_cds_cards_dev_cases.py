"""Every labelled dev case, sent as a claim hook through the HTTP route with the real engine:
each card is schema-valid, reads in seconds (summary < 140 characters that names the fix, detail
of at most 60 words and three bullets) and carries no machine text (ids, citation tags, HTML
entities, arithmetic strings). Advice is safe: a recode card says nothing about 97530's criteria,
and no card proposes wording for something the note says did not happen."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

CS = "/cds-services/claim-sign-97530"
CASES_DIR = Path(__file__).resolve().parents[3] / "shared" / "cases"
PAYER_DISPLAY = {"medicare": "Medicare Part B", "medicaid": "State Medicaid", "commercial": "Commercial PPO",
                 "wsi": "Workforce Safety & Insurance"}


def _cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("dev.jsonl", "dev2.jsonl"):
        path = CASES_DIR / name
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


CASES = _cases()


def claim_request(fx: Any, case: dict[str, Any]) -> dict[str, Any]:
    """The case as an EHR would send it on the claim hook: a draft Claim with the case's lines,
    the note as a DocumentReference and the payer as Coverage, all prefetched."""
    claim = fx.claim()
    template = claim["item"][0]
    claim["item"] = []
    for seq, line in enumerate(case["lines"], start=1):
        item = json.loads(json.dumps(template))
        item["sequence"] = seq
        item["productOrService"] = {"coding": [{"system": fx.CPT, "code": line["code"]}]}
        item["quantity"] = {"value": line.get("units") or 1}
        item["modifier"] = [{"coding": [{"system": fx.CPT, "code": m}]} for m in line.get("modifiers") or []]
        if not item["modifier"]:
            item.pop("modifier")
        claim["item"].append(item)
    cov = fx.coverage()
    cov["payor"] = [{"display": PAYER_DISPLAY[case["payer"]]}]
    cov["type"] = {"text": PAYER_DISPLAY[case["payer"]]}
    prefetch = {"documents": fx.bundle(fx.document("doc-1", case["note"])), "coverage": fx.bundle(cov),
                "patient": fx.patient(), "encounter": fx.encounter(), "procedures": fx.bundle()}
    context = {"userId": "Practitioner/pt-1", "patientId": "pat-1", "encounterId": "enc-1", "claim": claim}
    return fx.hook_request("org.cds97530.claim-sign", context, prefetch)


MACHINE_TEXT = [
    (re.compile(r"&(?:amp|lt|gt|quot|#\d+);"), "HTML entity"),
    (re.compile(r"\b(?:Claim|Procedure|ServiceRequest|DocumentReference|Encounter|Patient|Binary)/[\w.-]+"), "FHIR id"),
    (re.compile(r"\[(?:P|S|U)(?:-[A-Za-z]+)?\]"), "citation tag"),
    (re.compile(r"->|→ \d|\bCF \$|\bMPPR\b|\bGPCI\b|\bunit\(s\)"), "arithmetic string"),
    (re.compile(r"\b(?:OIG|BPM|LCD|NCCI|MUE)\b|§|\bch\. ?\d"), "citation"),
    (re.compile(r"\b97530/|\bbilling/|\bcriterion/|\b[a-z]+-[a-z]+-[a-z]+\b"), "rule id"),
]


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9$][\w$'.,/%-]*", text))


def check_card(card: dict[str, Any]) -> list[str]:
    """The problems of one card (empty when it passes every bar)."""
    problems = []
    summary, detail = card["summary"], card.get("detail", "")
    if len(summary) >= 140:
        problems.append(f"summary is {len(summary)} characters")
    if words(detail) > 60:
        problems.append(f"detail is {words(detail)} words")
    bullets = [ln for ln in detail.splitlines() if re.match(r"\s*(?:[-*+]|\d+\.)\s", ln)]
    if len(bullets) > 3:
        problems.append(f"{len(bullets)} bullets")
    for text, where in ((summary, "summary"), (detail, "detail")):
        for pattern, what in MACHINE_TEXT:
            # the note's own words in a quote may look like anything but an entity
            own = text if what == "HTML entity" else re.sub(r"“[^”]*”", "“”", text)
            found = pattern.search(own)
            if found:
                problems.append(f"{what} in {where}: {found.group(0)!r}")
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_dev_case_cards_are_short_plain_and_safe(harness, schema, fx, case):
    response = harness.post(CS, claim_request(fx, case))
    assert response.status_code == 200, response.text
    body = response.json()
    schema("response", body)
    for card in body["cards"]:
        assert not check_card(card), (check_card(card), card["summary"], card.get("detail"))
        summary, detail = card["summary"], card.get("detail", "")
        assert card["indicator"] in ("info", "warning")
        # the summary names the fix: a code to bill, units to bill, or what to document
        assert re.search(r"\b(bill|change|document|add|review|check|recode|remove)\b", summary, re.I), summary
        recode = [s for s in card.get("suggestions", []) if "Change" in s["label"]]
        if recode:
            # a recode card recommends the documented code and says nothing about 97530's criteria
            own_words = re.sub(r"“[^”]*”", "", detail).lower()  # the note's quotes are the note's words
            for term in ("goal", "skilled", "cue", "measurable", "response", "functional task"):
                assert term not in own_words, (term, detail)
        assert "wording to add" not in detail.lower()
