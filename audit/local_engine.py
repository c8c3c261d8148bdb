"""The ``local`` engine: one machine, a process pool over its cores, memory bounded whatever the export size.

Why SQLite on disk: an export's files are per type, so a visit's Claim, Procedures, note and Binary are
far apart; holding them all in memory until they meet does not scale to a year of visits. Instead:

1. **Read** (one pass, streaming): each NDJSON line is parsed and routed (``audit.join.route``) and
   written to a SQLite file in the output folder with its routing columns. Duplicates keep the newer
   copy (``lastUpdated``, then content), as Spark does.
2. **Join** (SQL): visit keys (encounter, else the patient's only Encounter that day, else patient|day),
   the Binary/Practitioner references each visit pulls in (two hops), and each patient's Patient and
   Coverage; dangling references and unjoinable resources are listed.
3. **Evaluate**: workers read the visits by id range from the same SQLite file (read-only), assemble and
   evaluate them with the pure library; only rows (no note text) come back. At most ``2 x processes``
   batches are in flight, so memory stays flat as the input grows.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.inputs import InputFile, iter_lines, parse_line
from audit.join import PATIENT_TYPES, VISIT_TYPES, Skip, assemble, route
from audit.progress import Progress
from audit.rows import AuditOptions, evaluate_visit_input

BATCH_VISITS = 40
INSERT_BATCH = 2_000
_SQL_LIST = lambda names: ",".join(f"'{n}'" for n in names)  # noqa: E731 - constant type names only

SCHEMA_SQL = """
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA temp_store=FILE;
PRAGMA cache_size=-65536;
CREATE TABLE res (ref TEXT PRIMARY KEY, rtype TEXT, patient TEXT, enc TEXT, day TEXT, ver TEXT, body TEXT,
                  needs TEXT, copies INTEGER DEFAULT 1, src TEXT) WITHOUT ROWID;
"""
UPSERT_SQL = """
INSERT INTO res (ref, rtype, patient, enc, day, ver, body, needs, src) VALUES (?,?,?,?,?,?,?,?,?)
ON CONFLICT(ref) DO UPDATE SET
  copies = res.copies + 1,
  rtype = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.rtype ELSE res.rtype END,
  patient = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.patient ELSE res.patient END,
  enc = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.enc ELSE res.enc END,
  day = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.day ELSE res.day END,
  needs = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.needs ELSE res.needs END,
  src = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.src ELSE res.src END,
  body = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.body ELSE res.body END,
  ver = CASE WHEN (excluded.ver, excluded.body) > (res.ver, res.body) THEN excluded.ver ELSE res.ver END
"""
JOIN_SQL = f"""
CREATE TABLE enc_day AS
  SELECT patient, day, MIN(ref) AS enc FROM res
  WHERE rtype = 'Encounter' AND patient IS NOT NULL AND day IS NOT NULL
  GROUP BY patient, day HAVING COUNT(*) = 1;
CREATE INDEX enc_day_i ON enc_day (patient, day);
CREATE TABLE member AS
  SELECT COALESCE(r.enc, e.enc, CASE WHEN r.patient IS NOT NULL AND r.day IS NOT NULL THEN r.patient || '|' || r.day END) AS vkey,
         r.ref, r.rtype, r.patient, r.src
  FROM res r LEFT JOIN enc_day e ON r.enc IS NULL AND e.patient = r.patient AND e.day = r.day
  WHERE r.rtype IN ({_SQL_LIST(VISIT_TYPES)});
CREATE TABLE visit (vid INTEGER PRIMARY KEY, vkey TEXT UNIQUE, patient TEXT);
INSERT INTO visit (vkey, patient)
  SELECT vkey, MIN(patient) FROM member WHERE vkey IS NOT NULL GROUP BY vkey ORDER BY vkey;
CREATE TABLE link AS SELECT r.ref AS src, j.value AS dst FROM res r, json_each(r.needs) j;
CREATE INDEX link_i ON link (src);
CREATE INDEX member_i ON member (vkey);
CREATE INDEX res_patient_i ON res (patient, rtype);
CREATE TABLE visit_res AS
  SELECT v.vid, m.ref FROM visit v JOIN member m ON m.vkey = v.vkey
  UNION SELECT v.vid, l.dst FROM visit v JOIN member m ON m.vkey = v.vkey JOIN link l ON l.src = m.ref
  UNION SELECT v.vid, l2.dst FROM visit v JOIN member m ON m.vkey = v.vkey JOIN link l ON l.src = m.ref JOIN link l2 ON l2.src = l.dst
  UNION SELECT v.vid, r.ref FROM visit v JOIN res r ON r.patient = v.patient AND r.rtype IN ({_SQL_LIST(PATIENT_TYPES)});
CREATE INDEX visit_res_i ON visit_res (vid);
"""
DANGLING_SQL = """
SELECT l.src, l.dst FROM link l LEFT JOIN res r ON r.ref = l.dst WHERE r.ref IS NULL
UNION ALL
SELECT r.ref, r.enc FROM res r LEFT JOIN res e ON e.ref = r.enc
  WHERE r.enc IS NOT NULL AND r.rtype <> 'Encounter' AND e.ref IS NULL
UNION ALL
SELECT 'visit ' || v.vkey, v.patient FROM visit v LEFT JOIN res p ON p.ref = v.patient
  WHERE v.patient IS NOT NULL AND p.ref IS NULL
ORDER BY 1, 2
"""


@dataclass
class LocalStats:
    lines_read: int = 0
    resources: int = 0
    visits: int = 0
    read_seconds: float = 0.0
    join_seconds: float = 0.0
    evaluate_seconds: float = 0.0


def read_into(db: sqlite3.Connection, files: list[InputFile], on_skip: Callable[[Skip], None], progress: Progress,
              stats: LocalStats) -> None:
    """Pass 1: every line of every file into ``res`` (streaming; only one insert batch in memory)."""
    db.executescript(SCHEMA_SQL)
    batch: list[tuple[Any, ...]] = []
    progress.phase("reading export", None, "lines")
    for file in files:
        for item in iter_lines(file):
            if isinstance(item, Skip):
                on_skip(item)
                continue
            line_no, raw = item
            stats.lines_read += 1
            progress.advance("reading export")
            where = f"{file.name}:{line_no}"
            text = raw.decode("utf-8", errors="replace")  # as Spark's text reader does: both engines see the same line
            resource = parse_line(text, where)
            routed = resource if isinstance(resource, Skip) else route(resource, where)
            if isinstance(routed, Skip):
                on_skip(routed)
                continue
            body = text.strip()
            batch.append((routed.ref, routed.rtype, routed.patient, routed.encounter, routed.day, routed.version,
                          body, json.dumps(routed.needs), where))
            if len(batch) >= INSERT_BATCH:
                db.executemany(UPSERT_SQL, batch)
                batch.clear()
    if batch:
        db.executemany(UPSERT_SQL, batch)
    db.commit()
    progress.finish("reading export")


def join(db: sqlite3.Connection, on_skip: Callable[[Skip], None], stats: LocalStats) -> int:
    """Pass 2 (SQL): visits and what each pulls in; lists duplicates, dangling and unjoinable resources."""
    db.executescript(JOIN_SQL)
    db.commit()
    stats.resources = db.execute("SELECT COUNT(*) FROM res").fetchone()[0]
    for ref, copies in db.execute("SELECT ref, copies FROM res WHERE copies > 1 ORDER BY ref"):
        on_skip(Skip("duplicate", ref, f"{copies} copies; the latest (meta.lastUpdated, else content) is used"))
    for src, dst in db.execute(DANGLING_SQL):
        on_skip(Skip("dangling-reference", src, f"refers to {dst}, which is not in the export"))
    for (ref,) in db.execute("SELECT ref FROM member WHERE vkey IS NULL ORDER BY ref"):
        on_skip(Skip("unjoinable", ref, "no encounter, and no patient and date to join a visit by"))
    return int(db.execute("SELECT COUNT(*) FROM visit").fetchone()[0])


def visit_bodies(db: sqlite3.Connection, lo: int, hi: int) -> Iterator[tuple[str, list[str]]]:
    """(visit key, raw resources) for visit ids ``lo..hi``."""
    current: tuple[int, str] | None = None
    bodies: list[str] = []
    for vid, vkey, body in db.execute(
        "SELECT v.vid, v.vkey, r.body FROM visit v JOIN visit_res vr ON vr.vid = v.vid JOIN res r ON r.ref = vr.ref "
        "WHERE v.vid BETWEEN ? AND ? ORDER BY v.vid", (lo, hi)):
        if current is not None and current[0] != vid:
            yield current[1], bodies
            bodies = []
        current = (vid, vkey)
        bodies.append(body)
    if current is not None:
        yield current[1], bodies


# --- workers ----------------------------------------------------------------------------------------

_WORKER_DB: dict[str, sqlite3.Connection] = {}


def _connection(path: str) -> sqlite3.Connection:
    if path not in _WORKER_DB:
        _WORKER_DB[path] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    return _WORKER_DB[path]


def evaluate_range(db_path: str, lo: int, hi: int, options: AuditOptions,
                   join_only: bool = False) -> tuple[list[dict[str, Any]], list[Skip], int]:
    """One batch of visits, in a worker: rows, skips and the number of visits done."""
    db = _connection(db_path)
    rows: list[dict[str, Any]] = []
    skips: list[Skip] = []
    n = 0
    for vkey, bodies in visit_bodies(db, lo, hi):
        n += 1
        visit = assemble(vkey, bodies)
        if join_only:
            continue
        got, bad = evaluate_visit_input(visit, options)
        rows += got
        skips += bad
    return rows, skips, n


def _warm() -> None:
    """Load the plugin's rules once per worker before the first batch is timed."""
    from plugin.lexicon import load_lexicon

    load_lexicon()


def run_local(
    files: list[InputFile],
    work_db: Path,
    options: AuditOptions,
    *,
    processes: int,
    on_rows: Callable[[list[dict[str, Any]]], None],
    on_skip: Callable[[Skip], None],
    progress: Progress,
    join_only: bool = False,
) -> LocalStats:
    stats = LocalStats()
    if work_db.exists():
        work_db.unlink()
    db = sqlite3.connect(work_db)
    try:
        t0 = time.perf_counter()
        read_into(db, files, on_skip, progress, stats)
        t1 = time.perf_counter()
        stats.visits = join(db, on_skip, stats)
        db.close()
        t2 = time.perf_counter()
        stats.read_seconds, stats.join_seconds = t1 - t0, t2 - t1
        progress.phase("evaluating visits", stats.visits, "visits")
        ranges = [(lo, min(lo + BATCH_VISITS - 1, stats.visits)) for lo in range(1, stats.visits + 1, BATCH_VISITS)]
        if processes <= 1:
            for lo, hi in ranges:
                rows, skips, n = evaluate_range(str(work_db), lo, hi, options, join_only)
                _deliver(rows, skips, n, on_rows, on_skip, progress)
        else:
            _run_pool(str(work_db), ranges, options, processes, join_only, on_rows, on_skip, progress)
        stats.evaluate_seconds = time.perf_counter() - t2
        progress.finish("evaluating visits")
    finally:
        db.close()
        conn = _WORKER_DB.pop(str(work_db), None)
        if conn is not None:
            conn.close()
    return stats


def _deliver(rows: list[dict[str, Any]], skips: list[Skip], n: int, on_rows: Callable[[list[dict[str, Any]]], None],
             on_skip: Callable[[Skip], None], progress: Progress) -> None:
    on_rows(rows)
    for skip in skips:
        on_skip(skip)
    progress.advance("evaluating visits", n)


def _run_pool(db_path: str, ranges: list[tuple[int, int]], options: AuditOptions, processes: int, join_only: bool,
              on_rows: Callable[[list[dict[str, Any]]], None], on_skip: Callable[[Skip], None], progress: Progress) -> None:
    import multiprocessing

    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    window = 2 * processes
    with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_warm) as pool:
        pending: set[Future[tuple[list[dict[str, Any]], list[Skip], int]]] = set()
        todo = iter(ranges)
        for lo, hi in todo:
            pending.add(pool.submit(evaluate_range, db_path, lo, hi, options, join_only))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _deliver(*future.result(), on_rows, on_skip, progress)
        for future in pending:
            _deliver(*future.result(), on_rows, on_skip, progress)


def default_processes() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


