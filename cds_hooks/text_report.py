"""A readable report of one evaluation, for a person at a terminal (`cds97530 check --format text`)."""
from __future__ import annotations

from typing import Any

_MARK = {"met": "[x]", "missing": "[ ]"}


def render(name: str, evaluation: Any) -> str:
    out = [f"== {name}", f"payer: {evaluation.payer_label} ({evaluation.unit_method}); performer: {evaluation.performer_role or 'unknown'}"]
    for issue in evaluation.input_issues:
        out.append(f"! {issue}")
    for line in evaluation.lines:
        head = f"{line.code} x{line.billed_units} billed, {line.supported_units} supported: {line.verdict.value}"
        if line.suggested_code:
            head += f" -> {line.suggested_code}"
        out.append("")
        out.append(head)
        if line.documented is not None and line.suggested_code:
            quotes = "; ".join(f'"{e.text}"' for e in line.documented.evidence[:3])
            out.append(f"   documents {line.documented.code}: {quotes}")
        for f in line.findings:
            quote = f' — "{f.evidence[0].text}"' if f.evidence else ""
            out.append(f"   {_MARK.get(f.status.value, '[?]')} {f.criterion}: {f.message}{quote}")
            if f.status.value == "missing" and f.example:
                out.append(f"       e.g. {f.example}")
        if line.units is not None and line.units.arithmetic:
            out.append(f"   units: {line.units.arithmetic}")
        for b in line.billing:
            out.append(f"   ({b.severity.value}) {b.rule}: {b.message}")
        if line.fee is not None:
            out.append(f"   fee: ${line.fee.amount:.2f} — {line.fee.label}")
        if line.suggested_fee is not None:
            out.append(f"   as {line.suggested_fee.code}: ${line.suggested_fee.amount:.2f}")
    return "\n".join(out)
