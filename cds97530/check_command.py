"""`cds97530 check`: evaluate files and print JSON Lines or a readable report.

Exit 0 when every line is supported and clean, 1 when any line needs attention, 2 when an input
cannot be used (one line on stderr naming the file and the problem; the other files still run).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 32 * 1024 * 1024


def run_check(args: argparse.Namespace) -> int:
    from plugin import FhirInputError, PluginError, RuleSetError, evaluate_note, evaluate_resources, load_ruleset
    from plugin.billing import payer_ids

    try:
        ruleset = load_ruleset(getattr(args, "rules", None))
    except RuleSetError as exc:
        print(f"cds97530: ruleset: {exc}", file=sys.stderr)
        return 2
    if args.payer is not None and args.payer not in payer_ids(ruleset):
        print(f"cds97530: unknown payer {args.payer!r} (known: {', '.join(payer_ids(ruleset))})", file=sys.stderr)
        return 2
    evaluate_note = functools.partial(evaluate_note, ruleset=ruleset)
    evaluate_resources = functools.partial(evaluate_resources, ruleset=ruleset)
    worst = 0
    for name in args.files:
        try:
            evaluation = _evaluate_file(Path(name), args, evaluate_note, evaluate_resources)
        except (FhirInputError, PluginError, _InputError) as exc:
            print(f"cds97530: {name}: {exc}", file=sys.stderr)
            worst = 2
            continue
        if args.format == "json":
            print(json.dumps(_json_view(name, evaluation, locality=getattr(args, "locality", None), ruleset=ruleset),
                             ensure_ascii=False, separators=(",", ":")))
        else:
            from plugin.text_report import render

            print(render(name, evaluation, locality=getattr(args, "locality", None), ruleset=ruleset))
        if evaluation.needs_attention and worst < 1:
            worst = 1
    return worst


class _InputError(ValueError):
    pass


def _evaluate_file(path: Path, args: argparse.Namespace, evaluate_note: Any, evaluate_resources: Any) -> Any:
    from plugin.note_file import read_input  # what the bytes are: the library's call (NoteFileError)

    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise _InputError(f"file is {size // (1024 * 1024)} MB, over the {MAX_INPUT_BYTES // (1024 * 1024)} MB limit")
        raw = path.read_bytes()
    except OSError as exc:
        raise _InputError(f"cannot read the file ({exc.strerror or type(exc).__name__})") from exc
    kind, value = read_input(raw)
    if kind == "fhir":
        return evaluate_resources(value, payer=args.payer)
    text = value
    return evaluate_note(
        text, code=args.code, units=args.units, minutes=args.minutes, payer=args.payer,
        modifiers=tuple(m.upper() for m in args.modifier), performer_role=args.role, note_id=path.name,
        lines=getattr(args, "line", None) or None,
    )


def _json_view(name: str, evaluation: Any, *, locality: str | None = None, ruleset: Any = None) -> dict[str, Any]:
    """The CLI contract: {"input", "lines": [{"code","verdict","suggested_code","billed_units","supported_units","findings"}]} + more.

    Each line also carries ``status`` (documentation and billing side by side, the words the card
    and the page use) and ``fee``/``suggested_fee`` priced for the payer from one year (``fees``
    says which year and basis, or why there is no estimate for this payer)."""
    from plugin.billing.fees import visit_fees
    from plugin.status import line_status

    fees = visit_fees(evaluation, locality=locality, ruleset=ruleset)  # the --rules tables and payer profiles
    data = evaluation.to_dict(include_text=True)
    data.pop("notes", None)
    lines = []
    for line, source, priced in zip(data["lines"], evaluation.lines, fees.lines, strict=True):
        ordered = {k: line.get(k) for k in ("code", "verdict", "suggested_code", "billed_units", "supported_units", "findings")}
        ordered["status"] = line_status(source).to_dict()
        ordered.update({k: v for k, v in line.items() if k not in ordered})
        ordered["fee"] = asdict(priced.billed) if priced.billed is not None else None
        ordered["suggested_fee"] = (asdict(priced.supported) if source.suggested_code and priced.supported is not None
                                    else None)
        lines.append(ordered)
    out: dict[str, Any] = {"input": name, "lines": lines}
    out.update({k: v for k, v in data.items() if k != "lines"})
    out["fees"] = {k: v for k, v in fees.to_dict().items() if k != "lines"}
    return out
