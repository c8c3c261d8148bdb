"""Synthetic FHIR Bulk Data exports of any size, for tests, benchmarks and demos.

Why its own generator: an audit's input is an ``$export`` (one NDJSON file per type, a manifest), not the
transaction Bundles a FHIR server is loaded with, and it must scale to 100,000 visits without holding them
in memory. The notes are the labelled daily notes of ``audit/data/notes.yaml`` (a copy of the sandbox's),
or any labelled cases file in the project's ``cases/*.jsonl`` format (``--cases``), so an export "made from
labelled cases" can be checked against its labels (``labels.csv``).

Shape, per visit: Encounter, one Procedure per billed line (performer = a PractitionerRole), a Claim
(items with units and modifiers, insurance -> the patient's Coverage), a DocumentReference and its Binary
(text/plain, text/html, text/rtf or a real PDF). Per patient: Patient and Coverage (one of four payers).
Shared: 12 clinicians (Practitioner + PractitionerRole). Visits spread over ``months`` months. Every 10th
visit has no Encounter (joined by patient and date); every 8th note is inline (``attachment.data``).

    python -m audit.synthetic --visits 2000 --out /tmp/export [--gzip] [--cases ../shared/cases/dev.jsonl]

Patients, clinicians and payers are fictional. Writing is streaming; the rendered note bytes are
cached per (case, format), so generation is not the benchmark's bottleneck.
"""
from __future__ import annotations

import argparse
import base64
import csv
import gzip
import html
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any

import yaml

CPT = "http://www.ama-assn.org/go/cpt"
NUCC = "http://nucc.org/provider-taxonomy"
SOPT = "https://nahdo.org/sopt"
CONTENT_TYPES = ("text/plain", "text/html", "text/rtf", "application/pdf")
TYPES = ("Patient", "Coverage", "Practitioner", "PractitionerRole", "Encounter", "Procedure", "Claim",
         "DocumentReference", "Binary")
PAYERS = {
    "medicare": ("Medicare Part B", "1", "MEDICARE", "Original Medicare Part B"),
    "medicaid": ("North Dakota Medicaid", "2", "MEDICAID", "ND Medicaid Expansion"),
    "commercial": ("Prairie Mutual Health PPO", "5", "PRIVATE HEALTH INSURANCE", "Choice PPO"),
    "wsi": ("North Dakota Workforce Safety & Insurance (WSI)", "95", "Worker's Compensation", "Workers compensation claim"),
}
ROLES = {"PT": ("225100000X", "Physical Therapist"), "PTA": ("225200000X", "Physical Therapy Assistant"),
         "OT": ("225X00000X", "Occupational Therapist"), "OTA": ("224Z00000X", "Occupational Therapy Assistant")}
CLINICIANS = {  # three fictional clinicians per role
    "PT": (("Ingrid", "Sandoval"), ("Tobias", "Marchetti"), ("Elena", "Kowalczyk")),
    "PTA": (("Marcus", "Whitfield"), ("Rhea", "Lindqvist"), ("Owen", "Battersby")),
    "OT": (("Priya", "Castellano"), ("Leah", "Brandt"), ("Samir", "Haddad")),
    "OTA": (("Dale", "Okonkwo-Reyes"), ("June", "Albright"), ("Nils", "Everhart")),
}
GIVEN = ("Harriet", "Ambrose", "Rosalind", "Caspian", "Marguerite", "Thaddeus", "Odalys", "Lorcan", "Winifred", "Ferris")
FAMILY = ("Quillfeather", "Tuttlebury", "Vantongeren", "Ellingworth", "Oxenholme", "Brackenridge", "Fenwicke", "Drummelow")
VISITS_PER_PATIENT = 6


@dataclass(frozen=True, slots=True)
class Case:
    case_id: str
    payer: str
    performer: str
    lines: tuple[tuple[str, int, int | None, tuple[str, ...]], ...]  # code, units, minutes, modifiers
    verdict: str
    recode_to: str | None
    text: str


def _case_lines(lines: list[dict[str, Any]]) -> tuple[tuple[str, int, int | None, tuple[str, ...]], ...]:
    return tuple((str(li["code"]), int(li["units"]), li.get("minutes"), tuple(li.get("modifiers") or ())) for li in lines)


def load_cases(path: str | Path | None = None) -> tuple[Case, ...]:
    """The packaged labelled notes, or a labelled cases file (``cases/*.jsonl`` or the notes YAML shape)."""
    if path is None:
        data = yaml.safe_load(resources.files("audit").joinpath("data", "notes.yaml").read_text(encoding="utf-8"))
        items = data["notes"]
        return tuple(Case(i["case"], i["payer"], i["performer"], _case_lines(i["lines"]),
                          i["expected"]["verdict"], i["expected"]["recode_to"], i["note"]) for i in items)
    out = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        item = json.loads(raw)
        expected = (item.get("expected") or {}).get("97530") or {}
        if item.get("payer") not in PAYERS or item.get("performer") not in ROLES:
            continue
        out.append(Case(item["id"], item["payer"], item["performer"], _case_lines(item["lines"]),
                        expected.get("verdict", ""), expected.get("recode_to"), item["note"]))
    return tuple(out)


# --- note formats -----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _rtf_unicode(c: str) -> str:
    """RTF's \\uN? escape, N a signed 16-bit number."""
    return f"\\u{ord(c) if ord(c) < 32768 else ord(c) - 65536}?"


def render_note(text: str, content_type: str, title: str = "Daily note") -> bytes:
    """The note as an EHR attaches it: UTF-8 text, HTML, RTF or a real PDF (fpdf2)."""
    if content_type == "text/plain":
        return text.encode("utf-8")
    if content_type == "text/html":
        body = "\n".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line.strip())
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
                f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>").encode()
    if content_type == "text/rtf":
        def esc(line: str) -> str:
            return "".join("\\" + c if c in "\\{}" else (_rtf_unicode(c) if ord(c) > 127 else c) for c in line)
        body = "\n".join(esc(line) + "\\par" for line in text.split("\n"))
        head = "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\pard\\f0\\fs20{\\b "
        return (head + esc(title) + "}\\par\n" + body + "\n}").encode("ascii")
    if content_type == "application/pdf":
        from fpdf import FPDF

        pdf = FPDF(format="Letter")
        pdf.set_creator("cds97530 audit synthetic export")
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        for line in text.split("\n"):
            pdf.multi_cell(0, 5, line.encode("latin-1", "replace").decode("latin-1") or " ", new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())
    raise ValueError(f"unsupported note content type {content_type}")


@lru_cache(maxsize=1024)
def _b64_note(text: str, content_type: str, title: str) -> str:
    return base64.b64encode(render_note(text, content_type, title)).decode("ascii")


# --- the export ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportInfo:
    folder: Path
    manifest: Path
    visits: int
    patients: int
    files: tuple[Path, ...]


class _Sink:
    """One open writer per type; a new part file every ``per_file`` lines (exports split large types)."""

    def __init__(self, folder: Path, compress: bool, per_file: int) -> None:
        self.folder, self.compress, self.per_file = folder, compress, per_file
        self.handles: dict[str, tuple[IO[bytes], int, int]] = {}
        self.files: list[tuple[str, Path, int]] = []

    def _open(self, rtype: str, part: int) -> IO[bytes]:
        name = f"{rtype}.{part:03d}.ndjson" + (".gz" if self.compress else "")
        path = self.folder / name
        self.files.append((rtype, path, 0))
        # GzipFile is a binary file object, but typeshed does not declare it an IO[bytes]
        return gzip.open(path, "wb", compresslevel=3) if self.compress else path.open("wb")  # type: ignore[return-value]

    def write(self, resource: dict[str, Any]) -> None:
        rtype = resource["resourceType"]
        handle, part, count = self.handles.get(rtype, (None, 0, 0))
        if handle is None or count >= self.per_file:
            if handle is not None:
                handle.close()
            part += 1
            handle, count = self._open(rtype, part), 0
        handle.write(json.dumps(resource, separators=(",", ":")).encode("utf-8") + b"\n")
        self.handles[rtype] = (handle, part, count + 1)

    def close(self) -> None:
        for handle, _, _ in self.handles.values():
            handle.close()


def write_export(folder: str | Path, visits: int, *, months: int = 6, start: date = date(2026, 1, 5), compress: bool = False,
                 per_file: int = 250_000, cases: Sequence[Case] | None = None, seed: int = 0) -> ExportInfo:
    """Write an export of ``visits`` visits to ``folder`` (manifest.json, NDJSON per type, labels.csv)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    chosen = tuple(cases) if cases is not None else load_cases()
    sink = _Sink(out, compress, per_file)
    clinicians = [(role, n, given, family) for role, people in CLINICIANS.items() for n, (given, family) in enumerate(people, start=1)]
    for role, n, given, family in clinicians:
        taxonomy, display = ROLES[role]
        sink.write({"resourceType": "Practitioner", "id": f"prac-{role.lower()}{n}", "active": True,
                    "name": [{"family": family, "given": [given], "suffix": [role]}],
                    "qualification": [{"code": {"coding": [{"system": NUCC, "code": taxonomy, "display": display}]}}]})
        sink.write({"resourceType": "PractitionerRole", "id": f"role-{role.lower()}{n}", "active": True,
                    "practitioner": {"reference": f"Practitioner/prac-{role.lower()}{n}"},
                    "code": [{"coding": [{"system": NUCC, "code": taxonomy, "display": display}]}]})
    by_payer = {p: [c for c in chosen if c.payer == p] for p in PAYERS}
    payers = [p for p in PAYERS if by_payer[p]]
    span_days = max(28, months * 30)
    patients = 0
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as labels_file:
        labels = csv.writer(labels_file)
        labels.writerow(["visit_key", "case", "expected_verdict", "expected_recode_to", "content_type"])
        for v in range(visits):
            pn, vn = divmod(v, VISITS_PER_PATIENT)
            payer = payers[(pn + seed) % len(payers)]
            pid = f"pat-{pn + 1}"
            if vn == 0:
                patients += 1
                _write_patient(sink, pid, pn, payer)
            pool = by_payer[payer]
            case = pool[(v * 7 + pn + seed) % len(pool)]
            day = start + timedelta(days=(pn * 3 + vn * (span_days // VISITS_PER_PATIENT)) % span_days)
            ctype = CONTENT_TYPES[(v + pn) % len(CONTENT_TYPES)]
            key = _write_visit(sink, v + 1, pid, case, day, ctype, with_encounter=v % 10 != 9, inline=v % 8 == 3)
            labels.writerow([key, case.case_id, case.verdict, case.recode_to or "", ctype])
    sink.close()
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({
        "transactionTime": "2026-07-01T00:00:00Z", "request": "[base]/Group/therapy/$export", "requiresAccessToken": False,
        "output": [{"type": rtype, "url": path.name} for rtype, path, _ in sink.files], "error": [],
    }, indent=1), encoding="utf-8")
    return ExportInfo(out, manifest, visits, patients, tuple(path for _, path, _ in sink.files))


def _write_patient(sink: _Sink, pid: str, pn: int, payer: str) -> None:
    display, sopt, sopt_display, plan = PAYERS[payer]
    sink.write({"resourceType": "Patient", "id": pid, "active": True,
                "name": [{"family": FAMILY[pn % len(FAMILY)], "given": [GIVEN[(pn // len(FAMILY)) % len(GIVEN)]]}],
                "gender": "female" if pn % 2 else "male", "birthDate": f"{1940 + pn % 60}-0{1 + pn % 9}-1{pn % 10}"})
    sink.write({"resourceType": "Coverage", "id": f"cov-{pn + 1}", "status": "active",
                "type": {"coding": [{"system": SOPT, "code": sopt, "display": sopt_display}], "text": sopt_display},
                "beneficiary": {"reference": f"Patient/{pid}"}, "payor": [{"reference": f"Organization/payer-{payer}", "display": display}],
                "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                           "value": plan, "name": plan}]})


def _write_visit(sink: _Sink, n: int, pid: str, case: Case, day: date, ctype: str, *, with_encounter: bool, inline: bool) -> str:
    clinician = 1 + n % 3
    role_ref = {"reference": f"PractitionerRole/role-{case.performer.lower()}{clinician}"}
    taxonomy, display = ROLES[case.performer]
    start = datetime.fromisoformat(f"{day.isoformat()}T09:00:00-06:00")
    end = start + timedelta(minutes=sum(line[2] or 0 for line in case.lines) + 10)
    patient = {"reference": f"Patient/{pid}"}
    enc_id = f"enc-{n}"
    encounter = {"encounter": {"reference": f"Encounter/{enc_id}"}} if with_encounter else {}
    if with_encounter:
        sink.write({"resourceType": "Encounter", "id": enc_id, "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": patient, "participant": [{"individual": role_ref}],
                    "period": {"start": start.isoformat(), "end": end.isoformat()}})
    clock = start
    for i, (code, _units, minutes, _mods) in enumerate(case.lines, start=1):
        proc: dict[str, Any] = {"resourceType": "Procedure", "id": f"proc-{n}-{i}", "status": "completed",
                                "code": {"coding": [{"system": CPT, "code": code}]}, "subject": patient, **encounter,
                                "performer": [{"function": {"coding": [{"system": NUCC, "code": taxonomy, "display": display}]},
                                               "actor": role_ref}]}
        if minutes:
            proc["performedPeriod"] = {"start": clock.isoformat(), "end": (clock + timedelta(minutes=minutes)).isoformat()}
            clock += timedelta(minutes=minutes)
        else:
            proc["performedDateTime"] = clock.isoformat()
        sink.write(proc)
    title = ("OT" if case.performer.startswith("OT") else "PT") + " daily note"
    data = _b64_note(case.text, ctype, title)
    attachment: dict[str, Any] = {"contentType": ctype, "title": title}
    if inline:
        attachment["data"] = data
    else:
        attachment["url"] = f"Binary/bin-{n}"
        sink.write({"resourceType": "Binary", "id": f"bin-{n}", "contentType": ctype, "securityContext": patient, "data": data})
    context: dict[str, Any] = {"period": {"start": start.isoformat(), "end": end.isoformat()}}
    if with_encounter:
        context["encounter"] = [{"reference": f"Encounter/{enc_id}"}]
    sink.write({"resourceType": "DocumentReference", "id": f"doc-{n}", "status": "current", "docStatus": "final",
                "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}], "text": title}, "subject": patient,
                "date": end.isoformat(), "author": [role_ref], "description": title, "content": [{"attachment": attachment}],
                "context": context})
    sink.write({"resourceType": "Claim", "id": f"claim-{n}", "status": "active",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
                "use": "claim", "patient": patient, "created": end.isoformat(),
                "billablePeriod": {"start": day.isoformat(), "end": day.isoformat()},
                "provider": {"reference": f"Practitioner/prac-{case.performer.lower()}{clinician}"},
                "priority": {"coding": [{"code": "normal"}]},
                "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/cov-{pid.split('-')[1]}"}}],
                "item": [{"sequence": i, "productOrService": {"coding": [{"system": CPT, "code": code}]},
                          **({"modifier": [{"coding": [{"system": CPT, "code": m}]} for m in mods]} if mods else {}),
                          "servicedDate": day.isoformat(), "quantity": {"value": units},
                          **({"encounter": [{"reference": f"Encounter/{enc_id}"}]} if with_encounter else {})}
                         for i, (code, units, _minutes, mods) in enumerate(case.lines, start=1)]})
    return f"Encounter/{enc_id}" if with_encounter else f"Patient/{pid}|{day.isoformat()}"


def iter_visit_keys(labels_csv: Path) -> Iterator[dict[str, str]]:
    with labels_csv.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.synthetic", description="Write a synthetic FHIR Bulk Data export.")
    parser.add_argument("--visits", type=int, default=2000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--gzip", action="store_true", help="write .ndjson.gz files")
    parser.add_argument("--per-file", type=int, default=250_000, help="lines per NDJSON file before a new part starts")
    parser.add_argument("--cases", default=None,
                        help="labelled cases JSONL (the project's cases/*.jsonl format) instead of the packaged notes")
    args = parser.parse_args(argv)
    info = write_export(args.out, args.visits, months=args.months, compress=args.gzip, per_file=args.per_file,
                        cases=load_cases(args.cases) if args.cases else None)
    print(f"wrote {info.visits} visits of {info.patients} patients in {len(info.files)} files; manifest {info.manifest}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
