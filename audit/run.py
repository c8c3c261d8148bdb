"""One audit run: inputs -> engine -> rows, skips, summary, report. The orchestration both engines share."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.inputs import InputFile, resolve_inputs
from audit.join import Skip
from audit.output import LineWriter, write_skips
from audit.progress import Progress
from audit.rows import AuditOptions, rules_note
from audit.summary import Summary


class AuditInputError(ValueError):
    """The command line names nothing the audit can read (one line for the user, exit 2)."""


@dataclass
class RunResult:
    summary: Summary
    out_dir: Path
    engine: str
    workers: str
    seconds: float
    rules: str
    stats: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        s = self.summary
        skipped = sum(n for k, n in s.skips.items() if k not in ("out-of-period", "unknown-type"))
        extra = f"; {s.skips['out-of-period']} visits outside the period" if s.skips.get("out-of-period") else ""
        ignored = f"; {s.skips['unknown-type']} resources of other types ignored" if s.skips.get("unknown-type") else ""
        return (f"audit: {s.visits:,} visits, {s.lines:,} billed lines, {s.attention:,} need attention, "
                f"${s.at_risk:,.2f} at risk of ${s.fee_billed:,.2f} billed; {skipped:,} inputs skipped{extra}{ignored} "
                f"({self.seconds:.1f} s, {self.engine} {self.workers}; {self.rules}) -> {self.out_dir / 'report.html'}")


class _SkipLog:
    """Skips go to ``skipped.csv`` as they happen and into the summary (memory stays bounded)."""

    def __init__(self, path: Path, summary: Summary) -> None:
        import csv

        self._handle = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._handle)
        self._csv.writerow(["kind", "where", "reason"])
        self.summary = summary

    def __call__(self, skip: Skip) -> None:
        self._csv.writerow([skip.kind, skip.where, skip.reason])
        self.summary.add_skip(skip)

    def close(self) -> None:
        self._handle.close()


def run_audit(
    inputs: Sequence[str],
    out_dir: str | Path,
    *,
    engine: str = "local",
    options: AuditOptions = AuditOptions(),
    processes: int | None = None,
    master: str | None = None,
    fmt: str = "parquet",
    progress: bool | None = None,
    spark_session: Any = None,
    join_only: bool = False,
    report: bool = True,
) -> RunResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, input_skips = resolve_inputs(inputs, allow_schemes=engine == "spark")
    if not files:
        reasons = "; ".join(f"{s.where}: {s.reason}" for s in input_skips[:3]) or "no input given"
        raise AuditInputError(f"nothing to read ({reasons})")
    summary = Summary()
    started = time.perf_counter()
    log = _SkipLog(out / "skipped.csv", summary)
    stats: dict[str, Any] = {}
    try:
        for skip in input_skips:
            log(skip)
        with Progress(progress) as bar:
            if engine == "local":
                label, stats = _run_local(files, out, options, processes=processes, fmt=fmt, summary=summary, log=log,
                                          bar=bar, join_only=join_only)
            elif engine == "spark":
                from audit.spark_engine import run_spark

                label, stats = run_spark(files, out, options, master=master, fmt=fmt, on_skip=log, summary=summary,
                                         session=spark_session, join_only=join_only)
            else:
                raise AuditInputError(f"unknown engine {engine!r} (local or spark)")
    finally:
        log.close()
    result = RunResult(summary, out, engine, label, time.perf_counter() - started, rules_note(options.rules_dir), stats)
    if report:
        _write_report(result, files, options, fmt)
    return result


def _run_local(
    files: list[InputFile], out: Path, options: AuditOptions, *, processes: int | None, fmt: str, summary: Summary,
    log: _SkipLog, bar: Progress, join_only: bool,
) -> tuple[str, dict[str, Any]]:
    """The local engine: a process pool over a SQLite work file (removed afterwards); rows are written and
    summed as they arrive. Returns the workers' label and the engine's counts."""
    from audit.local_engine import default_processes, run_local

    workers = processes or default_processes()
    writer = LineWriter(out, fmt)

    def on_rows(rows: list[dict[str, Any]]) -> None:
        writer.write(rows)
        summary.add_all(rows)

    try:
        local = run_local(files, out / ".audit-work.sqlite3", options, processes=workers, on_rows=on_rows,
                          on_skip=log, progress=bar, join_only=join_only)
    finally:
        writer.close()
        (out / ".audit-work.sqlite3").unlink(missing_ok=True)
    return f"{workers} process{'es' if workers != 1 else ''}", dict(vars(local))


def _write_report(result: RunResult, files: Sequence[InputFile], options: AuditOptions, fmt: str) -> None:
    """summary.json (the summary without the worklist, plus how the run was made) and the HTML report."""
    from audit.html_report import write_report

    data = result.summary.to_dict()
    data["run"] = {"engine": result.engine, "workers": result.workers, "seconds": round(result.seconds, 1), "rules": result.rules,
                   "inputs": [f.name for f in files][:200], "input_files": len(files),
                   "since": options.since, "until": options.until, "format": fmt}
    (result.out_dir / "summary.json").write_text(json.dumps({k: v for k, v in data.items() if k != "worklist"}, indent=1), encoding="utf-8")
    write_report(result.out_dir / "report.html", data)


__all__ = ["AuditInputError", "RunResult", "run_audit", "write_skips"]
