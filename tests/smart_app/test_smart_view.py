"""The page's view model: evidence highlighting and line views (pure functions)."""
from __future__ import annotations

from dataclasses import replace

from plugin.model import Evidence, Finding, NoteText, Status, Verdict
from smart_app.view import highlight, line_views


def test_highlight_plain_text_is_one_piece() -> None:
    pieces = highlight("no evidence here", [])
    assert [(p.text, p.marks) for p in pieces] == [("no evidence here", ())]


def test_highlight_overlapping_spans_cut_at_every_boundary() -> None:
    pieces = highlight("abcdefgh", [(1, 4, "x"), (3, 6, "y")])
    assert [(p.text, p.marks) for p in pieces] == [
        ("a", ()), ("bc", ("x",)), ("d", ("x", "y")), ("ef", ("y",)), ("gh", ()),
    ]
    assert "".join(p.text for p in pieces) == "abcdefgh"


def test_highlight_drops_spans_outside_the_text() -> None:
    pieces = highlight("abc", [(2, 10, "x"), (-1, 2, "y"), (1, 1, "z")])
    assert [(p.text, p.marks) for p in pieces] == [("abc", ())]


def test_highlight_merges_adjacent_pieces_with_same_marks() -> None:
    pieces = highlight("abcdef", [(0, 2, "x"), (2, 4, "x")])
    assert [(p.text, p.marks) for p in pieces] == [("abcd", ("x",)), ("ef", ())]


def test_line_view_highlights_each_evidence_where_it_stands(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    (view,) = line_views(evaluation)
    (note,) = view.notes
    text = "".join(p.text for p in note.pieces)
    assert text == smart_kit.NOTE
    marked = {p.text: set(p.marks) for p in note.pieces if p.marks}
    # a three-word goal quote is widened to its clause; longer quotes stay as they are
    assert marked["Pt wants to carry laundry upstairs."] == {"functional-goal"}
    assert any("patient-response" in m and "Completed 3/4 carries without rest" in t for t, m in marked.items())
    # positions are preserved: every marked piece sits at its evidence offset
    offset = 0
    for piece in note.pieces:
        if piece.marks:
            assert smart_kit.NOTE[offset:offset + len(piece.text)] == piece.text
        offset += len(piece.text)
    assert note.highlighted == 6  # 5 finding spans + 1 documented-service span (recode)


def test_evidence_that_does_not_quote_the_note_is_not_highlighted(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    line = evaluation.lines[0]
    bad = Finding("dynamic-activity", Status.MET, "x", (Evidence(0, 5, "WRONG", "DocumentReference/d1"),))
    evaluation = replace(evaluation, lines=(replace(line, findings=(bad,), documented=None),))
    (view,) = line_views(evaluation)
    assert view.notes[0].highlighted == 0


def test_evidence_goes_to_its_own_note_only(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    other = NoteText("DocumentReference/d2", "carry laundry upstairs (other note)", "text/plain", "Other")
    evaluation = replace(evaluation, notes=(*evaluation.notes, other))
    (view,) = line_views(evaluation)
    assert [n.note_id for n in view.notes] == ["DocumentReference/d1"]


def test_criteria_in_report_order_with_examples_for_missing(smart_kit) -> None:
    (view,) = line_views(smart_kit.crafted_evaluation())
    assert [c.key for c in view.criteria] == [
        "dynamic-activity", "functional-goal", "skilled-intervention", "patient-response", "time-documented",
    ]
    assert view.examples == ()  # a recode line documents another service: no 97530 wording
    assert view.method_label.startswith("CMS") and view.alternative_label.startswith("AMA")
    assert view.verdict_label == "Recode suggested"
    assert view.status.text == ("Documentation: describes 97110, not 97530 · "
                                "Billing: 3 units billed, 2 supported; 1 other billing problem")
    assert view.documentation_tone == "recode" and view.billing_tone == "error"


def test_examples_are_for_what_the_note_could_have_shown_only(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    line = replace(evaluation.lines[0], verdict=Verdict.NEEDS_DOCUMENTATION, suggested_code=None, billing=(),
                   billed_units=2)
    (view,) = line_views(replace(evaluation, lines=(line,)))
    assert [c.key for c in view.examples] == ["skilled-intervention"] and view.denied == ()
    assert view.documentation_tone == "warn" and view.billing_tone == "neutral"
    denying = smart_kit.NOTE.replace("PT cued trunk posture", "no cues or assistance needed")
    (view,) = line_views(replace(evaluation, lines=(line,), notes=(NoteText("DocumentReference/d1", denying),)))
    assert view.denied == ("skilled-intervention",) and view.examples == ()


def test_green_only_when_the_whole_line_is_clean(smart_kit) -> None:
    evaluation = smart_kit.crafted_evaluation()
    met = tuple(replace(f, status=Status.MET) for f in evaluation.lines[0].findings)
    over = replace(evaluation.lines[0], verdict=Verdict.SUPPORTED, suggested_code=None, findings=met)
    (view,) = line_views(replace(evaluation, lines=(over,)))
    assert view.status.documentation == "supported" and view.documentation_tone == "neutral"  # not green above an error
    clean = replace(over, billing=(), billed_units=2)
    (view,) = line_views(replace(evaluation, lines=(clean,)))
    assert view.documentation_tone == "ok" and view.billing_tone == "ok"


def test_highlight_survives_pdf_line_breaks(smart_kit) -> None:
    text = "O: Ther act 24 min: transfers bed to chair to\ncommode x6 with CGA; pt needed 2 VCs.\nTotal timed 24"
    ev = Evidence(20, 60, "transfers bed to chair to commode x6 with CGA", "DocumentReference/d1")  # quoted on one line
    finding = Finding("dynamic-activity", Status.MET, "x", (ev,))
    line = replace(smart_kit.crafted_evaluation().lines[0], findings=(finding,), documented=None)
    evaluation = replace(smart_kit.crafted_evaluation(), lines=(line,), notes=(NoteText("DocumentReference/d1", text),))
    (view,) = line_views(evaluation)
    marked = [p.text for p in view.notes[0].pieces if p.marks]
    assert marked == ["transfers bed to chair to\ncommode x6 with CGA"]


def test_short_quotes_are_widened_to_their_clause() -> None:
    from smart_app.view import clause_of

    text = "Goal: return to work lifting 30 lb boxes.\nO: pt lifted crates x8 with tc at the lumbar spine; fatigue 3/10."
    start = text.index("tc")
    s, e = clause_of(text, start, start + 2)
    assert text[s:e] == "pt lifted crates x8 with tc at the lumbar spine;"
    g = text.index("Goal:")
    s, e = clause_of(text, g, g + 5)
    assert text[s:e] == "Goal: return to work lifting 30 lb boxes."


def test_no_medicare_figure_for_a_payer_without_a_fee_schedule(smart_kit) -> None:
    evaluation = replace(smart_kit.crafted_evaluation(), payer="wsi", payer_label="WSI")
    (view,) = line_views(evaluation)
    assert view.hide_money and view.fees.billed is None
    text = "31 min -> 2 supported; 3 billed; about $25.05 at risk (estimate CY2026)"
    assert view.plain(text) == "31 min -> 2 supported; 3 billed"
    (medicare,) = line_views(smart_kit.crafted_evaluation())
    assert medicare.plain(text) == text and medicare.fees.billed is not None
