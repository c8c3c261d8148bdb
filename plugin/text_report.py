"""A readable report of one evaluation, for a person at a terminal (`cds97530 check --format text`).

Each line leads with the same two findings the card and the review page show (documentation
support and billing side by side, ``plugin.status``), so the terminal never prints "supported"
beside an over-billing error. Fees come from ``visit_fees``: one year per report, per payer.
"""
from __future__ import annotations

from typing import Any

from plugin.billing.fees import visit_fees
from plugin.status import line_status

_MARK = {"met": "[x]", "missing": "[ ]"}


def render(name: str, evaluation: Any, *, locality: str | None = None, ruleset: Any = None) -> str:
    out = [f"== {name}", f"payer: {evaluation.payer_label} ({evaluation.unit_method}); performer: {evaluation.performer_role or 'unknown'}"]
    for issue in evaluation.input_issues:
        out.append(f"! not checked: {issue}")
    fees = visit_fees(evaluation, locality=locality, ruleset=ruleset)
    for line, line_fees in zip(evaluation.lines, fees.lines, strict=True):
        out.append("")
        out += _line_findings(line)
        if fees.available:
            out.append(_fee_row(line, line_fees, fees.year))
    out.append("")
    if fees.available:
        out.append(f"fees: estimates, {fees.basis}" + (f". {fees.reason}" if fees.reason else ""))
    else:
        out.append(f"fees: {fees.reason}")
    return "\n".join(out)


def _line_findings(line: Any) -> list[str]:
    """One line's head (both findings, and the code to bill or review), then what the note documents when
    recoded, else each criterion with its quote; the units arithmetic and the billing findings."""
    status = line_status(line)
    head = f"{line.code} x{line.billed_units}: {status.text}"
    if line.suggested_code:
        close = line.documented is not None and getattr(line.documented, "close", False)
        head += f" -> review: {line.suggested_code} or {line.code} (a close call)" if close else f" -> bill {line.suggested_code}"
    out = [head]
    if line.documented is not None and line.suggested_code:
        quotes = "; ".join(f'"{e.text}"' for e in line.documented.evidence[:3])
        doc = line.documented
        how = (f" (decided by {doc.decided_by.replace('-', ' ')}; next: {doc.runner_up}, margin {doc.margin})"
               if getattr(doc, "runner_up", None) else "")
        out.append(f"   documents {doc.code}{how}: {quotes}")
    for f in line.findings if not line.suggested_code else ():
        quote = f' — "{f.evidence[0].text}"' if f.evidence else ""
        out.append(f"   {_MARK.get(f.status.value, '[?]')} {f.criterion}: {f.message}{quote}")
        if f.status.value == "missing" and f.example:
            out.append(f"       example of good documentation for the next visit: {f.example}")
    if line.units is not None and line.units.arithmetic:
        out.append(f"   units: {line.units.arithmetic}")
    out += [f"   ({b.severity.value}) {b.rule}: {b.message}" for b in line.billing]
    return out


def _fee_row(line: Any, line_fees: Any, year: int | None) -> str:
    """The line's fee as billed and, when it differs, as supported; or that the year has no RVUs for it."""
    if line_fees.billed is None:
        return f"   fee: no CY{year} RVUs for {line.code}"
    row = f"   fee as billed: ${line_fees.billed.amount:.2f}"
    if line_fees.supported is not None and line_fees.supported is not line_fees.billed:
        row += f"; as supported ({line_fees.supported.code} x{line_fees.supported.units}): ${line_fees.supported.amount:.2f}"
    return row
