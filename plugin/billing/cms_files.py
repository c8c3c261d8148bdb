"""Turn rows of the CMS quarterly NCCI PTP and MUE files into ``ncci_pairs.yaml`` / ``mue.yaml`` documents.

Why here: the packaged tables are partly secondary-source (billing-97530.md §2.2, §2.4); the
billing lead should be able to drop in the CMS file without hand-editing. These functions are
pure: the caller reads the file (``csv.DictReader`` over the practitioner PTP ``.txt``/``.csv``
or the MUE ``.csv``), passes the rows, and writes the returned dict with ``yaml.safe_dump``.

Headers are matched loosely (case-insensitive, by the words CMS uses: "Column 1", "Column 2",
"Effective", "Deletion", "Modifier"; "HCPCS"/"CPT", "MUE Value", "Adjudication Indicator")
because their exact wording has changed between releases. The wording was not checked against
the 2026 files here [U]; a header that cannot be found raises ``RuleSetError``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from plugin.billing.units import is_therapy_code, normalise_code
from plugin.errors import RuleSetError


def _norm(header: str) -> str:
    return re.sub(r"\s+", " ", header.replace("\n", " ")).strip().lower()


def _find(headers: Iterable[str], test: Callable[[str], bool], what: str, file: str) -> str:
    for h in headers:
        if test(_norm(h)):
            return h
    raise RuleSetError(f"no {what} column in the CMS file header", file=file)


def _date(value: str) -> str | None:
    """CMS dates are YYYYMMDD; '*' or blank means none."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) != 8:
        return None
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def _source(citation: str, as_of: str, url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"citation": citation, "as_of": as_of, "confidence": "P"}
    if url:
        out["url"] = url
    return out


def ptp_rows_to_document(
    rows: Iterable[Mapping[str, str]],
    *,
    citation: str,
    as_of: str,
    url: str | None = None,
    keep: Callable[[str, str], bool] | None = None,
    file: str = "CMS PTP file",
) -> dict[str, Any]:
    """An ``ncci_pairs.yaml`` document from practitioner PTP rows.

    Keeps rows whose two codes are both therapy codes (``timed_codes.yaml``) unless ``keep`` says
    otherwise, and drops rows deleted on or before ``as_of``.
    """
    keep = keep or (lambda a, b: is_therapy_code(a) and is_therapy_code(b))
    pairs: list[dict[str, Any]] = []
    cols: tuple[str, str, str, str | None, str | None] | None = None
    for row in rows:
        if cols is None:
            headers = list(row.keys())
            c1 = _find(headers, lambda h: h.startswith("column 1"), "'Column 1'", file)
            c2 = _find(headers, lambda h: h.startswith("column 2"), "'Column 2'", file)
            mod = _find(headers, lambda h: h.startswith("modifier"), "'Modifier' indicator", file)
            eff = next((h for h in headers if "effective" in _norm(h)), None)
            dele = next((h for h in headers if "deletion" in _norm(h)), None)
            cols = (c1, c2, mod, eff, dele)
        c1, c2, mod, eff, dele = cols
        col1, col2 = normalise_code(row.get(c1, "")), normalise_code(row.get(c2, ""))
        if not (re.fullmatch(r"[0-9A-Z]{5}", col1) and re.fullmatch(r"[0-9A-Z]{5}", col2)) or not keep(col1, col2):
            continue
        indicator = (row.get(mod) or "").strip()[:1]
        if indicator not in ("0", "1", "9"):
            raise RuleSetError(f"modifier indicator {row.get(mod)!r} for {col1}/{col2}", file=file)
        deleted = _date(row.get(dele, "")) if dele else None
        if deleted is not None and deleted <= as_of:
            continue
        entry: dict[str, Any] = {
            "column1": col1,
            "column2": col2,
            "indicator": int(indicator),
            "confidence": "P",
            "source": citation,
        }
        effective = _date(row.get(eff, "")) if eff else None
        if effective:
            entry["effective"] = effective
        if deleted:
            entry["deleted"] = deleted
        pairs.append(entry)
    return {"source": _source(citation, as_of, url), "pairs": pairs}


def mue_rows_to_document(
    rows: Iterable[Mapping[str, str]],
    *,
    citation: str,
    as_of: str,
    url: str | None = None,
    keep: Callable[[str], bool] | None = None,
    file: str = "CMS MUE file",
) -> dict[str, Any]:
    """A ``mue.yaml`` document from practitioner-services MUE rows (therapy codes by default)."""
    keep = keep or is_therapy_code
    edits: list[dict[str, Any]] = []
    cols: tuple[str, str, str | None] | None = None
    for row in rows:
        if cols is None:
            headers = list(row.keys())
            code = _find(headers, lambda h: "hcpcs" in h or h.startswith("cpt"), "HCPCS/CPT code", file)
            value = _find(headers, lambda h: "mue value" in h or h.endswith("mue values"), "MUE value", file)
            mai = next((h for h in headers if "adjudication indicator" in _norm(h)), None)
            cols = (code, value, mai)
        code, value, mai = cols
        key = normalise_code(row.get(code, ""))
        if not re.fullmatch(r"[0-9A-Z]{5}", key) or not keep(key):
            continue
        units = (row.get(value) or "").strip()
        if not units.isdigit():
            raise RuleSetError(f"MUE value {units!r} for {key}", file=file)
        entry: dict[str, Any] = {"code": key, "units": int(units), "confidence": "P", "source": citation}
        indicator = (row.get(mai) or "").strip()[:1] if mai else ""
        if indicator in ("1", "2", "3"):
            entry["mai"] = int(indicator)
        edits.append(entry)
    return {"source": _source(citation, as_of, url), "edits": edits}
